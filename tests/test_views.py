"""Augmented views in the store (pipeline/views.py): the student hears what the teacher embedded.

The test teacher's frames are its input windows themselves (0.05-s windows, frame = the 800
samples), so a view's stored frames are the exact audio the teacher was given; the loader's
served student audio is compared with them bit for bit (16 kHz teacher and cache: no resampler
between them).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.config import ViewAugment, load_params
from pipeline.data import ClipDataset
from pipeline.audio_source import AudioSource
from pipeline.manifests import Clip, load_split
from pipeline.stores import open_store
from pipeline.teachers import TEACHERS, Teacher, WindowGrid
from pipeline.views import (VIEWS_FILE, ViewRenderer, draw_view, parse_view_track, read_view_table, render_view,
                            verify_views, view_labels, view_track_id)
from stages import extract
from tests.extract_fixtures import make_dataset

WINDOW = 800  # samples at 16 kHz: 0.05 s


@dataclass(frozen=True)
class NoSettings:
    """The test teacher has no settings."""


class WindowAudioTeacher(Teacher):
    """Frames are the windows' samples: the store keeps exactly the audio the teacher heard."""

    name = "window_audio"
    config_type = NoSettings
    weights_hint = "needs no weights"

    @property
    def sample_rate(self) -> int:
        return 16000

    @property
    def embedding_dim(self) -> int:
        return WINDOW

    @property
    def grid(self) -> WindowGrid:
        return WindowGrid(16000, window=WINDOW, hop=WINDOW)

    def weight_files(self) -> list[Path]:
        return []

    def weights_available(self) -> bool:
        return True

    def _load(self, device: str) -> None:
        pass

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        return np.asarray(windows, dtype=np.float32)[:, None, :]


@pytest.fixture()
def teacher(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setitem(TEACHERS._items, WindowAudioTeacher.name, WindowAudioTeacher)
    return WindowAudioTeacher.name


def _params(tmp_path: Path, views: int, **extract_settings: object):  # noqa: ANN202
    path = make_dataset(tmp_path, n_clips=4, seconds=1.0, views=views, dtype="float32", **extract_settings)
    data = yaml.safe_load(path.read_text())
    data["teachers"]["window_audio"] = {}
    path.write_text(yaml.safe_dump(data))
    return load_params(path)


def _store(params) -> Path:  # noqa: ANN001
    return Path(params.extract.store_root) / "window_audio"


def _train_set(params, *, teacher: bool = True, clip_seconds: float = 0.5) -> ClipDataset:  # noqa: ANN001
    store = _store(params)
    clips = load_split(Path(params.data.manifests), "train")
    audio = AudioSource(params.data.audio_root, 16000, store / "audio")
    renderer = ViewRenderer(read_view_table(store), audio, {c.id: c for c in clips})  # type: ignore[arg-type]
    return ClipDataset(clips, audio, clip_seconds=clip_seconds, teacher_store=store if teacher else None,
                       random_crop=True, seed=3, view_renderer=renderer)


# ---- pure functions -------------------------------------------------------------------------

def test_a_view_is_a_pure_function_of_clip_index_and_seed() -> None:
    augment = ViewAugment(mix_probability=1.0)
    partners = ["a", "b", "c"]
    first = draw_view("a", 2, augment, partners)
    assert first == draw_view("a", 2, augment, partners)
    assert first != draw_view("a", 3, augment, partners)
    assert first != draw_view("a", 2, ViewAugment(seed=1, mix_probability=1.0), partners)
    assert first.partner in ("b", "c") and 0.6 <= first.share <= 0.9
    assert abs(first.gain_db) <= 6.0 and 0.94 <= first.speed <= 1.06 and 150.0 <= first.eq_hz <= 6000.0
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 16000).astype(np.float32)
    other = np.random.default_rng(1).uniform(-0.5, 0.5, 9000).astype(np.float32)
    once, again = render_view(audio, 16000, first, other), render_view(audio.copy(), 16000, first, other.copy())
    assert once.dtype == np.float32 and once.shape == audio.shape
    assert once.tobytes() == again.tobytes()  # bit-identical
    assert not np.allclose(once, audio, atol=1e-3)


def test_render_needs_the_partner_and_keeps_the_clip_length() -> None:
    params = draw_view("a", 1, ViewAugment(mix_probability=1.0), ["a", "b"])
    with pytest.raises(ValueError, match="mixes in 'b'"):
        render_view(np.zeros(100, np.float32), 16000, params)
    quiet = draw_view("a", 1, ViewAugment(gain_db=0, speed=0, eq_db=0, mix_probability=0), ["a", "b"])
    audio = np.linspace(-1, 1, 333, dtype=np.float32)
    assert render_view(audio, 16000, quiet).tobytes() == audio.tobytes()  # the identity view is the clip


def test_mixed_view_labels_follow_the_mixup_rule() -> None:
    own = Clip("a", "a.wav", 1.0, 16000, (1, 0, 0), (True, True, False))
    other = Clip("b", "b.wav", 1.0, 16000, (0, 1, 1), (True, True, True))
    labels, known = view_labels(own, other, 0.75)
    np.testing.assert_allclose(labels, [0.75, 0.25, 0.25])
    assert known.tolist() == [True, True, True]
    unlabeled = Clip("u", "u.wav", 1.0, 16000, (0, 0, 0), (False, False, False))
    assert not view_labels(own, unlabeled, 0.75)[1].any()  # as mixup: an unlabeled partner masks the row
    assert view_labels(own, None, 1.0)[1].tolist() == [True, True, False]


