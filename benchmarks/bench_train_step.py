"""Training-step throughput of Mobile-FCN (5 s clips at 16 kHz, batch 16, one torch thread).

Each step is what :class:`pipeline.train.Trainer` does per batch (``Trainer._losses``, backward,
gradient clipping, Adam): forward on the waveforms, the EAsT objective, the update. Compared:

- ``baseline``: labels only;
- ``east-final``: + distance correlation to cached musicnn frames (200-d, 0.992 s hop), the
  frames given with the batch as the loader serves them;
- ``east-kd``: + KD from a linear probe on those frames;
- ``teacher-in-the-loop``: east-final, but the musicnn teacher (the repository's torch port,
  real weights) embeds each batch inside the step, as a pipeline without a store would;
- ``cnn14-cached`` / ``cnn14-in-the-loop`` (``--cnn14``): the same pair for a teacher of the
  paper's size, PANNs CNN14 (80 M parameters, clip level, 2048-d, 5 s at 32 kHz). Its weights
  are not here, so the network runs with random weights: the cost is the same.

Goals: an EAsT step costs at most 1/0.9 of a baseline step; cached frames make the step at
least 10x faster than running the teacher in the loop. Data sit in memory (the loader is
measured by ``bench_loader.py``). Medians over ``--repeats`` runs of ``--steps`` steps.

Run: ``python benchmarks/bench_train_step.py [--repeats 5] [--steps 4] [--device cuda --no-musicnn]``
(writes ``benchmarks/results/train_step.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 16000
SECONDS = 5.0
BATCH = 16
CLASSES = 20
#: musicnn MTT penultimate as ``pipeline extract`` stores it (used where its weights are absent)
MUSICNN = {"name": "musicnn", "dim": 200, "hop_seconds": 0.992, "window_seconds": 3.008,
           "frame0_center_seconds": 1.488}
MUSICNN_FRAMES_5S = 3


def _frame_times(teacher_geometry: dict, n_frames: int, clip_level: bool = False) -> tuple[np.ndarray, float]:
    """The teacher's frame center times in a clip (relative to its start) and its window."""
    if clip_level:
        return np.array([SECONDS / 2]), teacher_geometry["window_seconds"]
    hop, f0 = teacher_geometry["hop_seconds"], teacher_geometry["frame0_center_seconds"]
    return f0 + hop * np.arange(n_frames), teacher_geometry["window_seconds"]


def _batch(audio, labels, known, frames=None, geometry: tuple[np.ndarray, float] | None = None):  # noqa: ANN001, ANN202
    """A :class:`~pipeline.batch.Batch` of the clips, with one teacher's ``frames`` at ``geometry`` (times, window)."""
    import torch

    from pipeline.batch import Batch, TeacherFrames

    teachers = []
    if frames is not None and geometry is not None:
        teachers = [TeacherFrames(frames, torch.as_tensor(geometry[0], dtype=torch.float32), float(geometry[1]))]
    index = torch.arange(len(audio))
    return Batch(audio, labels, known, index.pin_memory() if audio.is_pinned() else index, teachers)


