"""Zarr v3 parts: one sharded (N, dim) array per part, a handful of files.

A part is written in one go by one process as a single shard (``shards`` = the whole
array), so a part is two files (``zarr.json`` and ``c/0/0``) whatever its track count.
Inside the shard, chunks of ``chunk_frames`` rows are the unit of reading: a window read
fetches the shard index and one or two chunks by byte range. Each chunk carries a
crc32c, so a corrupted chunk raises instead of returning wrong frames.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from pipeline.errors import StoreError
from pipeline.stores.backend import STREAM_BYTES, PartBackend, PartReader, fsync_tree, regroup
from pipeline.stores.location import Location
from pipeline.stores.spec import StoreLayout

ZSTD_LEVEL = 3


def _codecs(layout: StoreLayout) -> list:
    from zarr.codecs import Crc32cCodec, ZstdCodec

    if layout.compression == "zstd":
        return [ZstdCodec(level=ZSTD_LEVEL), Crc32cCodec()]
    if layout.compression == "none":
        return [Crc32cCodec()]
    raise StoreError(f"zarr compression {layout.compression!r} is not one of: none, zstd")


class ZarrPartReader(PartReader):
    """A part opened with zarr (local folder or fsspec URL)."""

    def __init__(self, array) -> None:  # noqa: ANN001 - zarr.Array
        self.array = array
        self.n_frames, self.dim = (int(s) for s in array.shape)
        self.dtype = np.dtype(array.dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        return np.asarray(self.array[start:stop])


class ZarrBackend(PartBackend):
    """Parts as zarr v3 arrays with one shard each."""

    name = "zarr"
    suffix = ".zarr"

    def write_part(self, path: Path, frames: np.ndarray, layout: StoreLayout) -> None:
        import zarr
        from zarr.storage import LocalStore

        n, dim = frames.shape
        chunk = self.chunk_rows(layout, n)
        shard = -(-n // chunk) * chunk
        array = zarr.create_array(
            store=LocalStore(str(path)),
            shape=(n, dim),
            dtype=frames.dtype,
            chunks=(chunk, dim),
            shards=(shard, dim),
            compressors=_codecs(layout),
            fill_value=0,
            zarr_format=3,
            dimension_names=("frame", "dim"),
            config={"write_empty_chunks": True},
        )
        array[:] = frames
        fsync_tree(path)

    def write_part_pieces(
        self, path: Path, pieces: Iterable[np.ndarray], n_frames: int, dim: int, dtype: np.dtype, layout: StoreLayout
    ) -> None:
        """Write the part shard by shard (shards of about :data:`STREAM_BYTES`), never holding it whole.

        Such a part has one shard file per ~8 MiB instead of one; readers see the same array.
        """
        import zarr
        from zarr.storage import LocalStore

        chunk = self.chunk_rows(layout, n_frames)
        shard = chunk * max(1, STREAM_BYTES // (chunk * dim * np.dtype(dtype).itemsize))
        array = zarr.create_array(
            store=LocalStore(str(path)),
            shape=(n_frames, dim),
            dtype=dtype,
            chunks=(chunk, dim),
            shards=(min(shard, -(-n_frames // chunk) * chunk), dim),
            compressors=_codecs(layout),
            fill_value=0,
            zarr_format=3,
            dimension_names=("frame", "dim"),
            config={"write_empty_chunks": True},
        )
        at = 0
        for block in regroup(pieces, shard):
            array[at : at + len(block)] = block
            at += len(block)
        if at != n_frames:
            raise StoreError(f"part {path}: got {at} rows, expected {n_frames}")
        fsync_tree(path)

    def open_part(self, location: Location, rel: str, layout: StoreLayout) -> PartReader:
        import zarr
        from zarr.storage import LocalStore

        local = location.local_path(rel) if location.local is not None else None
        store = LocalStore(str(local), read_only=True) if local is not None else location.join(rel)
        try:
            array = zarr.open_array(store=store, mode="r", zarr_format=3)
        except FileNotFoundError as exc:
            raise StoreError(f"part data {location.join(rel)} is missing ({exc})") from None
        except Exception as exc:  # zarr raises several types for a damaged zarr.json
            raise StoreError(
                f"part data {location.join(rel)} cannot be opened: {type(exc).__name__}: {exc}"
            ) from None
        return ZarrPartReader(array)
