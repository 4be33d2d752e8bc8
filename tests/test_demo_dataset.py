"""The demo dataset builder: plan, unknown labels, determinism, files matching manifests."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import audio_info, read_audio
from pipeline.config import DemoConfig
from pipeline.datasets.demo import OPENMIC_CLASSES, build, plan_demo, render_clip
from pipeline.errors import ConfigError
from pipeline.manifests import label_arrays, load_split, read_classes

TINY = DemoConfig(seed=3, n_train=10, n_valid=3, n_test=3, clip_seconds=1.0, sample_rate=8000)


def test_default_plan_covers_every_class_in_every_split() -> None:
    plans = plan_demo(DemoConfig())
    assert [sum(p.split == s for p in plans) for s in ("train", "valid", "test")] == [600, 150, 300]
    assert len({p.id for p in plans}) == len(plans)
    for split in ("train", "valid", "test"):
        chosen = [p for p in plans if p.split == split]
        labels = np.array([p.labels for p in chosen], dtype=bool)
        known = np.array([p.known for p in chosen])
        assert (labels & known).sum(0).min() >= 5, f"a class lacks known positives in {split}"
        assert (~known).mean() == pytest.approx(0.25, abs=0.01)
        assert (~known & labels).any() and (~known & ~labels).any()  # unknowns hit both kinds
        sizes = labels.sum(1)
        assert sizes.min() == 1 and sizes.max() == 4 and 2.2 < sizes.mean() < 2.6
    assert plan_demo(DemoConfig()) == plans
    assert plan_demo(DemoConfig(seed=1)) != plans


def test_plan_respects_instrument_range_and_unknown_fraction() -> None:
    plans = plan_demo(replace(TINY, min_instruments=2, max_instruments=3, unknown_fraction=0.0))
    assert all(2 <= len(p.classes) <= 3 for p in plans)
    assert all(all(p.known) for p in plans)
    with pytest.raises(ConfigError, match="min_instruments"):
        plan_demo(replace(TINY, min_instruments=3, max_instruments=2))
    with pytest.raises(ConfigError, match="unknown_fraction"):
        plan_demo(replace(TINY, unknown_fraction=1.0))


def _snapshot(audio_root: Path, manifests: Path) -> dict[str, bytes]:
    files = {f"audio/{p.relative_to(audio_root)}": p.read_bytes() for p in sorted(audio_root.rglob("*.flac"))}
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "classes.json"):
        files[name] = (manifests / name).read_bytes()
    return files


def test_same_seed_gives_identical_files_serial_or_parallel(tmp_path: Path) -> None:
    one = build(config=TINY, audio_root=tmp_path / "a", manifests_dir=tmp_path / "ma", workers=1,
                progress=False)
    two = build(config=TINY, audio_root=tmp_path / "b", manifests_dir=tmp_path / "mb", workers=2,
                progress=False)
    assert one.splits == two.splits == {"train": 10, "valid": 3, "test": 3}
    first = _snapshot(tmp_path / "a", tmp_path / "ma")
    assert len(first) == 16 + 4
    assert first == _snapshot(tmp_path / "b", tmp_path / "mb")
    other = build(config=replace(TINY, seed=4), audio_root=tmp_path / "c", manifests_dir=tmp_path / "mc",
                  workers=1, progress=False)
    assert other.splits == one.splits
    assert _snapshot(tmp_path / "c", tmp_path / "mc")["audio/train/train_00000.flac"] != \
        first["audio/train/train_00000.flac"]


def test_manifests_describe_the_rendered_audio(tmp_path: Path) -> None:
    report = build(config=TINY, audio_root=tmp_path / "audio", manifests_dir=tmp_path / "m", workers=1,
                   progress=False)
    assert read_classes(tmp_path / "m") == list(OPENMIC_CLASSES)
    assert json.loads((tmp_path / "m" / "report.json").read_text())["splits"] == report.splits
    plans = {p.id: p for p in plan_demo(TINY)}
    for split in ("train", "valid", "test"):
        clips = load_split(tmp_path / "m", split)
        labels, known = label_arrays(clips)
        assert labels.shape == (len(clips), 20)
        for clip in clips:
            info = audio_info(clip.resolve(tmp_path / "audio"))
            assert (info.sample_rate, info.frames, info.format) == (8000, 8000, "FLAC")
            assert clip.duration == 1.0 and clip.sample_rate == 8000
            plan = plans[clip.id]
            assert [OPENMIC_CLASSES[i] for i, v in enumerate(clip.labels) if v] == list(plan.classes)
            expected = render_clip(plan.classes, seconds=1.0, sample_rate=8000, seed=plan.seed)
            got = read_audio(clip.resolve(tmp_path / "audio"))
            np.testing.assert_allclose(got, expected, atol=1.5 / 32768)  # 16-bit FLAC of the same render


def test_smaller_rerender_removes_stale_files_and_dry_run_writes_nothing(tmp_path: Path) -> None:
    build(config=TINY, audio_root=tmp_path / "audio", manifests_dir=tmp_path / "m", workers=1, progress=False)
    report = build(config=replace(TINY, n_train=4), audio_root=tmp_path / "audio",
                   manifests_dir=tmp_path / "m", workers=1, progress=False)
    assert len(list((tmp_path / "audio" / "train").glob("*.flac"))) == 4
    assert any("6 stale" in w for w in report.warnings)
    dry = build(config=DemoConfig(), audio_root=tmp_path / "dry", manifests_dir=tmp_path / "dm", dry_run=True)
    assert dry.dry_run and dry.splits == {"train": 600, "valid": 150, "test": 300}
    assert not (tmp_path / "dry").exists() and not (tmp_path / "dm").exists()