def test_view_ids() -> None:
    assert view_track_id("x#1", 3) == "x#1#v3"
    assert parse_view_track("x#1#v3") == ("x#1", 3)
    assert parse_view_track("clip#v0") is None and parse_view_track("clip") is None


# ---- stage one and the loader ---------------------------------------------------------------

def test_student_audio_is_the_audio_the_teacher_embedded(tmp_path: Path, teacher: str) -> None:
    params = _params(tmp_path, views=3)
    report = extract.run(params, teacher=teacher, progress=False)
    assert report.ok and report.done == 4 and report.views_done == 12
    table = read_view_table(_store(params))
    assert table is not None and any(p.partner for p in table.views.values())
    dataset = _train_set(params)
    served = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            track = dataset.renderer.draw(dataset.clips[index].id, 3, epoch, index)  # type: ignore[union-attr]
            item = dataset[index]
            heard = item.teachers[0].reshape(-1)
            served.add(track)
            if not parse_view_track(track):  # the clean clip: the teacher read the file, the student the int16 cache
                np.testing.assert_allclose(item.audio[: len(heard)], heard, atol=2e-4)
                continue
            assert item.audio[: len(heard)].tobytes() == heard.tobytes(), track  # bit for bit
            if parse_view_track(track):
                labels, known = dataset.renderer.labels(track)  # type: ignore[union-attr]
                assert item.labels.tolist() == labels.tolist() and item.known.tolist() == known.tolist()
    assert any(parse_view_track(t) for t in served) and any(not parse_view_track(t) for t in served)


def test_baseline_gets_the_same_views(tmp_path: Path, teacher: str) -> None:
    params = _params(tmp_path, views=2)
    extract.run(params, teacher=teacher, progress=False)
    with_teacher, baseline = _train_set(params, clip_seconds=1.0), _train_set(params, teacher=False, clip_seconds=1.0)
    for epoch in range(3):
        with_teacher.set_epoch(epoch)
        baseline.set_epoch(epoch)
        for index in range(len(baseline)):
            a, b = with_teacher[index], baseline[index]
            assert a.audio.tobytes() == b.audio.tobytes()
            assert a.labels.tobytes() == b.labels.tobytes() and a.known.tobytes() == b.known.tobytes()


def test_resume_skips_finished_views_and_verify_is_clean(tmp_path: Path, teacher: str) -> None:
    params = _params(tmp_path, views=1)
    extract.run(params, teacher=teacher, progress=False)
    more = load_params(Path(tmp_path / "params.yaml"), {"extract.views": 2})
    report = extract.run(more, teacher=teacher, progress=False)
    assert (report.done, report.skipped, report.views_done, report.views_skipped) == (0, 4, 4, 4)
    again = extract.run(more, teacher=teacher, progress=False)
    assert (again.views_done, again.views_skipped) == (0, 8)
    store = open_store(_store(params))
    assert all(r.ok for r in store.verify_with_audio_cache())
    assert verify_views(store) == ([], [])


def test_verify_finds_edited_view_parameters(tmp_path: Path, teacher: str) -> None:
    params = _params(tmp_path, views=1)
    extract.run(params, teacher=teacher, progress=False)
    sidecar = _store(params) / VIEWS_FILE
    data = json.loads(sidecar.read_text())
    data["views"]["clip001#v1"]["gain_db"] += 1.0
    sidecar.write_text(json.dumps(data))
    problems, _notes = verify_views(open_store(_store(params)))
    assert problems and "clip001#v1" in problems[0]


def test_other_view_settings_are_refused_on_resume(tmp_path: Path, teacher: str) -> None:
    from pipeline.errors import StoreError

    params = _params(tmp_path, views=1)
    extract.run(params, teacher=teacher, progress=False)
    other = load_params(Path(tmp_path / "params.yaml"), {"extract.view_augment.seed": 5})
    with pytest.raises(StoreError, match="other settings"):
        extract.run(other, teacher=teacher, progress=False)


def test_no_views_changes_nothing(tmp_path: Path, teacher: str) -> None:
    params = _params(tmp_path, views=0)
    report = extract.run(params, teacher=teacher, progress=False)
    store = open_store(_store(params))
    assert sorted(store.track_ids()) == [f"clip{i:03d}" for i in range(4)]
    assert not (_store(params) / VIEWS_FILE).exists()
    assert "views_done" not in report.to_json() and verify_views(store) == ([], [])


def test_the_command_line_counts_the_views(tmp_path: Path, teacher: str) -> None:
    """The summary line says how many views were embedded, not only clips (a resumed views pass
    used to read "0 done")."""
    from tests.stage2_fixtures import invoke

    params = _params(tmp_path, views=1)
    extract.run(params, teacher=teacher, progress=False)
    yaml_path = tmp_path / "params.yaml"
    result = invoke(yaml_path, "-S", "extract.views=2", "extract", "--teacher", teacher, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "4 already stored + views: 4 done, 4 already stored, 0 failed" in result.output, result.output
