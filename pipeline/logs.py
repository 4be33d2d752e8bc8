"""Quiet success, loud failure: the logging set-up of the ``pipeline`` command.

Without ``--verbose`` a good run prints only the pipeline's own lines (one summary line per
stage) and warnings; third-party libraries (dask ``distributed``, tornado, TensorFlow, ...)
log warnings and errors only, and the harmless noise of a dask cluster shutting down
(``CommClosedError`` tracebacks, "port in use" warnings) is dropped. ``-v`` shows INFO
logs of everything, ``-vv`` DEBUG; nothing is dropped then.

Nothing heavy is imported here: dask reads its logging levels from the environment
(``DASK_LOGGING__DISTRIBUTED``) when it is imported, in this process and in its workers.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Iterator

#: Loggers of libraries that are chatty at INFO level.
THIRD_PARTY = ("distributed", "tornado", "asyncio", "bokeh", "fsspec", "s3fs", "botocore", "urllib3",
               "numba", "h5py", "tensorflow", "absl", "matplotlib", "PIL")

_verbosity = 0


def configure(verbose: int = 0) -> None:
    """Set up logging for one ``pipeline`` invocation (``verbose``: count of ``-v``)."""
    global _verbosity
    _verbosity = verbose
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(max(level, logging.DEBUG))
    third_party = logging.INFO if verbose == 1 else logging.DEBUG if verbose > 1 else logging.WARNING
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(third_party)
    # A failure inside a dask worker reaches the user as the pipeline's own one line (the task's
    # exception is re-raised here); the worker's "Compute Failed" logs and tracebacks only with -v.
    dask_level = third_party if verbose else logging.CRITICAL
    logging.getLogger("distributed").setLevel(dask_level)
    os.environ["DASK_LOGGING__DISTRIBUTED"] = logging.getLevelName(dask_level).lower()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    if not verbose:
        warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")


def dask_log_level() -> int:
    """The level of dask's ``distributed`` loggers in worker processes (CRITICAL unless verbose)."""
    return logging.INFO if _verbosity == 1 else logging.DEBUG if _verbosity > 1 else logging.CRITICAL


def verbose() -> bool:
    """True when the user asked for ``--verbose``."""
    return _verbosity > 0


@contextlib.contextmanager
def quiet_shutdown() -> Iterator[None]:
    """Silence what dask logs while a cluster shuts down after a good run (unless verbose).

    Closing a local cluster races its workers' connections; ``distributed`` then logs
    ``CommClosedError`` tracebacks at ERROR level although nothing failed.
    """
    if verbose():
        yield
        return
    loggers = [logging.getLogger(name) for name in ("distributed", "tornado", "asyncio")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, levels):
            lg.setLevel(lvl)
