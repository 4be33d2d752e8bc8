"""Peak memory (RSS) of stage one for a short and a long file, with the int16 audio cache on.

Each length runs ``pipeline extract --teacher musicnn`` (in-process, ``workers: 0``) in a fresh
Python subprocess over a one-track dataset, and reads the subprocess's peak RSS from
``resource.getrusage(RUSAGE_SELF)`` at its end. The audio is a 22.05 kHz FLAC of tones and a little
noise (so decoding and resampling to 16 kHz both run). Target (issue 9 item 5): the peak for
one hour is within 10 % of the peak for one minute.

Usage: nice -n 10 python benchmarks/bench_extract_memory.py [--minutes 1 60] [--backend zarr]
       [--out benchmarks/results/extract_memory.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATE = 22050
CHILD = """
import resource, sys, time
from pipeline.config import load_params
from stages.extract import run
start = time.perf_counter()
report = run(load_params(sys.argv[1]), teacher="musicnn", progress=False)
assert report.done == 1, report
print(time.perf_counter() - start, report.audio_seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_long_flac(path: Path, seconds: float) -> None:
    """Write ``seconds`` of mono 22.05 kHz FLAC, one minute at a time (the writer never holds it all)."""
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, format="FLAC", subtype="PCM_16") as handle:
        done = 0
        while done < seconds:
            n = int(min(60.0, seconds - done) * RATE)
            t = (np.arange(n) + done * RATE) / RATE
            freq = 110.0 * 2 ** (int(done / 60) % 24 / 12)
            block = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(n)
            handle.write(block.astype(np.float32))
            done += n / RATE


def dataset(root: Path, seconds: float, backend: str) -> Path:
    """One-track dataset under ``root``; returns its params file."""
    from pipeline.datasets.demo import OPENMIC_CLASSES
    from pipeline.manifests import Clip, write_classes, write_manifest

    audio = root / "audio"
    audio.mkdir(parents=True)
    write_long_flac(audio / "long.flac", seconds)
    manifests = root / "manifests"
    labels = (0,) * len(OPENMIC_CLASSES)
    write_manifest(manifests / "train.jsonl", [Clip("long", "long.flac", seconds, RATE, labels, (True,) * len(labels))])
    write_classes(manifests / "classes.json", OPENMIC_CLASSES)
    params = {
        "data": {"audio_root": str(audio), "manifests": str(manifests)},
        "extract": {"store_root": str(root / "stores"), "workers": 0, "splits": ["train"], "backend": backend,
                    "cache_audio": True, "audio_sample_rate": 16000, "device": "cpu"},
        "teachers": {"musicnn": {"model": "MTT_musicnn", "layer": "penultimate", "hop_seconds": 1.0}},
    }
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def measure(seconds: float, backend: str) -> dict:
    """Peak RSS and wall time of one extraction of a ``seconds``-long file in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        params = dataset(Path(tmp), seconds, backend)
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(params)], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        wall = time.perf_counter() - start
    return {"audio_seconds": seconds, "peak_rss_mb": int(out[2]) / 1024, "wall_s": wall,
            "extract_s": float(out[0]), "stored_audio_seconds": float(out[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 60.0])
    parser.add_argument("--backend", default="zarr", choices=["zarr", "hdf5"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/extract_memory.json"))
    args = parser.parse_args()
    rows = []
    for minutes in sorted(args.minutes):
        rows.append(measure(minutes * 60.0, args.backend))
        print(json.dumps(rows[-1]), flush=True)
    ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    result = {
        "benchmark": "peak RSS of `pipeline extract --teacher musicnn` with the audio cache, by file length",
        "command": "nice -n 10 python benchmarks/bench_extract_memory.py " + " ".join(sys.argv[1:]),
        "machine": {"processor": platform.processor(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "backend": args.backend,
        "results": rows,
        "longest_over_shortest_peak": ratio,
        "target": "longest within 10 % of shortest (ratio <= 1.10)",
        "met": ratio <= 1.10,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    first, last = rows[0]["peak_rss_mb"], rows[-1]["peak_rss_mb"]
    print(f"peak RSS {first:.0f} MB -> {last:.0f} MB: x{ratio:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
