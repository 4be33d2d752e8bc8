"""int8 against float32 for exported students: test mAP, file size, agreement and CPU speed.

For each trained run (``--runs``; e.g. the demo's ``runs/east-kd-{0,1,2}``): export the float32
ONNX tagger, quantise it with each method (``static``: calibrated on ``--calibration-clips``
training clips; ``dynamic``), score every test clip with each file under onnxruntime at one
thread (the whole clip in one call, as ``pipeline predict``), and compute the test macro mAP over
known labels as ``pipeline evaluate`` does. Speed: median milliseconds of one call on a 10-s
waveform (test clips joined) over ``--repeats`` calls, one thread, float32 and int8 alternating
so load changes hit both. Writes ``benchmarks/results/export.json``: per run and file, and per
method the paired mAP change (int8 - float32) over runs as mean ± std and the speed-up.

Usage: nice -n 5 python benchmarks/bench_export.py --runs runs/east-kd-0 runs/east-kd-1 runs/east-kd-2
       [--methods static dynamic] [--calibration-clips 32] [--repeats 30] [--out benchmarks/results/export.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OUT = Path("benchmarks/results/export.json")
WORK = Path("benchmarks/work/export")


def _test_set(run: Any) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Decoded test clips of the run's manifests with their (n, C) labels and known masks."""
    from pipeline.audio import read_audio
    from pipeline.manifests import label_arrays, load_split

    clips = load_split(run.config.manifests, "test")
    audio = [read_audio(c.resolve(run.config.audio_root), sample_rate=run.sample_rate) for c in clips]
    labels, known = label_arrays(clips)
    return audio, labels, known


def _scores(path: Path, audio: Sequence[np.ndarray]) -> np.ndarray:
    """(clips, classes) probabilities of an ONNX tagger, one clip per call, one thread."""
    from pipeline.quantize import session

    model = session(path)
    return np.stack([model.run(None, {"waveform": a[None]})[0][0] for a in audio])


def _latency(paths: dict[str, Path], clip: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms per call on ``clip`` for each file, calls interleaved across files."""
    from pipeline.quantize import session

    models = {name: session(p) for name, p in paths.items()}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for model in models.values():
        model.run(None, {"waveform": clip[None]})
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model.run(None, {"waveform": clip[None]})
            times[name].append(1e3 * (time.perf_counter() - start))
    return {name: float(np.median(t)) for name, t in times.items()}


def measure_run(run_dir: Path, methods: Sequence[str], calibration_clips: int, repeats: int,
                work: Path) -> dict[str, Any]:
    """Every figure of one run: float32 and one int8 file per method."""
    from pipeline.export import export_run
    from pipeline.metrics import evaluate_predictions
    from pipeline.quantize import quantize_int8, run_clips
    from pipeline.students.trained import load_run

    run = load_run(run_dir)
    folder = work / run.path.name
    paths = {"float32": export_run(run, folder / "model.onnx", fmt="onnx").path}
    calibration = run_clips(run.config, "train", calibration_clips, run.sample_rate).audio
    for method in methods:
        paths[f"int8-{method}"] = quantize_int8(paths["float32"], folder / f"model.int8-{method}.onnx",
                                                method=method, calibration=calibration)
    audio, labels, known = _test_set(run)
    ten_seconds = np.concatenate(audio)[: 10 * run.sample_rate]
    latency = _latency(paths, ten_seconds, repeats)
    scores = {name: _scores(path, audio) for name, path in paths.items()}
    files = {}
    for name, path in paths.items():
        metrics = evaluate_predictions(scores[name], labels, known)
        files[name] = {
            "bytes": path.stat().st_size, "test_map": metrics.mAP, "test_roc_auc": metrics.roc_auc,
            "ms_per_10s_clip": latency[name],
            "max_abs_diff_vs_float32": float(np.abs(scores[name] - scores["float32"]).max()),
            "mean_abs_diff_vs_float32": float(np.abs(scores[name] - scores["float32"]).mean()),
        }
    return {"run": str(run_dir), "test_clips": len(audio), "calibration_clips": len(calibration), "files": files}


def summarise(runs: list[dict[str, Any]], methods: Sequence[str]) -> dict[str, Any]:
    """Per method: mAP change (int8 - float32) per run, its mean ± sample std, size ratio, speed-up."""
    out = {}
    for method in methods:
        name = f"int8-{method}"
        deltas = [r["files"][name]["test_map"] - r["files"]["float32"]["test_map"] for r in runs]
        speedups = [r["files"]["float32"]["ms_per_10s_clip"] / r["files"][name]["ms_per_10s_clip"] for r in runs]
        out[name] = {
            "map_change_per_run": deltas,
            "map_change_mean": statistics.fmean(deltas),
            "map_change_std": statistics.stdev(deltas) if len(deltas) > 1 else None,
            "speedup_per_run": speedups,
            "speedup_median": statistics.median(speedups),
            "size_ratio": statistics.fmean(r["files"]["float32"]["bytes"] / r["files"][name]["bytes"] for r in runs),
            "max_abs_diff_vs_float32": max(r["files"][name]["max_abs_diff_vs_float32"] for r in runs),
        }
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns (and writes) the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, type=Path)
    parser.add_argument("--methods", nargs="+", default=["static", "dynamic"], choices=["static", "dynamic"])
    parser.add_argument("--calibration-clips", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args(argv)
    import onnxruntime
    import torch

    torch.set_num_threads(1)
    runs = [measure_run(r, args.methods, args.calibration_clips, args.repeats, args.work) for r in args.runs]
    doc = {
        "command": "python benchmarks/bench_export.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(), "onnxruntime": onnxruntime.__version__,
                    "torch": torch.__version__},
        "threads": 1,
        "runs": runs,
        "summary": summarise(runs, args.methods),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    for name, row in doc["summary"].items():
        std = row["map_change_std"]
        print(f"{name}: test mAP change {row['map_change_mean']:+.4f}" + (f" ± {std:.4f}" if std is not None else "")
              + f" over {len(runs)} runs, {row['speedup_median']:.2f}x faster at 1 thread, "
              f"{row['size_ratio']:.2f}x smaller, max |diff| {row['max_abs_diff_vs_float32']:.4f}")
    return doc


if __name__ == "__main__":
    main()
