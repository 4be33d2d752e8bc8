"""Exports against ``pipeline predict`` on a trained run and real audio: max |difference| per length.

Joins the run's test clips into one waveform and scores its first 1 s, 3 s, the training length,
30 s and 10 min with ``predict_audio``, the ONNX file under onnxruntime and the TorchScript file.
Run from the folder the run's manifests paths are relative to (the demo's project folder).

Usage: nice -n 5 python benchmarks/export_parity.py --run runs/east-kd-1 [--out benchmarks/results/export_parity.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parity(run_dir: Path, seconds: Sequence[float]) -> list[dict[str, Any]]:
    """One row per length: max |ONNX - predict| and max |TorchScript - predict|."""
    import onnxruntime as ort
    import torch

    from pipeline.audio import read_audio
    from pipeline.export import export_run, quiet_torch_export
    from pipeline.manifests import load_split
    from pipeline.students.trained import load_run, predict_audio

    run = load_run(run_dir)
    need = max(seconds) * run.sample_rate
    audio: list[np.ndarray] = []
    for clip in load_split(run.config.manifests, "test"):
        audio.append(read_audio(clip.resolve(run.config.audio_root), sample_rate=run.sample_rate))
        if sum(map(len, audio)) >= need:
            break
    joined = np.concatenate(audio)
    with tempfile.TemporaryDirectory() as scratch:
        onnx = ort.InferenceSession(str(export_run(run, Path(scratch) / "m.onnx", fmt="onnx").path),
                                    providers=["CPUExecutionProvider"])
        with quiet_torch_export():
            scripted = torch.jit.load(str(export_run(run, Path(scratch) / "m.ts", fmt="torchscript").path))
    rows = []
    for length in seconds:
        x = joined[: int(length * run.sample_rate)]
        expected = predict_audio(run, x)
        got_onnx = onnx.run(None, {"waveform": x[None]})[0][0]
        with torch.no_grad():
            got_ts = scripted(torch.from_numpy(x)[None])[0].numpy()
        rows.append({"seconds": length, "onnx_max_abs_diff": float(np.abs(got_onnx - expected).max()),
                     "torchscript_max_abs_diff": float(np.abs(got_ts - expected).max()),
                     "probability_range": [float(expected.min()), float(expected.max())]})
    return rows


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Measure, print and write the rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--seconds", type=float, nargs="+", default=None,
                        help="lengths [default: 1, 3, the training length, 30, 600]")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    train = json.loads((args.run / "config.json").read_text())["clip_seconds"]
    rows = parity(args.run, args.seconds or [1.0, 3.0, float(train), 30.0, 600.0])
    for row in rows:
        print(f"{row['seconds']:>6g} s: onnx {row['onnx_max_abs_diff']:.2e}, "
              f"torchscript {row['torchscript_max_abs_diff']:.2e}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"run": str(args.run), "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
