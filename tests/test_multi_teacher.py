"""Several teachers in one run: the loader, the objective, teacher instances and a real run.

Each teacher's frames are served for the same crop at fixed times relative to it, whatever the
hops, frame-0 centers and dimensions; a clip-level teacher serves one frame. The feature term is
the weighted mean of the per-teacher terms, and one teacher gives exactly the single-teacher numbers.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.config import load_params
from pipeline.data import ClipDataset, crop_grid
from pipeline.audio_source import AudioSource
from pipeline.errors import ConfigError, StoreError, TrainingError
from pipeline.losses import EAsTObjective
from pipeline.stores import StoreSpec, create_store, open_store
from pipeline.teachers import build_teacher, teacher_settings, teacher_slug
from tests import stage2_fixtures
from tests.batches import frames, make_batch
from tests.stage2_fixtures import TinyPipeline, find_offset, invoke, make_fake_data

tiny_pipeline = stage2_fixtures.tiny_pipeline


def _second_store(root: Path, clips, *, hop: float, frame0: float, dim: int, clip_level: bool = False,  # noqa: ANN001
                  skip: str | None = None, seed: int = 1) -> Path:
    """Another teacher's store for the same clips: random frames on its own grid."""
    spec = StoreSpec(kind="embedding", teacher=f"other-{hop}", config={}, weights_sha256="cd" * 32,
                     sample_rate=8000, hop_seconds=0.0 if clip_level else hop,
                     window_seconds=0.0 if clip_level else hop, frame0_center_seconds=frame0,
                     clip_level=clip_level, dim=dim, dtype="float32")
    store = create_store(root, spec)
    rng = np.random.default_rng(seed)
    with store.writer(part_tracks=8) as writer:
        for clip in clips:
            if clip.id == skip:
                continue
            count = 1 if clip_level else int(np.floor((clip.duration - frame0) / hop + 1e-9)) + 1
            writer.add(clip.id, rng.standard_normal((count, dim)).astype(np.float32),
                       audio_sha256=f"sha-{clip.id}", duration=clip.duration)
    return root


def _crop_seconds(data, item) -> float:  # noqa: ANN001
    clip = data.clips[int(item.index)]
    whole = AudioSource(data.audio_root, data.sample_rate, data.cache).read(
        clip, 0, int(round(clip.duration * data.sample_rate)))
    return find_offset(whole, item.audio) / data.sample_rate


def test_mixed_hops_and_a_clip_level_teacher_serve_frames_of_the_same_crop(tmp_path: Path) -> None:
    data = make_fake_data(tmp_path / "a", [7.0, 9.5, 12.0, 8.0], hop=0.5, frame0=0.25)
    coarse = _second_store(tmp_path / "b", data.clips, hop=1.5, frame0=0.75, dim=9)
    whole = _second_store(tmp_path / "c", data.clips, hop=0.0, frame0=0.0, dim=3, clip_level=True)
    stores = [data.store, coarse, whole]
    ds = ClipDataset(data.clips, AudioSource(data.audio_root, data.sample_rate, data.cache), clip_seconds=3.0,
                     teacher_store=stores, random_crop=True, seed=2)
    assert ds.grid == pytest.approx(1.5)  # the shortest common multiple of 0.5 and 1.5 s
    assert ds.frames == [6, 2, 1]
    np.testing.assert_allclose(ds.teacher_times(1), [0.75, 2.25])
    np.testing.assert_allclose(ds.teacher_times(2), [1.5])
    starts = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            t0 = _crop_seconds(data, item)
            starts.add(round(t0, 6))
            assert t0 / 1.5 == pytest.approx(round(t0 / 1.5), abs=1e-6), "crops start on the common grid"
            for slot, path in enumerate(stores[:2]):
                store = open_store(path)
                served, times = store.read_window(data.clips[i].id, t0, t0 + 3.0)
                np.testing.assert_array_equal(item.teachers[slot], served)
                np.testing.assert_allclose(times - t0, ds.teacher_times(slot), atol=1e-9)
            np.testing.assert_array_equal(item.teachers[2], open_store(whole).read(data.clips[i].id))
    assert len(starts) > 2  # the crops do move


