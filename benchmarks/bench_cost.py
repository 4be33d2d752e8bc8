"""What a student costs next to the teacher it replaces, measured side by side in one run.

Rows: every registered student (its ``params.yaml`` settings, the demo's 20 classes and 5-s
training length, at 16 kHz) as ``pipeline predict`` and its exports run it, and each teacher with
its linear probe (the model the student replaces: teacher embeddings of the clip, time-pooled,
then ``Linear(dim, classes)``). musicnn uses its real weights (shipped in the ``musicnn`` wheel);
with ``--random-teachers DIR`` the other teachers run on random weights in their official file
formats (``random_weights.py``; cost does not depend on the values).

Per row:

- ``parameters``: weight elements (a student's trainable parameters; the teacher's network, whose
  ports hold weights as buffers, plus the probe; front-end windows and filter banks not counted);
- ``float32_bytes`` / ``int8_bytes``: the student's exported ONNX tagger, float32 and static int8
  (front end float32; ``pipeline export --quantize int8``); a teacher's weight files;
- ``gflops_per_10s``: FLOPs to tag 10 s of audio counted by ``torch.utils.flop_counter.FlopCounterMode``
  (convolutions and matmuls; an STFT by FFT is not counted) on the path each model runs: the student
  over ``pipeline predict``'s windows (3 windows of 5 s for 10 s), the teacher over its analysis
  windows, plus the probe. ``export_gflops_per_10s``: the student's exported graph, whose STFT is a
  DFT convolution (counted);
- ``ms_per_10s``: CPU wall time of one 10-s clip at 1 thread, median of ``--repeats`` calls after a
  warm-up, the models' calls interleaved so load changes hit all of them: ``torch`` (float32, as
  ``pipeline predict`` / ``extract`` + probe run it), and for students ``onnx`` (float32) and
  ``onnx_int8`` under onnxruntime;
- ``rtf``: real-time factor, ``ms_per_10s / 10,000`` (0.01 = 100x faster than real time).

Usage: nice -n 5 python benchmarks/bench_cost.py [--repeats 20] [--probe runs/probe-musicnn/probe.pt]
       [--random-teachers benchmarks/work/weights] [--out benchmarks/results/cost.json]
Then ``python benchmarks/bench_cost.py --table`` prints the Markdown table (README; ``pipeline report``
shows it with each model's test mAP when the JSON exists: ``pipeline/cost.py``).
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
from typing import Any, Callable, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline.cost import COST_JSON, cost_table  # noqa: E402

OUT = COST_JSON
CLIP_SECONDS = 10.0
RATE = 16000  # the demo's student rate
TRAIN_SECONDS = 5.0
N_CLASSES = 20


def music(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Tones changing every half second in light noise, float32 mono (cost does not depend on content)."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    steps = (t * 2).astype(int)
    freqs = rng.uniform(110, 1760, steps.max() + 1)[steps]
    return (0.3 * np.sin(2 * np.pi * freqs * t) + 0.02 * rng.standard_normal(n)).astype(np.float32)


def count_gflops(fn: Callable[[], Any]) -> float:
    """GFLOPs ``fn`` runs, counted by ``FlopCounterMode`` (no gradients)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def median_ms(calls: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median wall ms per call of each function, one warm-up each, calls interleaved."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn in calls.values():
        fn()
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(1e3 * (time.perf_counter() - start))
    return {name: float(np.median(t)) for name, t in times.items()}


# ---- students ---------------------------------------------------------------------------------
def _student_run(name: str, settings: dict[str, Any], folder: Path) -> Any:
    """A :class:`LoadedRun` of a random ``name`` student saved like ``pipeline distill`` saves one."""
    import torch

    from pipeline.run_config import RunConfig
    from pipeline.students import build_student
    from pipeline.students.trained import LoadedRun

    torch.manual_seed(0)
    model = build_student(name, settings, n_classes=N_CLASSES, sample_rate=RATE).eval()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "best.pt")
    classes = [f"class_{i}" for i in range(N_CLASSES)]
    config = RunConfig(student=name, student_settings=settings, n_classes=N_CLASSES, classes=classes,
                       sample_rate=RATE, clip_seconds=TRAIN_SECONDS, variant="cost", distill={"seed": 0})
    (folder / "config.json").write_text(config.to_json())
    return LoadedRun(folder, config, model, classes, RATE, TRAIN_SECONDS)


def student_row(name: str, settings: dict[str, Any], work: Path, clip: np.ndarray) -> tuple[dict, dict]:
    """Static figures of one student and its timed calls (torch, onnx, onnx_int8)."""
    import torch

    from pipeline.export import _tagger, export_run
    from pipeline.quantize import quantize_int8, session
    from pipeline.students.trained import predict_audio

    run = _student_run(name, settings, work / name)
    onnx_path = export_run(run, work / name / "model.onnx", fmt="onnx").path
    calibration = [music(TRAIN_SECONDS, RATE, seed) for seed in range(8)]
    int8_path = quantize_int8(onnx_path, work / name / "model.int8.onnx", method="static", calibration=calibration)
    tagger = _tagger(run)
    tagger.student.frontend.set_stft("dft")
    export_gflops = count_gflops(lambda: tagger(torch.from_numpy(clip)[None]))
    tagger.student.frontend.set_stft("fft")
    float_session, int8_session = session(onnx_path), session(int8_path)
    feed = {"waveform": clip[None]}
    row = {
        "model": name, "role": "student", "parameters": run.model.num_parameters(),
        "float32_bytes": onnx_path.stat().st_size, "int8_bytes": int8_path.stat().st_size,
        "gflops_per_10s": count_gflops(lambda: predict_audio(run, clip)),
        "export_gflops_per_10s": export_gflops,
        "sample_rate": RATE, "train_seconds": TRAIN_SECONDS, "settings": settings,
    }
    calls = {"torch": lambda: predict_audio(run, clip), "onnx": lambda: float_session.run(None, feed),
             "onnx_int8": lambda: int8_session.run(None, feed)}
    return row, calls


