"""Decode and resample ceiling of one CPU core, per format: how many CPU workers a GPU needs.

For FLAC, OGG/Vorbis and MP3 (all written by soundfile/libsndfile from the same rendered
music), one thread reads the file block by block exactly as stage one does
(:func:`pipeline.audio.iter_blocks`): once at the file's rate (decode only) and once resampled
to each teacher rate (decode + soxr HQ). The figure is audio seconds per CPU second (CPU time
of this process, so other load on the machine does not lower it much); "workers for 10,000
audio-s/s" is what a GPU running musicnn at its float32 target would need.

Usage: nice -n 10 python benchmarks/bench_decode.py [--seconds 120] [--out benchmarks/results/decode.json]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RATE = 44100
TARGETS = (16000, 32000, 48000)  # musicnn/VGGish, PANNs/PaSST, OpenL3


def render(seconds: float) -> np.ndarray:
    """Rendered instruments (the demo's SoundFont renderer), float32 mono at 44.1 kHz."""
    from pipeline.datasets.demo import render_instrument

    names = ("piano", "violin", "drums", "guitar", "flute", "trumpet")
    parts, done, i = [], 0.0, 0
    while done < seconds:
        parts.append(render_instrument(names[i % len(names)], seconds=10.0, sample_rate=RATE, seed=i))
        done, i = done + 10.0, i + 1
    return (0.5 * np.concatenate(parts)[: int(seconds * RATE)]).astype(np.float32)


def write_chunked(path: Path, audio: np.ndarray) -> None:
    """Write in 10 s pieces: libsndfile 1.2's Vorbis encoder crashes (SIGSEGV) on one long write."""
    import soundfile as sf

    formats = {".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"), ".mp3": ("MP3", "MPEG_LAYER_III")}
    fmt, subtype = formats[path.suffix]
    with sf.SoundFile(str(path), "w", samplerate=RATE, channels=1, format=fmt, subtype=subtype) as handle:
        for lo in range(0, len(audio), RATE * 10):
            handle.write(audio[lo : lo + RATE * 10])


def cpu_rate(path: Path, rate: int, seconds: float, repeats: int) -> float:
    """Best audio-s per CPU-s of reading ``path`` block by block at ``rate`` over ``repeats`` runs."""
    from pipeline.audio import iter_blocks

    best = math.inf
    for _ in range(repeats):
        start = time.process_time()
        for _offset, _block in iter_blocks(path, sample_rate=rate, block_seconds=60.0):
            pass
        best = min(best, time.process_time() - start)
    return seconds / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/decode.json"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    audio = render(args.seconds)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".flac", ".ogg", ".mp3"):
            path = Path(tmp) / f"music{suffix}"
            write_chunked(path, audio)
            row = {"format": suffix[1:], "file_rate": RATE, "bytes": path.stat().st_size,
                   "decode_audio_s_per_cpu_s": cpu_rate(path, RATE, args.seconds, args.repeats)}
            for target in TARGETS:
                rate = cpu_rate(path, target, args.seconds, args.repeats)
                row[f"decode_resample_{target}_audio_s_per_cpu_s"] = rate
                row[f"cores_for_10000_audio_s_per_s_at_{target}"] = math.ceil(10000 / rate)
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "benchmark": "decode (+ soxr HQ resample) ceiling of one core, stage one's block reader",
        "command": "nice -n 10 python benchmarks/bench_decode.py " + " ".join(sys.argv[1:]),
        "machine": {"processor": platform.processor(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()},
        "audio_seconds": args.seconds,
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
