"""The extraction engine's pipeline: long tracks in bounded memory, failures mid-file, store errors.

A tiny deterministic teacher (window statistics) keeps these fast; the musicnn runs are in
``test_extract.py``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import pipeline.stores.backend as backend
import pipeline.stores.writer as store_writer
from pipeline.audio import read_audio, write_audio
from pipeline.errors import StoreError
from pipeline.extraction import _audio_to_int16, extract_tracks
from pipeline.manifests import Clip
from pipeline.stores import StoreSpec, create_store, open_store
from pipeline.teachers.base import Teacher, WindowGrid


class StatsTeacher(Teacher):
    """4-d frames (mean, std, min, max) of 0.5 s windows every 0.25 s at 16 kHz."""

    name = "stats"

    def __init__(self, nan: bool = False) -> None:
        super().__init__(config={"nan": nan})
        self.nan = nan

    @property
    def sample_rate(self) -> int:
        return 16000

    @property
    def embedding_dim(self) -> int:
        return 4

    @property
    def grid(self) -> WindowGrid:
        return WindowGrid(16000, 8000, 4000, first_start=-4000, tail="pad")

    def weight_files(self) -> list[Path]:
        return []

    def _load(self, device: str) -> None:
        pass

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        out = np.stack([windows.mean(1), windows.std(1), windows.min(1), windows.max(1)], axis=1)[:, None]
        if self.nan:
            out[:] = np.inf
        return out.astype(np.float32)


def _clip(root: Path, name: str, seconds: float, rate: int = 22050, seed: int = 0) -> Clip:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.4 * np.sin(2 * np.pi * (220 + 50 * seed) * t) + 0.05 * rng.standard_normal(len(t))
    write_audio(root / f"{name}.flac", audio.astype(np.float32), rate)
    return Clip(name, f"{name}.flac", seconds, rate, (0,), (True,))


def _stores(tmp_path: Path, teacher: Teacher, backend_name: str):  # noqa: ANN202
    emb = create_store(tmp_path / "emb", StoreSpec.from_teacher(teacher, dtype="float32"), backend=backend_name)
    audio = create_store(tmp_path / "emb" / "audio", StoreSpec.for_audio(8000), backend=backend_name)
    return emb, audio


@pytest.mark.parametrize("backend_name", ["zarr", "hdf5"])
def test_long_track_is_spooled_and_written_piece_by_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend_name: str
) -> None:
    """With tiny memory limits a track's frames and cached audio go through a spool file and a
    shard-by-shard part write; what is stored equals the whole-file computation."""
    import pipeline.extraction as extraction

    monkeypatch.setattr(store_writer, "SPOOL_BYTES", 4096)
    monkeypatch.setattr(store_writer, "_READ_BYTES", 3000)
    monkeypatch.setattr(backend, "STREAM_BYTES", 20000)
    monkeypatch.setattr(extraction, "BLOCK_SECONDS", 1.3)
    clips = [_clip(tmp_path, "long", 9.0, seed=1), _clip(tmp_path, "short", 0.7, seed=2)]
    teacher = StatsTeacher().load("cpu")
    emb, audio = _stores(tmp_path, teacher, backend_name)
    with emb.writer(part_tracks=8) as writer, audio.writer(part_tracks=8) as audio_writer:
        outcomes = extract_tracks(teacher, clips, tmp_path, writer, audio_writer=audio_writer,
                                  audio_sample_rate=8000, batch_seconds=1.0)
    assert sorted(o.status for o in outcomes) == ["done", "done"]
    for clip in clips:
        whole = read_audio(tmp_path / clip.audio_path, sample_rate=16000)
        expected = teacher.embed(whole[None])[0]
        np.testing.assert_allclose(open_store(tmp_path / "emb").read(clip.id), expected, atol=1e-6)
        cached = open_store(tmp_path / "emb" / "audio").read(clip.id).astype(np.int32)
        whole_file = _audio_to_int16([whole], 16000, 8000)  # the former whole-track cache
        assert cached.shape == whole_file.shape
        assert np.abs(cached - whole_file).max() <= 1  # streamed resampling: float rounding only
    for store in (open_store(tmp_path / "emb"), open_store(tmp_path / "emb" / "audio")):
        assert store.verify().ok
        assert not list((store.location.local / "tmp").glob("*"))  # spools removed


@pytest.mark.parametrize("decoders", [1, 3])
def test_a_file_failing_mid_decode_is_skipped_without_leftovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, decoders: int
) -> None:
    """A truncated file fails after some of its windows were batched; it is reported, the others stored."""
    import pipeline.extraction as extraction

    monkeypatch.setattr(store_writer, "SPOOL_BYTES", 4096)
    monkeypatch.setattr(extraction, "BLOCK_SECONDS", 1.0)
    clips = [_clip(tmp_path, f"c{i}", 6.0 - i, seed=i) for i in range(3)]
    data = (tmp_path / "c1.flac").read_bytes()
    (tmp_path / "c1.flac").write_bytes(data[: len(data) // 2])
    teacher = StatsTeacher().load("cpu")
    emb, audio = _stores(tmp_path, teacher, "zarr")
    with emb.writer() as writer, audio.writer() as audio_writer:
        outcomes = extract_tracks(teacher, clips, tmp_path, writer, audio_writer=audio_writer,
                                  audio_sample_rate=8000, batch_seconds=0.5, decode_workers=decoders)
    status = {o.track_id: o.status for o in outcomes}
    assert status == {"c0": "done", "c1": "failed", "c2": "done"}
    assert "c1.flac" in next(o.reason for o in outcomes if o.track_id == "c1")
    for clip in (clips[0], clips[2]):  # interleaved decoders still give each track its own frames
        whole = read_audio(tmp_path / clip.audio_path, sample_rate=16000)
        np.testing.assert_allclose(open_store(tmp_path / "emb").read(clip.id), teacher.embed(whole[None])[0], atol=1e-6)
    for store in (open_store(tmp_path / "emb"), open_store(tmp_path / "emb" / "audio")):
        assert sorted(store.track_ids()) == ["c0", "c2"] and store.verify().ok
        assert not list((store.location.local / "tmp").glob("*"))


def test_a_store_error_in_the_writer_thread_reaches_the_caller(tmp_path: Path) -> None:
    """Non-finite frames are refused by the part writer (in the track writer thread): the call raises."""
    clips = [_clip(tmp_path, "c0", 2.0)]
    teacher = StatsTeacher(nan=True).load("cpu")
    emb, _audio = _stores(tmp_path, teacher, "zarr")
    with pytest.raises(StoreError, match="not finite"):
        with emb.writer() as writer:
            extract_tracks(teacher, clips, tmp_path, writer, batch_seconds=0.5)
    assert len(open_store(tmp_path / "emb")) == 0


class ClipStatsTeacher(StatsTeacher):
    """Clip level: one 4-d frame per clip."""

    name = "clip-stats"

    @property
    def grid(self) -> None:  # type: ignore[override]
        return None


def test_clip_level_clips_of_one_length_share_a_pass(tmp_path: Path) -> None:
    calls: list[int] = []
    teacher = ClipStatsTeacher().load("cpu")
    original = teacher.embed_windows
    teacher.embed_windows = lambda w: calls.append(len(w)) or original(w)  # type: ignore[method-assign]
    clips = [_clip(tmp_path, f"c{i}", s, rate=16000, seed=i) for i, s in enumerate([2.0, 2.0, 2.0, 3.0, 2.0])]
    emb, audio = _stores(tmp_path, teacher, "hdf5")
    with emb.writer() as writer, audio.writer() as audio_writer:
        outcomes = extract_tracks(teacher, clips, tmp_path, writer, audio_writer=audio_writer,
                                  audio_sample_rate=8000, batch_seconds=4.0)
    assert [o.status for o in outcomes] == ["done"] * 5
    assert calls == [2, 1, 1, 1]  # 2 x 2 s fill 4 s; the 3 s clip breaks the run; the last alone
    store = open_store(tmp_path / "emb")
    for clip in clips:
        whole = read_audio(tmp_path / clip.audio_path, sample_rate=16000)
        np.testing.assert_allclose(store.read(clip.id), original(whole[None])[0], atol=1e-6)