def _trainer(variant: str, teacher_geometry: dict, run_dir: Path, *, device: str = "cpu"):  # noqa: ANN202
    import torch

    from pipeline.config import DistillConfig
    from pipeline.losses import EAsTObjective
    from pipeline.probe import build_probe
    from pipeline.students import build_student
    from pipeline.train import Trainer

    torch.manual_seed(0)
    student = build_student("mobile_fcn", {}, n_classes=CLASSES, sample_rate=SR)
    config = DistillConfig(variant=variant, device=device, amp=device == "cuda", batch_size=BATCH)
    dim = teacher_geometry["dim"]
    probe = None
    if variant == "east-kd":
        probe = build_probe(dim, CLASSES, np.zeros(dim, np.float32), np.ones(dim, np.float32)).eval()
        for p in probe.parameters():
            p.requires_grad_(False)
    objective = EAsTObjective(variant=variant, lam=0.3)
    trainer = Trainer(student, objective, config, run_dir,
                      probes=[(0, probe)] if probe is not None else None, device=device)
    optimiser = torch.optim.Adam(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return trainer, optimiser


def _step(trainer, optimiser, batch) -> float:  # noqa: ANN001
    import torch

    losses, _ = trainer._losses(batch, train=True)
    optimiser.zero_grad(set_to_none=True)
    losses["total"].backward()
    torch.nn.utils.clip_grad_norm_(trainer.student.parameters(), 1.0)
    optimiser.step()
    return float(losses["total"].detach())


def _measure(step, steps: int, repeats: int, warmup: int = 2) -> dict:  # noqa: ANN001
    import torch

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append((time.perf_counter() - start) / steps)
    median = statistics.median(times)
    return {"step_s_median": median, "step_s_all": times, "clips_per_s": BATCH / median,
            "steps": steps, "repeats": repeats}


def _cnn14(args: argparse.Namespace, audio, labels, known, tmp: Path) -> dict[str, dict]:  # noqa: ANN001
    """East-final with a clip-level 2048-d teacher: cached vs CNN14 (random weights) in the step."""
    import torch

    from pipeline.teachers.panns_net import Cnn14

    torch.manual_seed(0)
    net = Cnn14().eval().to(args.device)
    audio32 = 0.3 * torch.randn(BATCH, int(32000 * SECONDS), device=args.device)  # the cost is what counts
    geometry = {"dim": 2048, "hop_seconds": 0.0, "frame0_center_seconds": SECONDS / 2, "window_seconds": 0.0}
    out = {}
    times = _frame_times(geometry, 1, clip_level=True)
    trainer, optimiser = _trainer("east-final", geometry, tmp / "cnn14-cached", device=args.device)
    cached = _batch(audio, labels, known, torch.randn(BATCH, 1, 2048), times)
    out["cnn14-cached"] = _measure(lambda: _step(trainer, optimiser, cached), args.steps, args.repeats)
    print(f"{'cnn14-cached':20s} {out['cnn14-cached']['clips_per_s']:8.2f} clips/s", flush=True)
    trainer, optimiser = _trainer("east-final", geometry, tmp / "cnn14-loop", device=args.device)

    def in_loop() -> float:
        with torch.no_grad():
            frames = net.embed(audio32)[:, None]
        return _step(trainer, optimiser, _batch(audio, labels, known, frames, times))

    gpu = args.device == "cuda"
    out["cnn14-in-the-loop"] = _measure(in_loop, args.steps if gpu else 1, args.repeats if gpu else 2,
                                        warmup=1)
    print(f"{'cnn14-in-the-loop':20s} {out['cnn14-in-the-loop']['clips_per_s']:8.2f} clips/s", flush=True)
    return out


def run(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(1)
    device = args.device
    rng = np.random.default_rng(0)
    audio = torch.from_numpy((0.3 * rng.standard_normal((BATCH, int(SR * SECONDS)))).astype(np.float32))
    labels = torch.from_numpy((rng.random((BATCH, CLASSES)) < 0.2).astype(np.float32))
    known = torch.from_numpy(rng.random((BATCH, CLASSES)) < 0.8)
    if device == "cuda":  # the loader pins host memory on CUDA
        audio, labels, known = audio.pin_memory(), labels.pin_memory(), known.pin_memory()
    teacher, geometry, n_frames = None, dict(MUSICNN), MUSICNN_FRAMES_5S
    if args.musicnn:
        from pipeline.teachers import build_teacher

        settings = {"model": "MTT_musicnn", "layer": "penultimate", "hop_seconds": 1.0}
        teacher = build_teacher("musicnn", settings)
        teacher.load(device)
        geometry = teacher.describe()
        n_frames = teacher.embed(audio[:1].numpy()).shape[1]  # what extraction stores for a 5 s clip
        assert {k: geometry[k] for k in MUSICNN} == MUSICNN and n_frames == MUSICNN_FRAMES_5S
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("baseline", "east-final", "east-kd"):
            trainer, optimiser = _trainer(variant, geometry, Path(tmp) / variant, device=device)
            batch = _batch(audio, labels, known)
            if variant != "baseline":
                frames = torch.from_numpy(rng.standard_normal((BATCH, n_frames, geometry["dim"])).astype(np.float32))
                if device == "cuda":
                    frames = frames.pin_memory()
                batch = _batch(audio, labels, known, frames, _frame_times(geometry, n_frames))
            results[variant] = _measure(lambda: _step(trainer, optimiser, batch), args.steps, args.repeats)
            print(f"{variant:20s} {results[variant]['clips_per_s']:8.2f} clips/s", flush=True)

        if teacher is not None:
            trainer, optimiser = _trainer("east-final", geometry, Path(tmp) / "in-loop", device=device)
            times = _frame_times(geometry, n_frames)

            def in_loop() -> float:
                with torch.no_grad():
                    frames = teacher.embed(audio.numpy())
                return _step(trainer, optimiser, _batch(audio, labels, known, torch.from_numpy(frames), times))

            results["teacher-in-the-loop"] = _measure(in_loop, max(1, args.steps // 2),
                                                      max(2, args.repeats - 2), warmup=1)
            print(f"{'teacher-in-the-loop':20s} {results['teacher-in-the-loop']['clips_per_s']:8.2f} clips/s")
        if args.cnn14:
            results.update(_cnn14(args, audio, labels, known, Path(tmp)))
    base = results["baseline"]["clips_per_s"]
    ratios = {
        "east_final_vs_baseline": results["east-final"]["clips_per_s"] / base,
        "east_kd_vs_baseline": results["east-kd"]["clips_per_s"] / base,
    }
    if "teacher-in-the-loop" in results:
        ratios["cached_east_final_vs_teacher_in_loop"] = (results["east-final"]["clips_per_s"]
                                                          / results["teacher-in-the-loop"]["clips_per_s"])
    if args.cnn14:
        ratios["cnn14_cached_vs_in_loop"] = (results["cnn14-cached"]["clips_per_s"]
                                             / results["cnn14-in-the-loop"]["clips_per_s"])
    goals = {"east_step_at_least_0.9x_baseline": min(ratios["east_final_vs_baseline"],
                                                     ratios["east_kd_vs_baseline"]) >= 0.9,
             "cached_at_least_10x_teacher_in_loop": {k: v >= 10 for k, v in ratios.items()
                                                     if k.startswith(("cached", "cnn14"))}}
    return {
        "benchmark": "train_step",
        "student": "mobile_fcn", "clip_seconds": SECONDS, "sample_rate": SR, "batch": BATCH, "threads": 1,
        "device": device if device == "cpu" else torch.cuda.get_device_name(0), "amp_bf16": device == "cuda",
        "teacher": {**{k: geometry[k] for k in ("name", "dim", "hop_seconds", "window_seconds",
                                                "frame0_center_seconds")}, "frames_per_clip": n_frames},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                    "load_avg": os.getloadavg()},
        "results": results, "ratios": ratios, "goals_met": goals,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--no-musicnn", dest="musicnn", action="store_false",
                        help="skip musicnn in the loop (its weights come from the musicnn package)")
    parser.add_argument("--no-cnn14", dest="cnn14", action="store_false",
                        help="skip the CNN14-sized teacher-in-the-loop comparison")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_step.json"))
    args = parser.parse_args()
    report = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["ratios"], indent=1), json.dumps(report["goals_met"]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