def test_a_track_missing_from_one_store_is_one_line_naming_that_store(tmp_path: Path) -> None:
    data = make_fake_data(tmp_path / "a", [4.0] * 3)
    other = _second_store(tmp_path / "b", data.clips, hop=1.0, frame0=0.5, dim=4, skip=data.clips[1].id)
    with pytest.raises(StoreError) as caught:
        ClipDataset(data.clips, AudioSource(data.audio_root, data.sample_rate, data.cache), clip_seconds=3.0,
                    teacher_store=[data.store, other])
    message = str(caught.value)
    assert "\n" not in message and str(other) in message and repr(data.clips[1].id) in message


def test_hops_without_a_common_multiple_are_refused() -> None:
    from pipeline.data import TeacherView

    views = [TeacherView(4, 1.0, 0.5, 1.0), TeacherView(4, 2 ** 0.5 / 2, 0.3, 0.7)]
    with pytest.raises(TrainingError, match="no common multiple"):
        crop_grid(views)
    assert crop_grid([TeacherView(4, 1.0, 0.5, 1.0), TeacherView(4, 0.96, 0.48, 0.96)]) == pytest.approx(24.0)


class _Output:
    """A stand-in StudentOutput: three feature stages at 0.25 s hops."""

    def __init__(self, gen: torch.Generator) -> None:
        self.logits = torch.randn(8, 4, generator=gen)
        self.features = [torch.randn(8, 12, 5, generator=gen) for _ in range(3)]

    def frame_times(self, stage: int) -> np.ndarray:
        return 0.125 + 0.25 * np.arange(12)


def test_objective_one_teacher_is_its_feature_term_and_weights_average() -> None:
    gen = torch.Generator().manual_seed(0)
    out = _Output(gen)
    targets = (torch.rand(8, 4, generator=gen) > 0.5).float()
    known = torch.ones(8, 4, dtype=torch.bool)
    a, ta = torch.randn(8, 3, 6, generator=gen), 0.5 + np.arange(3)
    b, tb = torch.randn(8, 1, 9, generator=gen), np.array([1.5])
    objective = EAsTObjective("east-final", lam=0.4)
    single = objective(out, make_batch(targets, known, [frames(a, ta, 1.0)]))
    assert torch.equal(single["feat"], objective.feature_term(out, a, torch.as_tensor(ta), 1.0))
    only_b = objective(out, make_batch(targets, known, [frames(b, tb, 0.0)]))
    weighted = EAsTObjective("east-final", lam=0.4, teacher_weights=[3.0, 1.0])
    both = weighted(out, make_batch(targets, known, [frames(a, ta, 1.0), frames(b, tb, 0.0)]))
    expected = (3.0 * single["feat"] + only_b["feat"]) / 4.0
    assert float(both["feat"]) == pytest.approx(float(expected), rel=1e-6)


def test_teacher_instances_take_the_base_settings_with_their_own_on_top() -> None:
    params = load_params("params.yaml", {"teachers.musicnn@msd": {"model": "MSD_musicnn"},
                                         "distill.teachers": ["musicnn", {"name": "musicnn@msd", "weight": 0.5}]})
    settings = teacher_settings(params, "musicnn@msd")
    assert settings["model"] == "MSD_musicnn" and settings["layer"] == params.teachers["musicnn"]["layer"]
    assert build_teacher("musicnn@msd", settings).config.model == "MSD_musicnn"
    assert teacher_slug("musicnn@msd") == "musicnn-msd"
    assert [(r.name, r.weight) for r in params.distill.teacher_refs()] == [("musicnn", 1.0), ("musicnn@msd", 0.5)]
    with pytest.raises(ConfigError, match="each teacher once"):
        load_params("params.yaml", {"distill.teachers": ["musicnn", "musicnn"]})
    with pytest.raises(ConfigError, match="kd_teacher"):
        load_params("params.yaml", {"distill.kd_teacher": "openl3"})


