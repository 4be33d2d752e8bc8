"""Memmap parts: one raw ``.npy`` per part (the ``export --format memmap`` fast path).

The same index as the other backends, so :func:`~pipeline.stores.open_store` reads an
export like any store; a window read is a slice of a memory map (no chunk decoding).
There is no per-chunk checksum: ``verify`` relies on the per-track sha256.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import StoreError
from pipeline.stores.backend import PartBackend, PartReader, fsync_tree
from pipeline.stores.location import Location
from pipeline.stores.spec import StoreLayout


class MemmapPartReader(PartReader):
    """A part mapped with ``np.load(mmap_mode="r")``."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.n_frames, self.dim = (int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.array(self.array[start:stop])


class MemmapBackend(PartBackend):
    """Parts as raw ``.npy`` files."""

    name = "memmap"
    suffix = ".npy"

    def write_part(self, path: Path, frames: np.ndarray, layout: StoreLayout) -> None:
        with open(path, "wb") as handle:
            np.save(handle, frames, allow_pickle=False)
        fsync_tree(path)

    def open_part(self, location: Location, rel: str, layout: StoreLayout) -> PartReader:
        local = location.local_path(rel)
        where = location.join(rel)
        if local is None:
            raise StoreError(
                f"memmap export {where} must be on a local file system; copy it or use the zarr store"
            )
        try:
            array = np.load(local, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise StoreError(f"part data {where} is missing") from None
        except ValueError as exc:
            raise StoreError(f"part data {where} cannot be read: {exc}") from None
        if array.ndim != 2:
            raise StoreError(f"part data {where} has shape {array.shape}, expected (frames, dim)")
        return MemmapPartReader(array)
