"""Writing and reading tracks: dtypes, windows by time, writer semantics, metadata-only open (req. 8)."""
from __future__ import annotations

import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import StoreError
from pipeline.stores import StoreSpec, create_store, open_store

BACKENDS = ["zarr", "hdf5"]


def _spec(**changes) -> StoreSpec:
    base = dict(
        kind="embedding", teacher="fake", config={"layer": "x"}, weights_sha256="ab" * 32, sample_rate=16000,
        hop_seconds=0.5, window_seconds=1.0, frame0_center_seconds=0.25, clip_level=False, dim=8,
    )
    base.update(changes)
    return StoreSpec(**base)


def _tracks(n: int, seed: int = 0, dim: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"clip-{i:03d}": rng.standard_normal((5 + 3 * i, dim)).astype(np.float32) for i in range(n)}


def _fill(path: Path, tracks: dict[str, np.ndarray], backend: str = "zarr", **kw):  # noqa: ANN202
    store = create_store(path, _spec(**kw), backend=backend, chunk_frames=16)
    with store.writer(part_tracks=4) as writer:
        for tid, frames in tracks.items():
            writer.add(tid, frames, audio_sha256=f"sha-{tid}", duration=len(frames) * 0.5)
    return store


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_trip_float16_default_and_float32(tmp_path: Path, backend: str) -> None:
    tracks = _tracks(9)
    _fill(tmp_path / "s16", tracks, backend)
    _fill(tmp_path / "s32", tracks, backend, dtype="float32")
    s16, s32 = open_store(tmp_path / "s16"), open_store(tmp_path / "s32")
    assert s16.track_ids() == list(tracks) and len(s16) == 9 and "clip-003" in s16 and "nope" not in s16
    assert len(s16.parts()) == 3  # part_tracks=4 -> 4 + 4 + 1
    for tid, frames in tracks.items():
        got = s16.read(tid)
        assert got.dtype == np.float16 and got.shape == frames.shape
        np.testing.assert_array_equal(got, frames.astype(np.float16))
        assert s32.read(tid).dtype == np.float32 and np.array_equal(s32.read(tid), frames)
    np.testing.assert_array_equal(s16.read("clip-004", 3, 9), tracks["clip-004"][3:9].astype(np.float16))
    assert s16.read("clip-000", 2, 10_000).shape == (3, 8)  # clipped like a slice
    entry = s16.entry("clip-002")
    assert (entry.n_frames, entry.audio_sha256, entry.duration) == (11, "sha-clip-002", 5.5)
    assert s16.expected_audio_sha("clip-002") == "sha-clip-002" and s16.expected_audio_sha("nope") == ""
    with pytest.raises(StoreError, match=r"'nope' is not in the store .*s16"):
        s16.entry("nope")


def test_windows_by_time_follow_frame_centers(tmp_path: Path) -> None:
    frames = np.arange(40 * 8, dtype=np.float32).reshape(40, 8)
    store = _fill(tmp_path / "s", {"t": frames})
    times = store.frame_times("t")
    np.testing.assert_allclose(times, 0.25 + 0.5 * np.arange(40))
    got, at = store.read_window("t", 1.25, 3.0)  # centers 1.25, 1.75, 2.25, 2.75 ([t0, t1): 3.25 excluded)
    np.testing.assert_allclose(at, [1.25, 1.75, 2.25, 2.75])
    np.testing.assert_array_equal(got, frames[2:6].astype(np.float16))
    assert store.read_window("t", 1.3, 1.7)[0].shape == (0, 8)  # no center inside
    assert store.frame_range("t", -5.0, 0.3) == (0, 1) and store.frame_range("t", 19.0, 99.0) == (38, 40)
    audio = create_store(tmp_path / "audio", StoreSpec.for_audio(16000))
    samples = (np.arange(48000) % 30000).astype(np.int16)
    with audio.writer() as writer:
        writer.add("t", samples, audio_sha256="s", duration=3.0)  # (n,) accepted for dim 1
    got, at = audio.read_window("t", 1.0, 1.5)
    assert got.dtype == np.int16 and got.shape == (8000, 1) and at[0] == 1.0
    np.testing.assert_array_equal(got[:, 0], samples[16000:24000])


def test_clip_level_store_returns_its_one_frame(tmp_path: Path) -> None:
    spec = _spec(clip_level=True, hop_seconds=0.0, frame0_center_seconds=0.0)
    store = create_store(tmp_path / "s", spec)
    with store.writer() as writer:
        writer.add("c", np.full((1, 8), 2.0, np.float32), audio_sha256="s", duration=10.0)
    frames, times = store.read_window("c", 7.0, 8.0)
    assert frames.shape == (1, 8) and frames.dtype == np.float16 and times.tolist() == [5.0]


