"""StoreSpec provenance: teacher.json round trip, differences, refusing foreign appends (req. 5)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ProvenanceError, StoreError, UnknownNameError
from pipeline.stores import StoreSpec, create_store, default_chunk_frames, open_store
from pipeline.teachers.base import Teacher, WindowGrid


def _spec(**changes) -> StoreSpec:
    base = dict(
        kind="embedding", teacher="fake", config={"layer": "penultimate", "hop_seconds": 1.0},
        weights_sha256="ab" * 32, sample_rate=16000, hop_seconds=1.0, window_seconds=3.0,
        frame0_center_seconds=1.5, clip_level=False, dim=16, dtype="float16", versions={"numpy": "2.4"},
    )
    base.update(changes)
    return StoreSpec(**base)


class _FakeTeacher(Teacher):
    """A minimal teacher: 16 dims, 3 s windows every second at 16 kHz."""

    name = "fake"

    def __init__(self, layer: str = "penultimate") -> None:
        super().__init__(config={"layer": layer, "weights": "/somewhere"})

    @property
    def sample_rate(self) -> int:
        return 16000

    @property
    def embedding_dim(self) -> int:
        return 16

    @property
    def grid(self) -> WindowGrid:
        return WindowGrid(16000, 48000, 16000)

    def weight_files(self) -> list[Path]:
        return []

    def _load(self, device: str) -> None:  # pragma: no cover - never loaded here
        pass

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:  # pragma: no cover
        return np.zeros((len(windows), 1, 16), np.float32)


def test_differences_name_each_changed_field_and_ignore_versions() -> None:
    a = _spec()
    b = _spec(
        config={"layer": "max_pool", "hop_seconds": 1.0}, weights_sha256="cd" * 32, versions={"numpy": "9"}
    )
    diffs = a.differences(b)
    assert "config.layer: 'penultimate' != 'max_pool'" in diffs
    assert any(d.startswith("weights_sha256: 'abababababab..' != 'cdcdcdcdcdcd..'") for d in diffs)
    assert len(diffs) == 2  # versions are recorded, never compared
    assert a.differences(_spec(versions={"zarr": "0"})) == []
    assert a.differences(_spec(config={"layer": "penultimate", "hop_seconds": 1.0, "extra": 2})) == [
        "config.extra: '<missing>' != 2"
    ]


def test_from_teacher_records_geometry_and_drops_weight_path() -> None:
    spec = StoreSpec.from_teacher(_FakeTeacher(), dtype="float32")
    assert (spec.teacher, spec.dim, spec.dtype, spec.sample_rate) == ("fake", 16, "float32", 16000)
    assert spec.hop_seconds == 1.0 and spec.window_seconds == 3.0 and spec.frame0_center_seconds == 1.5
    assert "weights" not in spec.config and spec.config["layer"] == "penultimate"
    assert spec.weights_sha256 == _FakeTeacher().weights_sha256  # sha256 of no files
    assert "numpy" in spec.versions and "python" in spec.versions
    with pytest.raises(StoreError, match="int16"):
        StoreSpec.from_teacher(_FakeTeacher(), dtype="int16")


def test_teacher_json_round_trip_is_plain_json(tmp_path: Path) -> None:
    spec = _spec(config={"layers": (1, 2), "nested": {"a": 0.5}})
    create_store(tmp_path / "s", spec)
    data = json.loads((tmp_path / "s" / "teacher.json").read_text())
    assert data["store"]["backend"] == "zarr" and data["teacher"] == "fake"
    reopened = open_store(tmp_path / "s").spec
    assert reopened == spec and reopened.differences(spec) == []


def test_append_with_other_settings_or_weights_is_refused_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = create_store(path, _spec())
    with store.writer() as writer:
        writer.add("a", np.ones((3, 16), np.float32), audio_sha256="s", duration=3.0)
    other = _spec(config={"layer": "max_pool", "hop_seconds": 1.0}, weights_sha256="cd" * 32)
    with pytest.raises(ProvenanceError) as info:
        create_store(path, other)
    message = str(info.value)
    assert "config.layer: 'penultimate' != 'max_pool'" in message
    assert "weights_sha256" in message and "--overwrite" in message and str(path) in message
    assert len(open_store(path)) == 1  # nothing was touched
    with pytest.raises(ProvenanceError, match="dim: 16 != 32"):
        create_store(path, _spec(dim=32))


def test_same_spec_resumes_other_backend_refused_overwrite_replaces(tmp_path: Path) -> None:
    path = tmp_path / "store"
    with create_store(path, _spec()).writer() as writer:
        writer.add("a", np.ones((3, 16), np.float32), audio_sha256="s", duration=3.0)
    resumed = create_store(path, _spec(versions={"numpy": "other"}))
    assert resumed.track_ids() == ["a"] and resumed.mode == "a"
    with pytest.raises(StoreError, match="'zarr' backend, not 'hdf5'"):
        create_store(path, _spec(), backend="hdf5")
    with pytest.raises(StoreError, match="chunks of"):
        create_store(path, _spec(), chunk_frames=7)
    fresh = create_store(path, _spec(dim=32), backend="hdf5", overwrite=True)
    assert len(fresh) == 0 and open_store(path).backend == "hdf5" and open_store(path).spec.dim == 32


def test_bad_paths_and_names_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("x")
    with pytest.raises(StoreError, match="not an embedding store"):
        create_store(tmp_path / "notes", _spec(), overwrite=True)
    assert (tmp_path / "notes" / "keep.txt").exists()
    with pytest.raises(StoreError, match="teacher.json is missing"):
        open_store(tmp_path / "nothing")
    with pytest.raises(UnknownNameError, match="zarr, hdf5"):
        create_store(tmp_path / "x", _spec(), backend="parquet")
    with pytest.raises(StoreError, match="teacher.json is missing"):  # a URL store opens for appending (issue 22)
        open_store("file://" + str(tmp_path / "x"), mode="a")


@pytest.mark.parametrize(
    "spec",
    [_spec(dim=16), _spec(dim=200), _spec(dim=512, hop_seconds=0.1), _spec(dim=128, hop_seconds=0.96)],
    ids=["16", "200", "512@0.1", "128@0.96"],
)
def test_default_chunks_hold_a_window_and_are_256k_to_1m(spec: StoreSpec) -> None:
    frames = default_chunk_frames(spec)
    assert 256 << 10 <= frames * spec.dim * spec.itemsize <= 1 << 20
    assert frames + 1 >= 30.0 / spec.hop_seconds  # a 30 s window touches at most two chunks


def test_default_chunks_of_audio_caches_and_wide_teachers() -> None:
    audio = StoreSpec.for_audio(16000)
    assert (audio.kind, audio.dtype, audio.dim, audio.weights_sha256) == ("audio", "int16", 1, "")
    assert default_chunk_frames(audio) >= 1 << 16
    for dim, hop in [(6144, 0.1), (1295, 0.05)]:  # OpenL3-6144, PaSST: the window bound wins over size
        assert default_chunk_frames(_spec(dim=dim, hop_seconds=hop)) + 1 >= 30.0 / hop
