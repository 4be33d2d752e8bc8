"""GPU check of both stages, in one short script for a lent accelerator (also runs on CPU, smaller).

1. Stage one: the musicnn port's throughput on the device (windows/s, audio-seconds/s) and its
   agreement with the CPU result on the same windows.
2. Stage two: a real training run of CP-ResNet (rho 7, 10 s clips at 32 kHz, EAsT-Final with a
   PaSST-like 768-d teacher at 0.96 s) fed by the real loader from an HDF5 store that holds the
   int16 audio cache and the teacher frames; plus the loader alone (clips/s).

Usage: python benchmarks/gpu_check.py [--quick] [--weights DIR] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def musicnn_check(device: str, weights: str | None, n_windows: int) -> dict:
    from pipeline.teachers import build_teacher

    settings = {"model": "MTT_musicnn", "layer": "penultimate", "hop_seconds": 1.0}
    if weights:
        settings["weights"] = weights
    teacher = build_teacher("musicnn", settings)
    grid = teacher.grid
    rng = np.random.default_rng(0)
    t = np.arange(grid.window) / grid.sample_rate
    windows = np.stack([
        0.3 * np.sin(2 * np.pi * rng.uniform(80, 2000) * t) + 0.05 * rng.standard_normal(grid.window)
        for _ in range(n_windows)
    ]).astype(np.float32)
    cpu = build_teacher("musicnn", settings).load("cpu").embed_windows(windows[:8])
    teacher.load(device)
    out = teacher.embed_windows(windows[:8])
    rel = float(np.abs(out - cpu).max() / np.abs(cpu).max())
    teacher.embed_windows(windows[:256])  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, n_windows, 256):
        teacher.embed_windows(windows[i : i + 256])
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    rate = n_windows / seconds
    return {"windows": n_windows, "windows_per_second": rate,
            "audio_seconds_per_second": rate * teacher.hop_seconds, "max_rel_diff_vs_cpu": rel}


def make_stores(root: Path, n_clips: int, seconds: float, sr: int) -> tuple[Path, list]:
    from pipeline.manifests import Clip
    from pipeline.stores import StoreSpec, create_store

    audio_spec = StoreSpec.for_audio(sr)
    teacher_spec = StoreSpec(kind="embedding", teacher="synthetic-passt", config={"dim": 768},
                             weights_sha256="0" * 64, sample_rate=sr, hop_seconds=0.96, window_seconds=0.96,
                             frame0_center_seconds=0.0, clip_level=False, dim=768, dtype="float16",
                             versions={})
    teacher_store = create_store(root / "teacher", teacher_spec, backend="hdf5")
    audio_store = create_store(root / "teacher" / "audio", audio_spec, backend="hdf5")
    rng = np.random.default_rng(1)
    clips = []
    n_frames = int(seconds / 0.96) + 1
    with teacher_store.writer(part_tracks=256) as tw, audio_store.writer(part_tracks=128) as aw:
        for i in range(n_clips):
            cid = f"c{i:05d}"
            samples = (rng.standard_normal(int(seconds * sr)) * 3000).astype(np.int16)[:, None]
            aw.add(cid, samples, audio_sha256="", duration=seconds)
            tw.add(cid, rng.standard_normal((n_frames, 768)).astype(np.float16), audio_sha256="", duration=seconds)
            labels = tuple(int(v) for v in rng.random(20) < 0.15)
            clips.append(Clip(cid, f"{cid}.flac", seconds, sr, labels, (True,) * 20))
    return root / "teacher", clips


def training_check(device: str, n_clips: int, batch_size: int, workers: int, amp: bool) -> dict:
    from pipeline.config import DistillConfig
    from pipeline.data import AudioSource, ClipDataset, collate
    from pipeline.losses import EAsTObjective
    from pipeline.students import build_student
    from pipeline.train import Trainer

    sr, seconds = 32000, 10.0
    with tempfile.TemporaryDirectory() as tmp:
        store, clips = make_stores(Path(tmp), n_clips, seconds, sr)
        audio = AudioSource(tmp, sr, store / "audio")
        train = ClipDataset(clips, audio, clip_seconds=seconds, teacher_store=store, random_crop=True)
        valid = ClipDataset(clips[:64], audio, clip_seconds=seconds, teacher_store=store)
        loader = torch.utils.data.DataLoader(train, batch_size=batch_size, num_workers=workers, collate_fn=collate,
                                             persistent_workers=False, shuffle=True)
        start = time.perf_counter()
        n = sum(batch["audio"].shape[0] for batch in loader)
        loader_rate = n / (time.perf_counter() - start)
        cfg = DistillConfig(student="cp_resnet", variant="east-final", lam=0.3, epochs=2, batch_size=batch_size,
                            num_workers=workers, amp=amp, device=device, lr=1e-4, schedule="onecycle")
        model = build_student("cp_resnet", {"rho": 7, "base_channels": 128}, n_classes=20, sample_rate=sr)
        objective = EAsTObjective(variant="east-final", lam=0.3)
        trainer = Trainer(model, objective, cfg, Path(tmp) / "run", teacher_times=train.teacher_times(),
                          teacher_window=0.96, device=device)
        result = trainer.fit(train, valid, progress=False)
        history = (Path(tmp) / "run" / "history.csv").read_text().splitlines()
    return {"clips": n_clips, "batch_size": batch_size, "loader_workers": workers, "amp_bf16": amp,
            "loader_only_clips_per_second": loader_rate,
            "train_clips_per_second_overall": result.train_clips_per_second,
            "history": history}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke test of this script)")
    parser.add_argument("--weights", default=None, help="MTT_musicnn checkpoint folder")
    parser.add_argument("--out", default="benchmarks/results/gpu_check.json")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    results = {"device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or "cpu",
               "torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count()}
    results["musicnn"] = musicnn_check(device, args.weights, 64 if args.quick else 4096)
    print(json.dumps(results["musicnn"]), flush=True)
    runs = [(48, 16, 2, False)] if args.quick else [(1024, 16, 12, False), (1024, 16, 12, True), (1024, 64, 12, True)]
    results["training"] = []
    for n_clips, batch, workers, amp in runs:
        results["training"].append(training_check(device, n_clips, batch, workers, amp))
        print(json.dumps(results["training"][-1]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
