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


@contextmanager
def store_lock(root: Path) -> Iterator[None]:
    """Hold the exclusive store lock (``flock`` on ``<root>/.lock``); released on exit or death."""
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


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

    def __contains__(self, track_id: object) -> bool: ...

    @property
    def index(self) -> "StoreIndex": ...

    def parts(self) -> Sequence["PartIndex"]: ...

    def listed_parts(self) -> list[str]: ...

    def part_reader(self, part: str) -> "PartReader": ...
