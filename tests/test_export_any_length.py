"""Exports equal `pipeline predict` for audio of any length, under onnxruntime and TorchScript.

A random (untrained) student is enough: the claim is about the graph (padding, sliding windows,
averaging), not about the weights. The lengths cover one zero-padded window (1 s, 3 s below the
8-kHz run's 4-s training length), exactly one window, regular windows plus a tail (30 s) and
many windows (10 min).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.run_fixtures import make_run_dir
from tests.stage2_fixtures import invoke

RATE, TRAIN_SECONDS = 8000, 4.0
LENGTHS = [1.0, 3.0, TRAIN_SECONDS, 30.0, 600.0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random Mobile-FCN run exported once in both formats through the CLI."""
    root = tmp_path_factory.mktemp("export")
    run = make_run_dir(root / "runs" / "east-kd-0", sample_rate=RATE, clip_seconds=TRAIN_SECONDS)
    files = {"run": run}
    for fmt, name in (("onnx", "model.onnx"), ("torchscript", "model.ts")):
        out = root / "exports" / name
        result = invoke(None, "export", str(run), "--format", fmt, "--out", str(out))
        assert result.exit_code == 0, result.output
        assert result.stderr == "", f"export is not quiet:\n{result.stderr}"
        assert result.stdout.count("\n") == 1 and result.stdout.startswith(f"wrote {out} (")
        files[fmt] = out
    return files


def _music(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts and tones that change every second, so windows differ from each other."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * RATE))
    t = np.arange(n) / RATE
    freqs = rng.uniform(80, 3000, size=int(np.ceil(seconds)) + 1)[(t // 1).astype(int)]
    level = rng.uniform(0.05, 0.6, size=len(freqs))[(t // 1).astype(int)]
    wave = level * np.sin(2 * np.pi * freqs * t) + 0.05 * rng.standard_normal(n)
    return wave.astype(np.float32)


@pytest.mark.parametrize("seconds", LENGTHS)
def test_onnx_and_torchscript_equal_predict(exported: dict[str, Path], seconds: float) -> None:
    import onnxruntime as ort
    import torch

    from pipeline.students.trained import load_run, predict_audio

    run = load_run(exported["run"])
    audio = _music(seconds, seed=int(seconds * 10))
    expected = predict_audio(run, audio)
    assert np.ptp(expected) > 0.05  # the comparison is not between constants
    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    got_onnx = session.run(None, {"waveform": audio[None]})[0]
    scripted = torch.jit.load(str(exported["torchscript"]))
    with torch.no_grad():
        got_ts = scripted(torch.from_numpy(audio)[None]).numpy()
    assert got_onnx.shape == got_ts.shape == (1, len(run.classes))
    np.testing.assert_allclose(got_onnx[0], expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(got_ts[0], expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("n_samples", [1, 16001, 31999, 32000, 32001, 47999, 48000, 48001])
def test_window_edges_equal_predict(exported: dict[str, Path], n_samples: int) -> None:
    """Lengths at the window boundaries: a tail window is added exactly when predict adds one."""
    import onnxruntime as ort

    from pipeline.students.trained import load_run, predict_audio

    run = load_run(exported["run"])
    audio = _music(n_samples / RATE + 1, seed=n_samples)[:n_samples]
    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    got = session.run(None, {"waveform": audio[None]})[0][0]
    np.testing.assert_allclose(got, predict_audio(run, audio), rtol=0, atol=1e-5)


def test_a_batch_of_equal_length_clips(exported: dict[str, Path]) -> None:
    import onnxruntime as ort

    from pipeline.students.trained import load_run, predict_audio

    run = load_run(exported["run"])
    audio = np.stack([_music(9.5, seed) for seed in range(3)])
    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    got = session.run(None, {"waveform": audio})[0]
    np.testing.assert_allclose(got, np.stack([predict_audio(run, a) for a in audio]), rtol=0, atol=1e-5)


def test_the_files_carry_classes_rate_and_provenance(exported: dict[str, Path]) -> None:
    import hashlib

    from pipeline.export import read_metadata

    for fmt in ("onnx", "torchscript"):
        meta = read_metadata(exported[fmt])
        assert json.loads(meta["classes"]) == ["bass", "drums", "guitar", "piano", "voice"]
        assert meta["sample_rate"] == "8000" and meta["window_samples"] == "32000" and meta["hop_samples"] == "16000"
        assert meta["run"] == "east-kd-0" and meta["student"] == "mobile_fcn" and meta["variant"] == "east-kd"
        assert json.loads(meta["teachers"]) == ["musicnn"] and meta["seed"] == "0"
        best = (exported["run"] / "best.pt").read_bytes()
        assert meta["checkpoint_sha256"] == hashlib.sha256(best).hexdigest()


def test_the_default_place_is_outside_the_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = make_run_dir(tmp_path / "runs" / "baseline-1", sample_rate=RATE, clip_seconds=TRAIN_SECONDS)
    monkeypatch.chdir(tmp_path)
    result = invoke(None, "export", str(run), "--format", "torchscript")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "exports" / "baseline-1" / "model.ts").is_file()
    assert sorted(p.name for p in run.iterdir()) == ["best.pt", "config.json"]