# ---- teachers ---------------------------------------------------------------------------------
def _network_elements(teacher: Any) -> int:
    """Weight elements of the teacher's network (``_net`` or ``_model``): parameters and weight buffers
    (the ports hold their weights as buffers), without batch-norm running statistics and without the
    front end's fixed window and filter bank (a student's count leaves those out too)."""
    import torch

    total = 0
    for attr in ("_net", "_model"):
        module = getattr(teacher, attr, None)
        if isinstance(module, torch.nn.Module):
            total += sum(p.numel() for p in module.parameters())
            total += sum(b.numel() for n, b in module.named_buffers()
                         if "running_" not in n and "num_batches" not in n)
    return total


def _probe(dim: int, path: Path | None) -> Any:
    """The teacher's fitted probe when ``path`` exists and matches ``dim``, else a random one."""
    from pipeline.probe import build_probe, load_probe

    if path is not None and path.is_file():
        probe = load_probe(path)
        if probe.linear.in_features == dim:
            return probe
    return build_probe(dim, N_CLASSES, np.zeros(dim, np.float32), np.ones(dim, np.float32)).eval()


def teacher_row(name: str, settings: dict[str, Any], probe_path: Path | None) -> tuple[dict, dict]:
    """Static figures of one teacher + probe and its timed call (torch)."""
    import torch

    from pipeline.audio import resample
    from pipeline.teachers import build_teacher

    teacher = build_teacher(name, settings).load("cpu")
    clip = resample(music(CLIP_SECONDS, RATE), RATE, teacher.sample_rate)
    probe = _probe(teacher.embedding_dim, probe_path if name == "musicnn" else None)

    def tag() -> Any:
        frames = torch.from_numpy(teacher.embed(clip[None]))
        with torch.no_grad():
            return torch.sigmoid(probe(probe.normalise(frames)))

    weights = teacher.weight_files()
    row = {
        "model": name, "role": "teacher + probe",
        "parameters": _network_elements(teacher) + sum(p.numel() for p in probe.parameters()),
        "float32_bytes": sum(Path(f).stat().st_size for f in weights), "int8_bytes": None,
        "gflops_per_10s": count_gflops(tag), "export_gflops_per_10s": None,
        "sample_rate": teacher.sample_rate, "weights": "real" if name == "musicnn" else "random (official format)",
        "probe": "fitted" if name == "musicnn" and probe_path is not None and probe_path.is_file() else "random",
    }
    return row, {"torch": tag}


# ---- main -------------------------------------------------------------------------------------
def _teacher_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    import yaml

    params = yaml.safe_load(Path("params.yaml").read_text()) if Path("params.yaml").is_file() else {}
    musicnn = dict((params.get("teachers") or {}).get("musicnn") or {})
    if args.random_teachers is None:
        return {"musicnn": musicnn}
    import random_weights

    found = random_weights.teacher_settings(args.random_teachers)
    found["musicnn"] = musicnn
    return found


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """All rows, timed together."""
    import torch
    import yaml

    from pipeline.students import STUDENTS

    torch.set_num_threads(1)
    params = yaml.safe_load(Path("params.yaml").read_text()) if Path("params.yaml").is_file() else {}
    clip = music(CLIP_SECONDS, RATE)
    rows, calls = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.students or sorted(STUDENTS.names()):
            settings = dict((params.get("students") or {}).get(name) or {})
            settings.pop("sample_rate", None)
            row, timed = student_row(name, settings, Path(scratch), clip)
            rows.append(row)
            calls.update({(name, k): f for k, f in timed.items()})
        for name, settings in _teacher_settings(args).items():
            row, timed = teacher_row(name, settings, args.probe)
            rows.append(row)
            calls.update({(name, k): f for k, f in timed.items()})
        flat = median_ms({f"{m}\t{k}": f for (m, k), f in calls.items()}, args.repeats)
    for row in rows:
        row["ms_per_10s"] = {k.split("\t")[1]: v for k, v in flat.items() if k.split("\t")[0] == row["model"]}
        row["rtf"] = {k: v / (CLIP_SECONDS * 1e3) for k, v in row["ms_per_10s"].items()}
    return {"rows": rows}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Measure (or with ``--table`` print the table of ``--out``); returns the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--probe", type=Path, default=Path("runs/probe-musicnn/probe.pt"))
    parser.add_argument("--random-teachers", type=Path, default=None)
    parser.add_argument("--students", nargs="+", default=None, help="default: every registered student")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="print the Markdown table of --out and stop")
    args = parser.parse_args(argv)
    if args.table:
        doc = json.loads(args.out.read_text())
        print(cost_table(doc))
        return doc
    import onnxruntime
    import torch

    doc = {
        "command": "python benchmarks/bench_cost.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                    "load_average_before": os.getloadavg(), "onnxruntime": onnxruntime.__version__,
                    "torch": torch.__version__},
        "clip_seconds": CLIP_SECONDS, "threads": 1, "repeats": args.repeats,
        **measure(args),
    }
    doc["machine"]["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(cost_table(doc))
    return doc


if __name__ == "__main__":
    main()
