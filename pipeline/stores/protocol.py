"""What every store module shares, with no import of the store modules themselves.

- the names of the layout (``teacher.json``, ``tmp/``, ``.lock``) and the store lock;
- :class:`StoreLike`, what the writer and ``verify`` need of an open store, so that
  ``store.py`` -> ``writer.py`` / ``verify.py`` -> ``protocol.py`` has no cycle.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Protocol, Sequence

from pipeline.files import fs_faults

if TYPE_CHECKING:
    from pipeline.stores.backend import PartReader
    from pipeline.stores.catalog import StoreIndex
    from pipeline.stores.index import PartIndex
    from pipeline.stores.segment import Segment
    from pipeline.stores.location import Location
    from pipeline.stores.spec import StoreLayout, StoreSpec

TEACHER_FILE = "teacher.json"
LOCK_FILE = ".lock"
TMP_DIR = "tmp"
#: object stores: one index segment per committed part, uploaded last (see :mod:`.remote`)
COMMITS_DIR = "commits"
#: object stores: one object per part number, created only if absent (who writes that part)
CLAIMS_DIR = "claims"


@contextmanager
def store_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive store lock (``flock`` on ``<root>/.lock``); released on exit or death.

    Raises:
        FileFault: the lock file cannot be created (a read-only store) or locked (a file
            system without locks, e.g. NFS without lockd): one line, nothing was changed.
    """
    path = Path(root) / LOCK_FILE
    with fs_faults(path, doing="taking the store lock", kept="the store is unchanged and keeps its committed tracks",
                   todo=_lock_advice(path)):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
    try:
        yield
    finally:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass  # closing the descriptor releases the lock anyway
        os.close(fd)


def _lock_advice(path: Path) -> str:
    return (f"writing to the store needs a writable folder with working locks: extract to a local disk "
            f"(or a copy of {path.parent}), then share it with `dvc push`")


class StoreLike(Protocol):
    """What :class:`~pipeline.stores.writer.PartWriter` and :func:`~pipeline.stores.verify.verify_store`
    use of an :class:`~pipeline.stores.store.EmbeddingStore`."""

    path: Path | str
    location: "Location"
    spec: "StoreSpec"
    layout: "StoreLayout"
    backend: str
    mode: str
    missing_parts: list[str]
    refused_parts: dict[str, str]

    def refresh(self) -> None: ...

    def remember(self, segment: "Segment") -> None: ...

    def remember_commit(self, segment: "Segment") -> None: ...

    def __contains__(self, track_id: object) -> bool: ...

    @property
    def index(self) -> "StoreIndex": ...

    def parts(self) -> Sequence["PartIndex"]: ...

    def listed_parts(self) -> list[str]: ...

    def part_reader(self, part: str) -> "PartReader": ...
