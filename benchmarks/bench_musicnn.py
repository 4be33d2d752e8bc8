"""musicnn teacher: PyTorch port vs the original TF graph, throughput on the same audio (CPU).

Both sides get the same rendered demo audio (OpenMIC-style instrument stems, 16 kHz) and the
same patches (3 s, hop ``--hop`` s). Each side includes its own front end: the port its torch
log-mel, the original upstream's librosa log-mel (``extractor.batch_data``) + the TF graph
imported from the checkpoint's ``.meta``. Timings alternate port / TF and keep the best of
``--repeats`` (other jobs share this machine). The port is timed twice: as shipped (overlapping
windows share their mel frames and timbral rows) and with that sharing off (every window on
its own, like TF). Outputs are compared on the same patches (max |diff| / max |TF|).

Usage::

    python benchmarks/bench_musicnn.py [--seconds 60] [--threads 1 2] [--models MTT_musicnn MTT_vgg]
        [--omp-wait-policy PASSIVE|ACTIVE]

Writes ``benchmarks/results/musicnn.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = ("violin", "drums", "guitar", "piano", "flute", "cello", "synthesizer", "saxophone")


def render_audio(total_seconds: float, clip_seconds: float = 10.0) -> list[np.ndarray]:
    """Demo-like clips, one instrument each, ``total_seconds`` in all."""
    from pipeline.datasets.demo import OPENMIC_CLASSES, render_instrument

    names = [c for c in CLASSES if c in OPENMIC_CLASSES]
    count = max(1, int(round(total_seconds / clip_seconds)))
    return [
        render_instrument(names[i % len(names)], seconds=clip_seconds, sample_rate=16000, seed=i)
        for i in range(count)
    ]


def timed(fn) -> tuple[float, float, object]:
    """(wall s, CPU s of this process, result) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def bench_model(model: str, clips: list[np.ndarray], threads: int, hop: float, repeats: int) -> dict:
    import torch

    from pipeline.teachers.musicnn import MusicnnConfig, MusicnnTeacher
    from tests.musicnn_reference import TFMusicnn, upstream_patches

    torch.set_num_threads(threads)
    layer = "pool5" if model.endswith("_vgg") else "penultimate"
    teacher = MusicnnTeacher(MusicnnConfig(model=model, layer=layer, hop_seconds=hop)).load("cpu")
    reference = TFMusicnn(teacher.checkpoint_prefix(), threads=threads)
    seconds = sum(len(c) for c in clips) / 16000

    def port(share: bool):
        teacher.share_overlap = share
        return [teacher.embed(clip)[0] for clip in clips]

    def original():
        return [reference.run(upstream_patches(clip, teacher.hop_frames), [layer])[layer] for clip in clips]

    port(True), original()  # warm up (librosa's numba JIT, oneDNN primitives)
    best = {"port": (np.inf, np.inf), "port_no_sharing": (np.inf, np.inf), "tf": (np.inf, np.inf)}
    outputs = {}
    for _ in range(repeats):
        runs = (("port", lambda: port(True)), ("port_no_sharing", lambda: port(False)), ("tf", original))
        for key, fn in runs:
            wall, cpu, result = timed(fn)
            best[key] = (min(best[key][0], wall), min(best[key][1], cpu))
            outputs[key] = result
    diffs = []
    for ours, theirs in zip(outputs["port"], outputs["tf"]):
        n = min(len(ours), len(theirs))
        diffs.append(float(np.abs(ours[:n] - theirs[:n]).max() / np.abs(theirs[:n]).max()))
    reference.close()
    row = {
        "model": model,
        "layer": layer,
        "threads": threads,
        "hop_seconds": hop,
        "audio_seconds": seconds,
        "patches": int(sum(len(o) for o in outputs["tf"])),
        "max_rel_diff_vs_tf": max(diffs),
    }
    for key, (wall, cpu) in best.items():
        row[f"{key}_wall_s"] = wall
        row[f"{key}_cpu_s"] = cpu
        row[f"{key}_audio_s_per_s"] = seconds / wall
    row["speedup_vs_tf"] = best["tf"][0] / best["port"][0]
    row["speedup_vs_tf_no_sharing"] = best["tf"][0] / best["port_no_sharing"][0]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio seconds to embed per timing")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=["MTT_musicnn", "MTT_vgg"])
    parser.add_argument("--hop", type=float, default=1.0, help="patch hop in seconds (the default config)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "musicnn.json")
    parser.add_argument(
        "--omp-wait-policy", default=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
        help="OMP_WAIT_POLICY for torch's OpenMP threads (set before torch loads; default PASSIVE)",
    )
    args = parser.parse_args()

    # With 2 threads on a busy 2-core machine, OpenMP's default spin-waiting made torch ~5x
    # slower than with 1 thread (measured: 19.7 vs 105 audio-s/s); PASSIVE waiting fixes it.
    # TF's own thread pool does not use OpenMP. Must be set before torch is imported.
    os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import torch

    clips = render_audio(args.seconds)
    load_before = os.getloadavg()
    rows = []
    for model in args.models:
        for threads in args.threads:
            row = bench_model(model, clips, threads, args.hop, args.repeats)
            rows.append(row)
            print(
                f"{model:12s} threads={threads}  port {row['port_audio_s_per_s']:7.1f} audio-s/s "
                f"(no sharing {row['port_no_sharing_audio_s_per_s']:6.1f})  "
                f"TF {row['tf_audio_s_per_s']:6.1f}  "
                f"ratio {row['speedup_vs_tf']:.2f}x (no sharing {row['speedup_vs_tf_no_sharing']:.2f}x)  "
                f"max rel diff {row['max_rel_diff_vs_tf']:.1e}",
                flush=True,
            )
    result = {
        "benchmark": "musicnn port vs original TF graph (CPU, end to end incl. log-mel)",
        "command": "python benchmarks/bench_musicnn.py " + " ".join(sys.argv[1:]),
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "omp_wait_policy": args.omp_wait_policy,
        "versions": {"torch": torch.__version__, "tensorflow": tf.__version__, "numpy": np.__version__},
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
