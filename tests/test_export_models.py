"""`pipeline export`: ONNX and TorchScript files that score real audio like the PyTorch student."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.stage2_fixtures import invoke, tiny_pipeline  # noqa: F401


def _audio(tiny, n: int) -> np.ndarray:  # noqa: ANN001
    from pipeline.audio import read_audio
    from pipeline.manifests import load_split

    clips = load_split(tiny.manifests, "test")[:n]
    return np.stack([read_audio(c.resolve(tiny.audio_root), sample_rate=16000) for c in clips])


def _reference(tiny, audio: np.ndarray) -> np.ndarray:  # noqa: ANN001
    import torch

    from pipeline.runs import load_run

    run = load_run(tiny.run_dir("east-kd"))
    with torch.no_grad():
        return torch.sigmoid(run.model(torch.from_numpy(audio)).logits).numpy()


def test_onnx_export_matches_pytorch_on_real_audio(tiny_pipeline, tmp_path: Path) -> None:  # noqa: ANN001, F811
    import onnxruntime as ort

    target = tmp_path / "tagger.onnx"
    result = invoke(None, "export", str(tiny_pipeline.run_dir("east-kd")), "--format", "onnx", "--out", str(target))
    assert result.exit_code == 0, result.output
    assert f"wrote {target}" in result.stdout and "input (batch, 64000)" in result.stdout
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, out.name) == ("waveform", "probabilities")
    audio = _audio(tiny_pipeline, 3)
    expected = _reference(tiny_pipeline, audio)
    for batch in (audio, audio[:1]):  # the batch axis is dynamic
        got = session.run(None, {"waveform": batch})[0]
        assert got.shape == (len(batch), 20)
        np.testing.assert_allclose(got, expected[: len(batch)], atol=1e-4)
    assert np.ptp(expected) > 1e-3  # the comparison is not between constants


def test_torchscript_export_matches_pytorch_on_real_audio(tiny_pipeline) -> None:  # noqa: ANN001, F811
    import torch

    folder = tiny_pipeline.run_dir("east-kd")
    result = invoke(None, "export", str(folder), "--format", "torchscript")
    assert result.exit_code == 0, result.output
    model = torch.jit.load(str(folder / "model.ts"))
    audio = _audio(tiny_pipeline, 3)
    with torch.no_grad():
        got = model(torch.from_numpy(audio)).numpy()
    np.testing.assert_allclose(got, _reference(tiny_pipeline, audio), atol=1e-5)


def test_export_rejects_an_unknown_format(tiny_pipeline) -> None:  # noqa: ANN001, F811
    from pipeline.errors import ConfigError
    from pipeline.export import export_run
    from pipeline.runs import load_run

    result = invoke(None, "export", str(tiny_pipeline.run_dir("baseline")), "--format", "tflite")
    assert result.exit_code == 2 and "tflite" in result.output
    with pytest.raises(ConfigError, match="'tflite' is not one of onnx, torchscript"):
        export_run(load_run(tiny_pipeline.run_dir("baseline")), "x.tflite", fmt="tflite")