def test_writer_validates_and_discards_on_error(tmp_path: Path) -> None:
    store = create_store(tmp_path / "s", _spec())
    with store.writer() as writer:
        with pytest.raises(StoreError, match=r"'bad': frames have shape \(3, 7\), expected \(n_frames, 8\)"):
            writer.add("bad", np.zeros((3, 7)), audio_sha256="s", duration=1.0)
        with pytest.raises(StoreError, match="not finite in float16"):
            writer.add("huge", np.full((2, 8), 1e6), audio_sha256="s", duration=1.0)
        with pytest.raises(StoreError, match="no frames"):
            writer.add("empty", np.zeros((0, 8)), audio_sha256="s", duration=0.0)
        writer.add("ok", np.zeros((2, 8)), audio_sha256="s", duration=1.0)
        writer.add("ok", np.ones((2, 8)), audio_sha256="s", duration=1.0)  # a repeat is ignored
    assert store.track_ids() == ["ok"] and not store.read("ok").any()
    with pytest.raises(RuntimeError):
        with store.writer() as writer:
            writer.add("lost", np.zeros((2, 8)), audio_sha256="s", duration=1.0)
            raise RuntimeError("teacher crashed")
    assert "lost" not in open_store(tmp_path / "s")  # the buffer was discarded, never half-written
    with pytest.raises(StoreError, match="read-only"):
        open_store(tmp_path / "s").writer()


def test_parts_are_cut_by_tracks_and_bytes(tmp_path: Path) -> None:
    store = create_store(tmp_path / "s", _spec())
    writer = store.writer(part_tracks=100, part_bytes=10 * 8 * 2)  # 10 float16 frames
    writer.add("a", np.zeros((6, 8)), audio_sha256="s", duration=1.0)
    assert len(store.parts()) == 0 and len(writer) == 1  # buffered, not visible yet
    writer.add("b", np.zeros((6, 8)), audio_sha256="s", duration=1.0)  # 12 frames >= 10: commits
    assert len(store.parts()) == 1 and store.track_ids() == ["a", "b"]
    writer.add("c", np.zeros((1, 8)), audio_sha256="s", duration=1.0)
    assert writer.commit() == ["c"] and writer.commit() == []
    writer.close()
    assert [len(p.entries) for p in open_store(tmp_path / "s").parts()] == [2, 1]


class _Counter:
    def __init__(self) -> None:
        self.calls: list[tuple] = []


@pytest.mark.parametrize("backend", BACKENDS)
def test_open_reads_only_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    import h5py
    from zarr.storage import LocalStore

    _fill(tmp_path / "s", _tracks(6), backend)
    counter = _Counter()
    original_get, original_file = LocalStore.get, h5py.File

    async def counting_get(self, key, prototype=None, byte_range=None):  # noqa: ANN001, ANN202
        counter.calls.append(("zarr", key, byte_range))
        return await original_get(self, key, prototype, byte_range)

    def counting_file(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        counter.calls.append(("h5py", args[0]))
        return original_file(*args, **kwargs)

    monkeypatch.setattr(LocalStore, "get", counting_get)
    monkeypatch.setattr(h5py, "File", counting_file)
    store = open_store(tmp_path / "s")
    ids = store.track_ids()
    entries = [store.entry(t) for t in ids]
    assert store.frame_times(ids[0]).shape == (entries[0].n_frames,)
    assert counter.calls == []  # no array metadata, no chunk, no file handle
    store.read(ids[1], 0, 2)
    assert counter.calls  # the counters do see data reads


def test_open_from_fsspec_urls(tmp_path: Path) -> None:
    import fsspec

    tracks = _tracks(6)
    _fill(tmp_path / "s", tracks)
    remote = open_store("file://" + str(tmp_path / "s"))
    assert remote.track_ids() == list(tracks) and remote.mode == "r"
    np.testing.assert_array_equal(remote.read("clip-005", 1, 4), tracks["clip-005"][1:4].astype(np.float16))
    memory = fsspec.filesystem("memory")
    for folder, _dirs, names in os.walk(tmp_path / "s"):
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), tmp_path / "s")
            memory.pipe(f"/shared/s/{rel}", Path(folder, name).read_bytes())
    try:
        shared = open_store("memory://shared/s")
        frames, _times = shared.read_window("clip-004", 0.0, 2.0)
        np.testing.assert_array_equal(frames, tracks["clip-004"][:4].astype(np.float16))
        assert shared.verify().ok
    finally:
        memory.rm("/shared", recursive=True)


def _child_read(store, track_id: str, queue) -> None:  # noqa: ANN001
    queue.put(store.read(track_id).astype(np.float32).sum())


@pytest.mark.parametrize("backend", BACKENDS)
def test_store_is_fork_and_pickle_safe(tmp_path: Path, backend: str) -> None:
    tracks = _tracks(4)
    _fill(tmp_path / "s", tracks, backend)
    store = open_store(tmp_path / "s")
    store.read("clip-001")  # the parent holds an open h5py handle / a running zarr event loop now
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_read, args=(store, "clip-003", queue))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    expected = float(tracks["clip-003"].astype(np.float16).astype(np.float32).sum())
    assert queue.get(timeout=1800) == pytest.approx(expected)
    import pickle

    clone = pickle.loads(pickle.dumps(store))
    assert clone._readers == {} and np.array_equal(clone.read("clip-002"), store.read("clip-002"))
