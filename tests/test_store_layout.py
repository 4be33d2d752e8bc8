"""Layout: a window touches at most two chunks (req. 1); files grow with parts, not tracks (req. 2)."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.stores import StoreSpec, create_store, open_store
from pipeline.stores.hdf5_backend import HDF5PartReader

DIM, CHUNK, HOP = 8, 64, 0.1


def _spec() -> StoreSpec:
    return StoreSpec(
        kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
        hop_seconds=HOP, window_seconds=1.0, frame0_center_seconds=0.5, clip_level=False, dim=DIM,
    )


def _one_part_store(path: Path, backend: str, n_tracks: int = 40):  # noqa: ANN202
    rng = np.random.default_rng(1)
    store = create_store(path, _spec(), backend=backend, chunk_frames=CHUNK)
    with store.writer(part_tracks=10_000) as writer:
        for i in range(n_tracks):
            frames = rng.standard_normal((int(rng.integers(30, 200)), DIM))
            writer.add(f"t{i}", frames, audio_sha256="s", duration=1.0)
    return open_store(path)


def _windows(store, n: int = 150):  # noqa: ANN001, ANN202
    """Random (track, t0, t1) windows up to CHUNK * HOP seconds long, and the chunks they must touch."""
    rng = np.random.default_rng(2)
    ids = store.track_ids()
    for _ in range(n):
        tid = ids[int(rng.integers(len(ids)))]
        entry = store.entry(tid)
        length = float(rng.uniform(0.05, CHUNK * HOP))
        t0 = float(rng.uniform(0.0, entry.n_frames * HOP))
        i0, i1 = store.frame_range(tid, t0, t0 + length)
        first, last = (entry.offset + i0) // CHUNK, (entry.offset + i1 - 1) // CHUNK
        expected = set(range(first, last + 1)) if i1 > i0 else set()
        yield tid, t0, t0 + length, expected


def test_zarr_window_reads_fetch_at_most_two_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zarr.abc.store import RangeByteRequest
    from zarr.storage import LocalStore

    store = _one_part_store(tmp_path / "s", "zarr")
    chunk_nbytes = CHUNK * DIM * 2 + 4  # float16 rows + crc32c; chunks lie in order in the shard
    fetched: list[int] = []
    original = LocalStore.get

    async def counting_get(self, key, prototype=None, byte_range=None):  # noqa: ANN001, ANN202
        if key.startswith("c/"):
            assert byte_range is not None, "a window read must not fetch a whole shard"
            if isinstance(byte_range, RangeByteRequest):
                assert byte_range.end - byte_range.start == chunk_nbytes
                fetched.append(byte_range.start // chunk_nbytes)
        return await original(self, key, prototype, byte_range)

    monkeypatch.setattr(LocalStore, "get", counting_get)
    touched_two = 0
    for tid, t0, t1, expected in _windows(store):
        fetched.clear()
        frames, times = store.read_window(tid, t0, t1)
        assert len(frames) == len(times)
        assert set(fetched) == expected and len(fetched) == len(expected) <= 2
        touched_two += len(expected) == 2
    assert touched_two > 10  # the windows did straddle chunk borders


class _CountingFile(io.FileIO):
    """A file whose reads are logged as (offset, size)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, "r")
        self.reads: list[tuple[int, int]] = []

    def readinto(self, buffer) -> int:  # noqa: ANN001
        at = self.tell()
        n = super().readinto(buffer)
        self.reads.append((at, n or 0))
        return n

    def read(self, size: int = -1) -> bytes:
        at = self.tell()
        data = super().read(size)
        self.reads.append((at, len(data)))
        return data


def test_hdf5_window_reads_fetch_at_most_two_chunks(tmp_path: Path) -> None:
    import h5py

    store = _one_part_store(tmp_path / "s", "hdf5")
    part = store.parts()[0]
    handle = _CountingFile(tmp_path / "s" / "parts" / part.file)
    h5 = h5py.File(handle, "r", rdcc_nbytes=0)  # no chunk cache: every chunk read hits the file
    reader = HDF5PartReader(h5, "counted")
    store._readers[part.name] = reader
    dsid = reader.dataset.id
    assert reader.dataset.chunks == (CHUNK, DIM)
    spans = []
    for i in range(dsid.get_num_chunks()):
        info = dsid.get_chunk_info(i)
        spans.append((info.chunk_offset[0] // CHUNK, info.byte_offset, info.byte_offset + info.size))
    touched_two = 0
    for tid, t0, t1, expected in _windows(store):
        handle.reads.clear()
        store.read_window(tid, t0, t1)
        touched = {k for k, lo, hi in spans for at, n in handle.reads if at < hi and at + n > lo}
        assert touched == expected and len(touched) <= 2
        touched_two += len(expected) == 2
    assert touched_two > 10
    h5.close()


def _files(root: Path) -> int:
    return sum(len(names) for _f, _d, names in os.walk(root))


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_file_count_grows_with_parts_not_tracks(tmp_path: Path, backend: str) -> None:
    counts = {}
    for n_tracks in (20, 200):
        path = tmp_path / f"{backend}-{n_tracks}"
        store = create_store(path, _spec(), backend=backend)
        with store.writer(part_tracks=n_tracks // 2) as writer:
            for i in range(n_tracks):
                writer.add(f"t{i}", np.full((3, DIM), i % 7), audio_sha256="s", duration=0.3)
        reopened = open_store(path)
        assert len(reopened) == n_tracks and len(reopened.parts()) == 2
        counts[n_tracks] = _files(path)
        assert reopened.disk_usage()[0] == counts[n_tracks]
    per_part = 2 if backend == "zarr" else 1  # zarr.json + shard | .h5
    # + teacher.json, parts.json, .lock and one index segment (the second commit merged the first's)
    assert counts[20] == counts[200] == 4 + 2 * per_part
