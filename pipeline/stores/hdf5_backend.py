"""HDF5 parts: one ``.h5`` file per part holding a chunked (N, dim) dataset ``frames``.

Same concatenated layout and index as the zarr backend. Chunks of ``chunk_frames`` rows
carry a Fletcher-32 checksum, so a corrupted chunk raises on read. Files are opened
lazily by the reading process (never share an h5py handle across ``fork``; the store
drops its handles when it finds itself in a new process).

A part behind a URL is read through an fsspec file object: h5py calls back into Python while
it holds its global lock, and s3fs serves the read on its own event-loop thread. If the garbage
collector ran on that thread then and freed an h5py object, the free would wait for h5py's lock
and the reader for the read: a deadlock (seen under load). Those calls therefore run with the
collector paused (:func:`collector_paused`).
"""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from pipeline.errors import StoreError
from pipeline.stores.backend import STREAM_BYTES, PartBackend, PartReader, fsync_tree, regroup
from pipeline.stores.location import Location
from pipeline.stores.spec import StoreLayout

DATASET = "frames"
GZIP_LEVEL = 1


_PAUSE_LOCK = threading.Lock()
_PAUSES = [0, False]  # callers inside collector_paused(); whether the collector was enabled before the first


@contextmanager
def collector_paused() -> Iterator[None]:
    """Within the block (re-entrant, any thread) the cyclic garbage collector does not run; the
    collector's state before the outermost block is restored after it."""
    with _PAUSE_LOCK:
        if _PAUSES[0] == 0:
            _PAUSES[1] = gc.isenabled()
            gc.disable()
        _PAUSES[0] += 1
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _PAUSES[0] -= 1
            if _PAUSES[0] == 0 and _PAUSES[1]:
                gc.enable()


class HDF5PartReader(PartReader):
    """A part opened with h5py (local file, or a file object from fsspec: ``remote``, whose
    reads run with the collector paused, see the module docstring)."""

    def __init__(self, handle, where: str, *, remote: bool = False) -> None:  # noqa: ANN001 - h5py.File
        import h5py

        self.remote = remote
        self.handle = handle
        try:
            link = handle.get(DATASET, getlink=True)
            self.dataset = handle[DATASET]
        except KeyError:
            handle.close()
            raise StoreError(f"part data {where} has no dataset {DATASET!r}; the part is damaged") from None
        # a part holds its frames itself: links, external raw files and virtual datasets could
        # make a reader open files outside the store
        if not isinstance(link, h5py.HardLink) or self.dataset.external or self.dataset.is_virtual:
            handle.close()
            raise StoreError(
                f"part data {where}: {DATASET!r} refers to data outside the part (link, external or "
                "virtual dataset); refusing it"
            )
        self.n_frames, self.dim = (int(s) for s in self.dataset.shape)
        self.dtype = np.dtype(self.dataset.dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        if not self.remote:
            return self.dataset[start:stop]
        with collector_paused():
            return self.dataset[start:stop]

    def close(self) -> None:
        try:
            with collector_paused() if self.remote else nullcontext():
                self.handle.close()
        except Exception:  # noqa: BLE001 - closing a handle of a dead/forked process
            pass


class HDF5Backend(PartBackend):
    """Parts as HDF5 files (h5py)."""

    name = "hdf5"
    suffix = ".h5"

    def write_part(self, path: Path, frames: np.ndarray, layout: StoreLayout) -> None:
        import h5py

        n, dim = frames.shape
        options = {}
        if layout.compression != "none":  # zstd needs hdf5plugin; gzip-1 is built in
            options = {"compression": "gzip", "compression_opts": GZIP_LEVEL}
        with h5py.File(path, "w") as handle:
            handle.create_dataset(
                DATASET, data=frames, chunks=(self.chunk_rows(layout, n), dim), fletcher32=True, **options
            )
        fsync_tree(path)

    def write_part_pieces(
        self, path: Path, pieces: Iterable[np.ndarray], n_frames: int, dim: int, dtype: np.dtype, layout: StoreLayout
    ) -> None:
        """Write the part region by region (whole chunks at a time), never holding it whole."""
        import h5py

        chunk = self.chunk_rows(layout, n_frames)
        options = {}
        if layout.compression != "none":
            options = {"compression": "gzip", "compression_opts": GZIP_LEVEL}
        rows = chunk * max(1, STREAM_BYTES // (chunk * dim * np.dtype(dtype).itemsize))
        with h5py.File(path, "w") as handle:
            data = handle.create_dataset(
                DATASET, shape=(n_frames, dim), dtype=dtype, chunks=(chunk, dim), fletcher32=True, **options
            )
            at = 0
            for block in regroup(pieces, rows):
                data[at : at + len(block)] = block
                at += len(block)
        if at != n_frames:
            raise StoreError(f"part {path}: got {at} rows, expected {n_frames}")
        fsync_tree(path)

    def open_part(self, location: Location, rel: str, layout: StoreLayout) -> PartReader:
        import h5py

        local = location.local_path(rel)
        where = location.join(rel)
        try:
            if local is not None:  # parts are immutable: no HDF5 file locking (it fails on many NFS mounts)
                return HDF5PartReader(h5py.File(local, "r", locking=False), where)
            with collector_paused():
                return HDF5PartReader(h5py.File(location.open_binary(rel), "r"), where, remote=True)
        except FileNotFoundError:
            raise StoreError(f"part data {where} is missing") from None
        except OSError as exc:
            raise StoreError(f"part data {where} cannot be opened: {exc}") from None
