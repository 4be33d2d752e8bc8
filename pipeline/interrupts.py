"""Polite interrupts: SIGTERM handled like Ctrl-C, and signals held back during a commit.

A long run (extraction) stopped with Ctrl-C or ``kill`` (SIGTERM, what schedulers and
``docker stop`` send) should keep what it has computed: the part writers commit their
buffered whole tracks when a :class:`KeyboardInterrupt` passes through them, and a commit
in progress finishes before the interrupt is raised.
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM inside :func:`sigterm_as_interrupt`."""


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) like Ctrl-C does.

    Either signal is acknowledged at once with one line on stderr (``received SIGINT: ...``):
    committing the tracks computed may take a moment. Only in the main thread (elsewhere
    Python cannot install handlers); the previous handlers are restored on exit.
    """
    if not _main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:  # noqa: ARG001
        name = signal.Signals(signum).name
        print(f"received {name}: committing the whole tracks computed, then stopping", file=sys.stderr,
              flush=True)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(f"signal {name}")

    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the block (main thread); they are delivered right after it.

    Used around a part commit so that an interrupt never leaves it half done (the commit
    itself is atomic, but the tracks it holds would otherwise be dropped from memory).
    """
    if not _main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
