"""The part-backend interface: how one part's (N, dim) array is written and read.

A backend only stores immutable concatenated arrays; everything else (index, commits,
dedupe, provenance) is shared by :mod:`pipeline.stores.store`. Backend modules import
their library (zarr, h5py) lazily, so importing the store API stays cheap.
"""
from __future__ import annotations

import abc
import importlib
import os
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from pipeline.errors import UnknownNameError
from pipeline.registry import Registry
from pipeline.stores.location import Location
from pipeline.stores.spec import StoreLayout

#: backend name -> its class, each imported on first use (zarr and h5py load only when asked for)
BACKENDS: Registry[type["PartBackend"]] = Registry("store backend")
BACKENDS.register_lazy("zarr", "pipeline.stores.zarr_backend:ZarrBackend")
BACKENDS.register_lazy("hdf5", "pipeline.stores.hdf5_backend:HDF5Backend")
BACKENDS.register_lazy("memmap", "pipeline.stores.memmap_backend:MemmapBackend")
#: The backends a store can be written with (memmap is an export format). ``pipeline.config.Backend``
#: (``extract.backend``) lists the same names; ``tests/test_choices.py`` holds them equal, since the
#: stores sit below the params and do not import them.
WRITABLE_BACKENDS: tuple[str, ...] = ("zarr", "hdf5")


class PartReader(abc.ABC):
    """Read access to one part's array. Opened lazily, once per process."""

    n_frames: int
    dim: int
    dtype: np.dtype

    @abc.abstractmethod
    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` as (stop - start, dim) in the stored dtype."""

    def close(self) -> None:
        """Release handles (no-op by default)."""


class PartBackend(abc.ABC):
    """Writes and opens parts of one storage format."""

    name: str
    #: suffix of a part's data file or folder (``.zarr``, ``.h5``, ``.npy``)
    suffix: str

    @abc.abstractmethod
    def write_part(self, path: Path, frames: np.ndarray, layout: StoreLayout) -> None:
        """Write ``frames`` (N, dim), already in the stored dtype, as a new part at local ``path``.

        Called on a temporary path that is renamed into place afterwards; must leave the
        data durable (fsync) when it returns.
        """

    @abc.abstractmethod
    def open_part(self, location: Location, rel: str, layout: StoreLayout) -> PartReader:
        """Open the part at ``rel`` under ``location`` for reading."""

    def chunk_rows(self, layout: StoreLayout, n_frames: int) -> int:
        """Rows per chunk of a part of ``n_frames`` rows (the unit of reading)."""
        return max(1, min(layout.chunk_frames, n_frames))

    def write_part_pieces(
        self, path: Path, pieces: Iterable[np.ndarray], n_frames: int, dim: int, dtype: np.dtype, layout: StoreLayout
    ) -> None:
        """Write a part given as consecutive row blocks (N = ``n_frames`` rows in all).

        Backends that can write a part region by region override this so that a part
        holding a long track never sits in memory whole; this default concatenates.
        """
        frames = np.concatenate(list(pieces), axis=0) if n_frames else np.zeros((0, dim), dtype=dtype)
        self.write_part(path, frames, layout)


#: Bytes per region (and per zarr shard file) when a part is written piece by piece: bounds the
#: writer's memory; a one-hour 16 kHz audio-cache track becomes about 30 shard files.
STREAM_BYTES = 4 << 20


def regroup(pieces: Iterable[np.ndarray], rows: int) -> Iterator[np.ndarray]:
    """Re-cut consecutive (n_i, dim) blocks into blocks of exactly ``rows`` rows (the last may be shorter)."""
    held: list[np.ndarray] = []
    count = 0
    for piece in pieces:
        while len(piece):
            take = min(rows - count, len(piece))
            held.append(piece[:take])
            count += take
            piece = piece[take:]
            if count == rows:
                yield held[0] if len(held) == 1 else np.concatenate(held, axis=0)
                held, count = [], 0
    if count:
        yield held[0] if len(held) == 1 else np.concatenate(held, axis=0)


_instances: dict[str, PartBackend] = {}


def get_backend(name: str) -> PartBackend:
    """The backend registered as ``name``.

    Raises:
        UnknownNameError: naming the bad value and the valid backends.
    """
    if name not in _instances:
        _instances[name] = BACKENDS.get(name)()
    return _instances[name]


def fsync_tree(path: Path) -> None:
    """fsync every file under ``path`` (or ``path`` itself) so a rename publishes durable data."""
    files = [path] if path.is_file() else [Path(r) / f for r, _d, fs in os.walk(path) for f in fs]
    for file in files:
        fd = os.open(file, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
