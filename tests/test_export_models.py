"""`pipeline export`: ONNX and TorchScript files that score real audio like the PyTorch student."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests import stage2_fixtures
from tests.stage2_fixtures import TinyPipeline, invoke

tiny_pipeline = stage2_fixtures.tiny_pipeline  # the session's real pipeline (built once)


def _audio(tiny: TinyPipeline, n: int) -> np.ndarray:
    from pipeline.audio import read_audio
    from pipeline.manifests import load_split

    clips = load_split(tiny.manifests, "test")[:n]
    return np.stack([read_audio(c.resolve(tiny.audio_root), sample_rate=16000) for c in clips])


def _reference(tiny: TinyPipeline, audio: np.ndarray) -> np.ndarray:
    import torch

    from pipeline.students.trained import load_run

    run = load_run(tiny.run_dir("east-kd"))
    with torch.no_grad():
        return torch.sigmoid(run.model(torch.from_numpy(audio)).logits).numpy()


def test_onnx_export_matches_pytorch_on_real_audio(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    import onnxruntime as ort

    target = tmp_path / "tagger.onnx"
    folder = tiny_pipeline.run_dir("east-kd")
    result = invoke(None, "export", str(folder), "--format", "onnx", "--out", str(target))
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.stdout and "input (batch, samples)" in result.stdout
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("waveform", "probabilities")
    audio = _audio(tiny_pipeline, 3)
    expected = _reference(tiny_pipeline, audio)
    for batch in (audio, audio[:1]):  # the batch axis is dynamic
        got = session.run(None, {"waveform": batch})[0]
        assert got.shape == (len(batch), 20)
        np.testing.assert_allclose(got, expected[: len(batch)], atol=1e-5)
    assert np.ptp(expected) > 1e-3  # the comparison is not between constants


def test_torchscript_export_matches_pytorch_on_real_audio(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    import torch

    folder = tiny_pipeline.run_dir("east-kd")
    result = invoke(None, "export", str(folder), "--format", "torchscript", "--out", str(tmp_path / "model.ts"))
    assert result.exit_code == 0, result.output
    model = torch.jit.load(str(tmp_path / "model.ts"))
    audio = _audio(tiny_pipeline, 3)
    with torch.no_grad():
        got = model(torch.from_numpy(audio)).numpy()
    np.testing.assert_allclose(got, _reference(tiny_pipeline, audio), atol=1e-5)


def test_export_rejects_an_unknown_format(tiny_pipeline: TinyPipeline) -> None:
    from pipeline.errors import ConfigError
    from pipeline.export import export_run
    from pipeline.students.trained import load_run

    result = invoke(None, "export", str(tiny_pipeline.run_dir("baseline")), "--format", "tflite")
    assert result.exit_code == 2 and "tflite" in result.output
    with pytest.raises(ConfigError, match="'tflite' is not one of onnx, torchscript"):
        export_run(load_run(tiny_pipeline.run_dir("baseline")), "x.tflite", fmt="tflite")
