"""`pipeline export --quantize int8`: onnxruntime's quantisation of the any-length tagger."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.run_fixtures import add_clips, make_run_dir
from tests.stage2_fixtures import invoke


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("int8")
    folder = make_run_dir(root / "runs" / "kd-0", sample_rate=8000, clip_seconds=4.0)
    add_clips(folder, root, per_split=6)
    return folder


@pytest.mark.parametrize("method", ["static", "dynamic"])
def test_int8_is_written_beside_float32_and_agrees_with_it(run: Path, tmp_path: Path, method: str) -> None:
    import onnxruntime as ort

    from pipeline.export import read_metadata

    out = tmp_path / "model.onnx"
    result = invoke(None, "export", str(run), "--out", str(out), "--quantize", "int8", "--quantize-method", method)
    assert result.exit_code == 0, result.output
    assert result.stderr == "", f"export is not quiet:\n{result.stderr}"
    int8 = tmp_path / "model.int8.onnx"
    line = result.stdout.splitlines()[1]
    assert line.startswith(f"wrote {int8} (") and f"MB int8 {method} vs " in line and "on 6 validation clips: " in line
    maps = re.search(r"valid mAP (\d\.\d+) vs (\d\.\d+) \(([+-]\d\.\d+)\)", line)
    assert maps and float(maps.group(3)) == pytest.approx(float(maps.group(1)) - float(maps.group(2)), abs=2e-4)
    worst = float(re.search(r"max (\d\.\d+)", line).group(1))
    assert 0 < worst < 0.25  # a random student; benchmarks/bench_export.py measures trained ones
    meta = read_metadata(int8)
    assert json.loads(meta["classes"]) == ["bass", "drums", "guitar", "piano", "voice"]
    assert meta["quantization"].startswith(f"int8 {method}")
    session = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"])
    kinds = {node.op_type for node in __import__("onnx").load(str(int8)).graph.node}
    assert kinds & {"QLinearConv", "ConvInteger", "QuantizeLinear", "DynamicQuantizeLinear"}
    for seconds in (1.0, 11.3):  # still any length
        audio = np.random.default_rng(1).uniform(-0.3, 0.3, int(seconds * 8000)).astype(np.float32)
        assert session.run(None, {"waveform": audio[None]})[0].shape == (1, 5)


def test_the_front_end_stays_float32(run: Path, tmp_path: Path) -> None:
    import onnx

    out = tmp_path / "model.onnx"
    assert invoke(None, "export", str(run), "--out", str(out), "--quantize", "int8").exit_code == 0
    graph = onnx.load(str(tmp_path / "model.int8.onnx")).graph
    front = [n for n in graph.node if "/frontend/" in n.name and n.op_type in ("Conv", "MatMul")]
    assert len(front) == 3 and all(not n.input[0].endswith("_DequantizeLinear_Output") for n in front)


def test_static_without_training_clips_and_torchscript_are_user_errors(tmp_path: Path) -> None:
    bare = make_run_dir(tmp_path / "runs" / "bare", sample_rate=8000, clip_seconds=4.0)
    result = invoke(None, "export", str(bare), "--out", str(tmp_path / "m.onnx"), "--quantize", "int8")
    assert result.exit_code == 1 and "calibration clips" in result.output and "dynamic" in result.output
    result = invoke(None, "export", str(bare), "--format", "torchscript", "--quantize", "int8")
    assert result.exit_code == 1 and "needs --format onnx" in result.output
    dynamic = invoke(None, "export", str(bare), "--out", str(tmp_path / "d.onnx"), "--quantize", "int8",
                     "--quantize-method", "dynamic")
    assert dynamic.exit_code == 0 and "no validation clips here" in dynamic.stdout


def test_a_good_int8_export_is_quiet_in_a_real_process(run: Path, tmp_path: Path) -> None:
    """Warnings and logs go to the real stderr (pytest's capture would hide logging records)."""
    import os
    import subprocess
    import sys

    from tests.stage2_fixtures import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pipeline", "export", str(run), "--out", str(tmp_path / "m.onnx"),
                           "--quantize", "int8"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and len(done.stdout.splitlines()) == 2, done.stdout + done.stderr
