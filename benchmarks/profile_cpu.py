"""Where the time goes on the CPU: one extraction batch and one training step, profiled.

1. Extraction: ``extract_tracks`` (musicnn, real weights, hop 1 s, audio cache on) over
   ``--clips`` rendered 30 s clips under cProfile (all threads' Python time is the calling
   thread's here: the decoder and writer threads are sampled by ``torch.profiler`` instead),
   and ``torch.profiler`` over one teacher batch (40 windows = ``batch_seconds`` 120).
2. Training: ``torch.profiler`` over one EAsT-Final step of Mobile-FCN (batch 16, 5 s at
   16 kHz, musicnn-like 200-d frames): forward, loss, backward, Adam.

Writes the top entries to JSON; ``benchmarks/README.md`` summarises them.

Usage: nice -n 10 python benchmarks/profile_cpu.py [--out benchmarks/results/profile_cpu.json]
"""
from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def top_ops(prof: torch.profiler.profile, n: int = 12) -> list[dict]:
    """The ``n`` operators with the most self CPU time."""
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:n]
    total = sum(e.self_cpu_time_total for e in prof.key_averages()) or 1
    return [{"op": e.key, "calls": e.count, "self_cpu_ms": e.self_cpu_time_total / 1e3,
             "share": e.self_cpu_time_total / total} for e in rows]


def extraction(clips: int) -> dict:
    from pipeline.audio import write_audio
    from pipeline.datasets.demo import OPENMIC_CLASSES, render_instrument
    from pipeline.extraction import extract_tracks
    from pipeline.manifests import Clip
    from pipeline.stores import StoreSpec, create_store
    from pipeline.teachers import build_teacher

    teacher = build_teacher("musicnn", {"hop_seconds": 1.0}).load("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = []
        for i in range(clips):
            audio = np.concatenate([render_instrument(OPENMIC_CLASSES[(i + k) % 20], seconds=10.0,
                                                      sample_rate=22050, seed=i + k) for k in range(3)])
            write_audio(root / f"c{i}.flac", audio, 22050)
            rows.append(Clip(f"c{i}", f"c{i}.flac", 30.0, 22050, (0,), (True,)))
        emb = create_store(root / "emb", StoreSpec.from_teacher(teacher))
        cache = create_store(root / "emb" / "audio", StoreSpec.for_audio(16000))
        profiler = cProfile.Profile()
        with emb.writer() as writer, cache.writer() as audio_writer:
            profiler.enable()
            extract_tracks(teacher, rows, root, writer, audio_writer=audio_writer, audio_sample_rate=16000)
            profiler.disable()
        stats = pstats.Stats(profiler)
        total = stats.total_tt  # type: ignore[attr-defined]
        entries = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:15]  # type: ignore[attr-defined]
        python = [{"function": f"{Path(f).name}:{line}:{name}", "tottime_s": tt, "share": tt / total}
                  for (f, line, name), (_cc, _nc, tt, _ct, _callers) in entries]
    grid = teacher.grid
    audio = np.concatenate([render_instrument("piano", seconds=10.0, sample_rate=16000, seed=s) for s in range(5)])
    windows = grid.cut(audio, 0, 40)
    teacher.embed_windows(windows)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        teacher.embed_windows(windows)
    return {"clips": clips, "clip_seconds": 30.0, "cprofile_total_s": total, "cprofile_top": python,
            "teacher_batch_windows": 40, "teacher_batch_top_ops": top_ops(prof)}


def training_step() -> dict:
    from pipeline.batch import Batch, TeacherFrames
    from pipeline.losses import EAsTObjective
    from pipeline.students import build_student

    torch.manual_seed(0)
    model = build_student("mobile_fcn", {}, n_classes=20, sample_rate=16000)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    objective = EAsTObjective(variant="east-final", lam=0.3)
    audio = torch.randn(16, 80000) * 0.1
    labels = (torch.rand(16, 20) < 0.2).float()
    known = torch.ones(16, 20, dtype=torch.bool)
    teacher = torch.randn(16, 5, 200)
    times = torch.arange(5, dtype=torch.float32) * 0.992 + 1.488
    batch = Batch(audio, labels, known, torch.arange(16), [TeacherFrames(teacher, times, 3.008)])

    def step() -> None:
        losses = objective(model(audio), batch)
        optimiser.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimiser.step()

    step()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step()
    return {"student": "mobile_fcn", "batch": 16, "clip_seconds": 5.0, "top_ops": top_ops(prof, 15)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/profile_cpu.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = {"command": "nice -n 10 python benchmarks/profile_cpu.py " + " ".join(sys.argv[1:]),
              "threads": args.threads, "loadavg": os.getloadavg(),
              "extraction": extraction(args.clips), "training_step": training_step()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for part, key in (("extraction", "teacher_batch_top_ops"), ("training_step", "top_ops")):
        print(part, [(r["op"], round(r["share"], 3)) for r in result[part][key][:6]])
    python = result["extraction"]["cprofile_top"][:6]
    print("extraction python", [(r["function"], round(r["share"], 3)) for r in python])


if __name__ == "__main__":
    main()
