"""Stage one on the CPU: musicnn extraction throughput in-process and with 1 vs 2 dask workers.

Renders ``--clips`` demo-like clips of ``--seconds`` (22.05 kHz FLAC, so decoding and
resampling run), then times ``stages.extract.run`` (the real stage: decode, resample, teacher,
store commits, audio cache) into a fresh store for each setting:

- ``inprocess``: ``workers: 0`` with torch's default threads (the plain ``pipeline extract``);
- ``dask1`` / ``dask2``: a local dask cluster of 1 or 2 single-threaded worker processes.

Target (issue 12): ``dask2`` at least 1.7x ``dask1`` on 2 cores. The machine's load average is
recorded: on a shared machine the figure is only as good as the cores were free.

Usage: nice -n 10 python benchmarks/bench_extract_cpu.py [--clips 24] [--seconds 10]
       [--settings inprocess dask1 dask2] [--out benchmarks/results/extract_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATE = 22050
SETTINGS = {"inprocess": 0, "dask1": 1, "dask2": 2}


def dataset(root: Path, clips: int, seconds: float) -> dict:
    """Render the clips and return the params mapping (without the store and worker settings)."""
    from pipeline.audio import write_audio
    from pipeline.datasets.demo import OPENMIC_CLASSES, render_instrument
    from pipeline.manifests import Clip, write_classes, write_manifest

    audio_root = root / "audio"
    rows = []
    for i in range(clips):
        name = OPENMIC_CLASSES[i % len(OPENMIC_CLASSES)]
        write_audio(audio_root / f"c{i:04d}.flac",
                    render_instrument(name, seconds=seconds, sample_rate=RATE, seed=i), RATE)
        labels = tuple(int(c == name) for c in OPENMIC_CLASSES)
        rows.append(Clip(f"c{i:04d}", f"c{i:04d}.flac", seconds, RATE, labels, (True,) * len(labels)))
    write_manifest(root / "manifests" / "train.jsonl", rows)
    write_classes(root / "manifests" / "classes.json", OPENMIC_CLASSES)
    return {
        "data": {"audio_root": str(audio_root), "manifests": str(root / "manifests")},
        "extract": {"splits": ["train"], "device": "cpu", "cache_audio": True, "part_tracks": 8},
        "teachers": {"musicnn": {"model": "MTT_musicnn", "layer": "penultimate", "hop_seconds": 1.0}},
    }


def run_setting(root: Path, params: dict, name: str) -> dict:
    """One extraction into a fresh store; returns wall time and audio-s/s."""
    from pipeline.config import load_params
    from stages.extract import run

    store_root = root / f"stores-{name}"
    shutil.rmtree(store_root, ignore_errors=True)
    params = json.loads(json.dumps(params))
    params["extract"].update({"store_root": str(store_root), "workers": SETTINGS[name]})
    path = root / f"params-{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    report = run(load_params(path), teacher="musicnn", progress=False)
    wall = time.perf_counter() - start
    assert report.ok and report.done == len(list((root / "audio").glob("*.flac"))), report
    return {"setting": name, "workers": SETTINGS[name], "wall_s": wall, "audio_seconds": report.audio_seconds,
            "audio_s_per_s": report.audio_seconds / wall, "loadavg_1min_before": load_before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/extract_cpu.json"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        params = dataset(Path(tmp), args.clips, args.seconds)
        for name in args.settings:
            rows.append(run_setting(Path(tmp), params, name))
            print(json.dumps(rows[-1]), flush=True)
    by = {r["setting"]: r for r in rows}
    result = {
        "benchmark": "stages.extract.run, musicnn MTT penultimate hop 1 s, audio cache on, CPU",
        "command": "nice -n 10 python benchmarks/bench_extract_cpu.py " + " ".join(sys.argv[1:]),
        "machine": {"processor": platform.processor(), "cpus": os.cpu_count(), "loadavg_after": os.getloadavg()},
        "clips": args.clips, "clip_seconds": args.seconds,
        "results": rows,
    }
    if "dask1" in by and "dask2" in by:
        result["dask2_over_dask1"] = by["dask2"]["audio_s_per_s"] / by["dask1"]["audio_s_per_s"]
        result["target"] = "dask2_over_dask1 >= 1.7 on 2 free cores"
        print(f"2 workers / 1 worker: x{result['dask2_over_dask1']:.2f} (target >= 1.7)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
