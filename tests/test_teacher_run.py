"""``--teacher run:<run_dir>``: a run of this pipeline (config.json + best.pt) as a teacher."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from pipeline.audio import read_audio
from pipeline.cli import cli
from pipeline.config import load_params
from pipeline.errors import TeacherError
from pipeline.stores import open_store
from pipeline.students import build_student
from pipeline.teachers import build_teacher, teacher_slug
from stages.extract import run
from tests.extract_fixtures import make_dataset


def write_run(folder: Path, *, seed: int = 0, n_classes: int = 20) -> torch.nn.Module:
    """A run folder as `pipeline distill` leaves it (random weights): config.json + best.pt."""
    torch.manual_seed(seed)
    settings = {"n_mels": 32, "dropout": 0.0, "sample_rate": 16000}
    model = build_student("mobile_fcn", settings, n_classes=n_classes, sample_rate=16000).eval()
    folder.mkdir(parents=True)
    config = {"student": "mobile_fcn", "student_settings": settings, "n_classes": n_classes,
              "classes": [f"c{i}" for i in range(n_classes)], "sample_rate": 16000, "clip_seconds": 3.5,
              "teacher": None, "variant": "baseline"}
    (folder / "config.json").write_text(json.dumps(config))
    torch.save(model.state_dict(), folder / "best.pt")
    return model


def _direct(model: torch.nn.Module, audio: np.ndarray, stage: int) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        out = model(torch.from_numpy(audio[None]))
    return out.features[stage][0].numpy(), out.frame_times(stage)


@pytest.mark.parametrize("layer", [-1, 0])
def test_store_frames_equal_the_model_run_directly(tmp_path: Path, layer: int) -> None:
    model = write_run(tmp_path / "runs" / "wide-teacher")
    params_path = make_dataset(tmp_path, n_clips=3, seconds=3.5, dtype="float32", cache_audio=False)
    data = yaml.safe_load(params_path.read_text())
    data["teachers"]["run"] = {"layer": layer}
    params_path.write_text(yaml.safe_dump(data))
    name = f"run:{tmp_path / 'runs' / 'wide-teacher'}"
    result = CliRunner().invoke(cli, ["--params", str(params_path), "extract", "--teacher", name, "--no-progress"])
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "stores" / "run-wide-teacher")
    spec = store.spec
    assert spec.teacher == "run:wide-teacher" and teacher_slug(name) == "run-wide-teacher"
    best = tmp_path / "runs" / "wide-teacher" / "best.pt"
    assert spec.weights_sha256 == hashlib.sha256(best.read_bytes()).hexdigest()
    assert spec.config["run_config"]["student"] == "mobile_fcn" and spec.config["layer"] == (2 if layer < 0 else 0)
    stage = spec.config["layer"]
    assert spec.hop_seconds == pytest.approx(model.frame_hop_seconds[stage])
    assert spec.frame0_center_seconds == pytest.approx(model.frame0_center_seconds[stage])
    for track in store.track_ids():
        audio = read_audio(tmp_path / "audio" / f"{track}.flac", sample_rate=16000)
        expected, times = _direct(model, audio, stage)
        np.testing.assert_allclose(store.read(track), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(store.frame_times(track), times, atol=1e-9)
    assert run(load_params(params_path), teacher=name, progress=False).skipped == 3  # resume


def test_window_mode_matches_inside_the_receptive_field(tmp_path: Path) -> None:
    """Windows with enough context give the whole-clip frames of the first stage."""
    model = write_run(tmp_path / "r")
    settings = {"layer": 0, "mode": "window", "window_seconds": 6.0, "context_seconds": 1.5}
    teacher = build_teacher(f"run:{tmp_path / 'r'}", settings).load("cpu")
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 16000 * 12).astype(np.float32)
    expected, _ = _direct(model, audio, 0)
    got = teacher.embed(audio[None])[0]
    np.testing.assert_allclose(got[2 : len(expected) - 2], expected[2:-2], rtol=1e-4, atol=1e-4)


def test_a_relative_run_folder_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_run(tmp_path / "runs" / "big")
    monkeypatch.chdir(tmp_path)
    teacher = build_teacher("run:runs/big").load("cpu")
    assert teacher.name == "run:big" and teacher.embedding_dim == 256


def test_missing_run_and_bad_layer_are_clear(tmp_path: Path) -> None:
    assert not build_teacher(f"run:{tmp_path / 'nothing'}").weights_available()
    write_run(tmp_path / "r")
    with pytest.raises(TeacherError, match="layer 5 does not exist"):
        build_teacher(f"run:{tmp_path / 'r'}", {"layer": 5}).load("cpu")