def _history(run: Path) -> list[dict[str, str]]:
    with open(run / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k not in ("seconds", "clips_per_second")}
                for row in csv.DictReader(handle)]


def _params_with(tiny: TinyPipeline, name: str, **distill) -> Path:  # noqa: ANN003
    data = yaml.safe_load(tiny.params.read_text())
    data["distill"].update(distill)
    data["teachers"]["musicnn@msd"] = {"model": "MSD_musicnn"}
    path = tiny.root / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.slow
def test_single_teacher_list_run_gives_exactly_the_single_teacher_numbers(tiny_pipeline: TinyPipeline) -> None:
    params = _params_with(tiny_pipeline, "params-list.yaml", teachers=[{"name": "musicnn", "weight": 1.0}])
    target = tiny_pipeline.runs / "east-kd-listed"
    result = invoke(params, "distill", "--variant", "east-kd", "--run-dir", target, "--no-progress")
    assert result.exit_code == 0, result.output
    assert _history(target) == _history(tiny_pipeline.run_dir("east-kd"))


@pytest.mark.slow
def test_two_teachers_train_and_record_both_provenances(tiny_pipeline: TinyPipeline) -> None:
    params = _params_with(tiny_pipeline, "params-two.yaml", teachers=["musicnn", "musicnn@msd"])
    for args in (["extract", "--teacher", "musicnn@msd", "--no-progress"], ["probe", "--teacher", "musicnn@msd"]):
        result = invoke(params, *args)
        assert result.exit_code == 0, result.output
    target = tiny_pipeline.runs / "east-kd-two"
    result = invoke(params, "distill", "--variant", "east-kd", "--run-dir", target, "--no-progress")
    assert result.exit_code == 0, result.output
    config = json.loads((target / "config.json").read_text())
    assert [t["name"] for t in config["teachers"]] == ["musicnn", "musicnn@msd"]
    assert config["teachers"][1]["config"]["model"] == "MSD_musicnn"
    assert config["teachers"][0]["weights_sha256"] != config["teachers"][1]["weights_sha256"]
    history = _history(target)
    assert np.isfinite(float(history[0]["train_feat"])) and np.isfinite(float(history[0]["train_kd"]))
    metrics = json.loads((target / "metrics.json").read_text())
    assert metrics["teacher"] == "musicnn+musicnn@msd"
    result = invoke(params, "evaluate", target)
    assert result.exit_code == 0, result.output
    assert 0.0 <= json.loads((target / "eval-test.json").read_text())["map"] <= 1.0


def test_an_instance_without_its_own_settings_is_refused_in_one_line(tmp_path: Path) -> None:
    """``musicnn@msd`` with no ``teachers."musicnn@msd"`` section would silently be musicnn's frames
    in a second store (a study once compared musicnn with itself that way)."""
    from pipeline.errors import ConfigError
    from tests.stage2_fixtures import invoke

    params = load_params("params.yaml")
    with pytest.raises(ConfigError, match=r"'musicnn@msd' has no settings of its own"):
        teacher_settings(params, "musicnn@msd")
    result = invoke(Path("params.yaml"), "extract", "--teacher", "musicnn@msd", "--store", str(tmp_path / "s"))
    assert result.exit_code != 0 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "teachers: {musicnn@msd: {model: ...}}" in lines[0], result.output
    assert not (tmp_path / "s").exists()
    given = load_params("params.yaml", {"teachers.musicnn@msd.model": "MSD_musicnn"})
    assert teacher_settings(given, "musicnn@msd")["model"] == "MSD_musicnn"
