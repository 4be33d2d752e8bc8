"""A run's config.json as one typed value (pipeline/run_config.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.errors import TrainingError
from pipeline.run_config import RunConfig

#: a config.json as `pipeline distill` wrote it before the type existed (key order included)
WRITTEN = {"student": "mobile_fcn", "student_settings": {"dropout": 0.2, "sample_rate": 16000}, "n_classes": 2,
           "classes": ["a", "b"], "sample_rate": 16000, "clip_seconds": 5.0, "teacher": "musicnn",
           "teachers": [{"name": "musicnn", "weights_sha256": "0" * 64}], "variant": "east-kd", "init": None,
           "distill": {"seed": 3, "lam": 0.3}, "manifests": "data_manifests/demo", "audio_root": "data/demo"}


def test_the_text_is_what_distill_wrote_before(tmp_path: Path) -> None:
    """Same bytes, so a run's fingerprint (sha256 of config.json) and its resume are unchanged."""
    (tmp_path / "config.json").write_text(json.dumps(WRITTEN, indent=2) + "\n")
    config = RunConfig.read(tmp_path)
    assert config.to_json() == (tmp_path / "config.json").read_text()
    assert (config.seed, config.teacher_names, config.clip_seconds) == (3, ["musicnn"], 5.0)


def test_an_older_config_without_the_later_keys_still_reads() -> None:
    old = {k: WRITTEN[k] for k in ("student", "student_settings", "n_classes", "classes", "sample_rate",
                                   "clip_seconds")}
    config = RunConfig.from_mapping(old)
    assert config.teachers == [] and config.seed is None and config.init is None


def test_a_folder_that_is_not_a_run_is_one_training_error(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="is not a training run"):
        RunConfig.read(tmp_path)
    (tmp_path / "config.json").write_text('{"student": "mobile_fcn"}')
    with pytest.raises(TrainingError, match="lacks student_settings, n_classes"):
        RunConfig.read(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(TrainingError, match="cannot be read"):
        RunConfig.read(tmp_path)
