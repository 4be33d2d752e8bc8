"""Issue 12's GPU check: every row of its table, measured in one run on one device (< 8 minutes).

For each teacher (musicnn, OpenL3 mel128-512, VGGish, PaSST-S, PANNs CNN14 clip level):

1. **FLOPs** per unit counted with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions,
   matmuls, attention; the STFT is not counted) beside the issue's estimate, and the share of
   the chip's peak the measured rate implies;
2. **forward only**: a fixed-shape batch through ``teacher.embed_windows`` for a few seconds,
   in float32 and bfloat16 (with the relative error of bfloat16 and float16 against float32);
3. **GPU equals CPU**: the device's float32 frames against a CPU run of the same windows,
   asserted within :data:`CPU_TOLERANCE` (the script fails after writing its JSON otherwise);
4. **end to end**: ``stages.extract.run`` on real files (rendered music, FLAC at 22.05 kHz,
   decoded, resampled, audio cache on, store commits), as a share of the forward-only rate.

Then stage two: CP-ResNet (rho 7, 10 s at 32 kHz) trained by ``Trainer.fit`` fed by the real
loader from an HDF5 store (fp32 batch 16; bf16 batch 64), and the EAsT-Final step against the
baseline step on the same batch on the device.

Weights: musicnn's real ones (the installed package, or ``--assets``' copy); the others are
random weights in their official formats (``random_weights.py``): timing does not depend on
the values. Each figure is printed beside its target; ``benchmarks/speed_table.py`` turns the
JSON into the README's table.

Usage:
    python benchmarks/gpu_check.py --prepare .cache/gpu_check   # on a CPU machine: audio + musicnn weights
    python benchmarks/gpu_check.py --assets .cache/gpu_check    # on the GPU (writes results/gpu_check.json)
    python benchmarks/gpu_check.py --smoke --out /tmp/x.json    # tiny sizes on the CPU (tests run this)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

TEACHERS = ("musicnn", "openl3", "vggish", "passt", "panns")
#: The issue's table: unit, float32 target, reduced-precision target, figure measured before.
TARGETS: dict[str, dict[str, Any]] = {
    "musicnn": {"unit": "audio-s/s", "float32": 10_000, "reduced": 50_000, "before": 1_452},
    "openl3": {"unit": "windows/s", "float32": 3_300, "reduced": 20_000, "before": 2_519},
    "vggish": {"unit": "windows/s", "float32": 18_697, "reduced": 50_000, "before": 18_697},
    "passt": {"unit": "x real time", "float32": 2_000, "reduced": 5_000, "before": 2_000},
    "panns": {"unit": "x real time", "float32": 8_000, "reduced": 20_000, "before": 5_800},
}
#: The issue's FLOP estimates, GFLOP per unit of ``FLOP_UNIT``.
ESTIMATED_GFLOP = {"musicnn": 3.0, "openl3": 10.0, "vggish": 1.8, "passt": 20.0, "panns": 4.0}
FLOP_UNIT = {"musicnn": "audio-second", "openl3": "window", "vggish": "window", "passt": "audio-second",
             "panns": "audio-second"}
#: Largest relative difference (max |gpu - cpu| / max |cpu|) allowed between the device's
#: float32 frames and the CPU's. VGGish's post-processed output is 8-bit: one step is 1/255.
CPU_TOLERANCE = {"musicnn": 1e-4, "openl3": 1e-4, "vggish": 1.01 / 255, "passt": 1e-4, "panns": 1e-4}
#: Dense peak TFLOP/s (float32 without tensor cores, bf16 with) of known chips.
PEAKS = {"H200": {"float32": 67.0, "bfloat16": 989.0}, "H100": {"float32": 67.0, "bfloat16": 989.0}}
#: Forward batch (windows, or clips for PANNs) on a GPU; CPU smoke runs use 2.
GPU_BATCH = {"musicnn": 256, "openl3": 256, "vggish": 1024, "passt": 256, "panns": 32}
CLIP_SECONDS = 10.0  # PANNs clip level: 10 s clips
E2E_FILE_SECONDS = 30.0


class Sizes:
    """Run sizes: a full GPU run or a CPU smoke run."""

    def __init__(self, smoke: bool) -> None:
        self.smoke = smoke
        self.forward_seconds = 0.0 if smoke else 5.0
        self.e2e_seconds = 1.0 if smoke else 6.0
        self.e2e_files = 2 if smoke else 12
        self.e2e_file_seconds = 4.0 if smoke else E2E_FILE_SECONDS
        self.cpu_windows = 1 if smoke else 4
        self.train_clips = 8 if smoke else 1024
        self.step_repeats = 2 if smoke else 20

    def batch(self, name: str) -> int:
        return 1 if self.smoke else GPU_BATCH[name]


# ---- helpers ------------------------------------------------------------------------------------
def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_teacher(name: str, settings: dict, device: str, smoke: bool, **changes: Any):  # noqa: ANN201
    """A loaded teacher; in smoke runs PaSST and CNN14 are the shrunken networks of the random files."""
    import random_weights

    from pipeline.teachers import build_teacher
    from pipeline.teachers.panns import PannsTeacher
    from pipeline.teachers.passt import PasstTeacher

    settings = dict(settings, **changes)
    if smoke and name in ("passt", "panns"):
        base = PasstTeacher if name == "passt" else PannsTeacher
        tiny = random_weights.PASST_TINY if name == "passt" else random_weights.PANNS_TINY
        cls = type(f"Tiny{base.__name__}", (base,), {"architecture": tiny})
        return cls(cls.config_type(**settings)).load(device)
    return build_teacher(name, settings).load(device)


def music(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    """Rendered instruments when the demo renderer is installed, else tones with noise; float32 mono."""
    try:
        from pipeline.datasets.demo import OPENMIC_CLASSES, render_instrument

        names = [OPENMIC_CLASSES[(seed + i) % len(OPENMIC_CLASSES)] for i in range(int(math.ceil(seconds / 10)))]
        audio = np.concatenate([render_instrument(n, seconds=10.0, sample_rate=rate, seed=seed + i)
                                for i, n in enumerate(names)])
    except ImportError:
        rng = np.random.default_rng(seed)
        t = np.arange(int(seconds * rate)) / rate
        audio = 0.3 * np.sin(2 * np.pi * rng.uniform(110, 880) * t) + 0.02 * rng.standard_normal(len(t))
    return (0.5 * audio[: int(seconds * rate)]).astype(np.float32)


def windows_for(teacher: Any, n: int) -> np.ndarray:
    """``n`` inputs of ``teacher`` cut from music: windows of its grid, or 10 s clips (clip level)."""
    rate = teacher.sample_rate
    if teacher.grid is None:
        audio = music(CLIP_SECONDS * min(n, 8), rate)
        clips = audio.reshape(-1, int(CLIP_SECONDS * rate))
        return np.resize(clips, (n, clips.shape[1])).astype(np.float32)
    grid = teacher.grid
    seconds = (grid.window + grid.hop * (min(n, 64) - 1)) / rate + 1
    audio = music(seconds, rate)
    cut = grid.cut(audio, 0, min(n, grid.num_windows(len(audio))))
    return np.resize(cut, (n, grid.window)).astype(np.float32)


def unit_per_input(name: str, teacher: Any) -> float:
    """Units of the teacher's target per input row: audio seconds (hop), 1 window, or clip seconds."""
    if TARGETS[name]["unit"] == "windows/s":
        return 1.0
    if teacher.grid is None:
        return CLIP_SECONDS
    return teacher.grid.hop / teacher.sample_rate


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def timed_rate(fn: Callable[[], Any], rows: int, seconds: float, device: str) -> float:
    """Rows per second of calling ``fn`` (warm-up first) for about ``seconds``."""
    fn()
    sync(device)
    calls, start = 0, time.perf_counter()
    while calls < 1 or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    sync(device)
    return rows * calls / (time.perf_counter() - start)


def count_gflop(teacher: Any, inputs: np.ndarray) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        teacher.embed_windows(inputs)
    return counter.get_total_flops() / 1e9 / len(inputs)


# ---- stage one ----------------------------------------------------------------------------------
def teacher_rows(name: str, settings: dict, device: str, sizes: Sizes, peak: dict | None) -> dict:
    """FLOPs, forward rates (float32, bfloat16), precision errors and GPU == CPU for one teacher."""
    teacher = make_teacher(name, settings, device, sizes.smoke)
    batch = windows_for(teacher, sizes.batch(name))
    per_row = unit_per_input(name, teacher)
    row: dict[str, Any] = {"teacher": name, "unit": TARGETS[name]["unit"], "batch": len(batch),
                           "audio_seconds_per_unit": per_row if per_row != 1.0 else teacher.hop_seconds,
                           "path": "batched" if getattr(teacher, "_batched", lambda: True)() else "shared"}
    gflop_per_row = count_gflop(teacher, batch[: max(1, min(4, len(batch)))])
    per_unit = gflop_per_row / (1.0 if FLOP_UNIT[name] == "window" else per_row)
    row["gflop_per_unit"] = {"unit": FLOP_UNIT[name], "counted": per_unit, "issue_estimate": ESTIMATED_GFLOP[name]}
    reference = teacher.embed_windows(batch[: sizes.cpu_windows])
    for precision in ("float32", "bfloat16"):
        model = teacher if precision == "float32" else make_teacher(name, settings, device, sizes.smoke,
                                                                    precision=precision)
        rate = timed_rate(lambda m=model: m.embed_windows(batch), len(batch), sizes.forward_seconds, device)
        row[f"forward_{precision}"] = rate * per_row
        if peak:
            tflops = rate * gflop_per_row / 1e3
            row[f"share_of_peak_{precision}"] = tflops / peak["float32" if precision == "float32" else "bfloat16"]
        if precision != "float32":
            row["bfloat16_rel_error"] = rel_error(model.embed_windows(batch[: sizes.cpu_windows]), reference)
        del model
    half = make_teacher(name, settings, device, sizes.smoke, precision="float16")
    row["float16_rel_error"] = rel_error(half.embed_windows(batch[: sizes.cpu_windows]), reference)
    del half
    cpu = make_teacher(name, settings, "cpu", sizes.smoke).embed_windows(batch[: sizes.cpu_windows])
    row["gpu_vs_cpu_rel_diff"] = rel_error(reference, cpu)
    row["gpu_vs_cpu_tolerance"] = CPU_TOLERANCE[name]
    row["gpu_equals_cpu"] = row["gpu_vs_cpu_rel_diff"] <= CPU_TOLERANCE[name]
    if name == "musicnn" and device.startswith("cuda"):  # the CPU-tuned shared path, for comparison
        teacher.share_overlap, keep = True, teacher._batched
        teacher._batched = lambda: False  # type: ignore[method-assign]
        row["forward_float32_shared_path"] = per_row * timed_rate(
            lambda: teacher.embed_windows(batch), len(batch), sizes.forward_seconds, device)
        teacher._batched = keep  # type: ignore[method-assign]
    return row


def render_files(folder: Path, count: int, seconds: float) -> list[Path]:
    """``count`` music files of ``seconds`` (22.05 kHz FLAC) in ``folder``, rendered once."""
    from pipeline.audio import write_audio

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"music{i:03d}.flac"
        if not path.exists():
            write_audio(path, music(seconds, 22050, seed=i), 22050)
        paths.append(path)
    return paths


def end_to_end(name: str, settings: dict, device: str, sizes: Sizes, files: list[Path], forward_rate: float,
               audio_per_unit: float, work: Path) -> dict:
    """``stages.extract.run`` over enough real files for ~``e2e_seconds`` at the forward-only rate."""
    import yaml

    from pipeline.config import load_params
    from pipeline.manifests import Clip, write_classes, write_manifest
    from stages.extract import run

    audio_seconds = forward_rate * audio_per_unit * sizes.e2e_seconds
    seconds = sizes.e2e_file_seconds
    entries = int(min(1500, max(len(files), math.ceil(audio_seconds / seconds))))  # <= 12.5 h of audio
    clips = [Clip(f"t{i:05d}", files[i % len(files)].name, seconds, 22050, (0,), (True,)) for i in range(entries)]
    manifests = work / f"manifests-{name}"
    write_manifest(manifests / "train.jsonl", clips)
    write_classes(manifests / "classes.json", ("x",))
    batch_seconds = sizes.batch(name) * (CLIP_SECONDS if name == "panns" else 1.0)
    params = {
        "data": {"audio_root": str(files[0].parent), "manifests": str(manifests)},
        "extract": {"store_root": str(work / "stores"), "workers": 0, "splits": ["train"], "device": device,
                    "cache_audio": True, "batch_seconds": float(batch_seconds), "part_tracks": 256},
        "teachers": {name: settings},
    }
    path = work / f"params-{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    if sizes.smoke and name != "musicnn":
        return {"skipped": "smoke runs time musicnn's end-to-end path only"}
    report = run(load_params(path), teacher=name, progress=False)
    if not report.ok:
        raise AssertionError(f"{name}: end-to-end extraction failed: {report.failed[:3]}")
    if name == "panns":
        rate = report.audio_seconds / report.wall_seconds  # x real time
    elif TARGETS[name]["unit"] == "windows/s":
        teacher = make_teacher(name, settings, "cpu", sizes.smoke)
        rate = entries * teacher.num_frames(int(seconds * teacher.sample_rate)) / report.wall_seconds
    else:
        rate = report.audio_seconds / report.wall_seconds
    shutil.rmtree(work / "stores", ignore_errors=True)
    return {"tracks": entries, "audio_seconds": report.audio_seconds, "wall_s": report.wall_seconds,
            "rate": rate, "over_forward_only": rate / forward_rate}


# ---- stage two ----------------------------------------------------------------------------------
def make_stores(root: Path, n_clips: int, seconds: float, sr: int) -> tuple[Path, list]:
    """An HDF5 teacher store (768-d, 0.96 s, PaSST-like) with its int16 audio cache."""
    from pipeline.manifests import Clip
    from pipeline.stores import StoreSpec, create_store

    teacher_spec = StoreSpec(kind="embedding", teacher="synthetic-passt", config={"dim": 768},
                             weights_sha256="0" * 64, sample_rate=sr, hop_seconds=0.96, window_seconds=0.96,
                             frame0_center_seconds=0.0, clip_level=False, dim=768, dtype="float16", versions={})
    teacher_store = create_store(root / "teacher", teacher_spec, backend="hdf5")
    audio_store = create_store(root / "teacher" / "audio", StoreSpec.for_audio(sr), backend="hdf5")
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


def training_row(device: str, sizes: Sizes, batch_size: int, amp: bool, store: Path, clips: list) -> dict:
    """CP-ResNet EAsT-Final training fed by the real loader from ``store``; clips/s of the 2nd epoch."""
    from pipeline.config import DistillConfig
    from pipeline.data import ClipDataset
    from pipeline.audio_source import AudioSource
    from pipeline.losses import EAsTObjective
    from pipeline.students import build_student
    from pipeline.train import Trainer

    sr, seconds = 32000, (1.0 if sizes.smoke else 10.0)
    workers = 2 if sizes.smoke else min(12, max(1, (os.cpu_count() or 2) - 2))
    with tempfile.TemporaryDirectory() as tmp:
        audio = AudioSource(str(store.parent), sr, store / "audio")
        train = ClipDataset(clips, audio, clip_seconds=seconds, teacher_store=store, random_crop=True)
        valid = ClipDataset(clips[: min(64, len(clips))], audio, clip_seconds=seconds, teacher_store=store)
        cfg = DistillConfig(student="cp_resnet", variant="east-final", lam=0.3, epochs=2, batch_size=batch_size,
                            num_workers=workers, amp=amp, device=device, lr=1e-4, schedule="onecycle")
        model = build_student("cp_resnet", {"rho": 7, "base_channels": 16 if sizes.smoke else 128}, n_classes=20,
                              sample_rate=sr)
        trainer = Trainer(model, EAsTObjective(variant="east-final", lam=0.3), cfg, Path(tmp) / "run",
                          device=device)  # the store's frames: 0.96 s windows
        trainer.fit(train, valid, progress=False)
        history = (Path(tmp) / "run" / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    last = dict(zip(header, history[-1].split(",")))
    return {"batch_size": batch_size, "amp_bf16": amp, "loader_workers": workers, "clips": sizes.train_clips,
            "clips_per_second": float(last["clips_per_second"]), "history": history}


def step_ratio(device: str, sizes: Sizes, batch_size: int, amp: bool) -> dict:
    """Seconds per training step (forward, backward, Adam) of EAsT-Final vs the baseline, data on the device."""
    from pipeline.batch import Batch, TeacherFrames
    from pipeline.losses import EAsTObjective
    from pipeline.students import build_student

    sr, seconds = 32000, (1.0 if sizes.smoke else 10.0)
    torch.manual_seed(0)
    model = build_student("cp_resnet", {"rho": 7, "base_channels": 16 if sizes.smoke else 128}, n_classes=20,
                          sample_rate=sr).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    audio = torch.randn(batch_size, int(sr * seconds), device=device) * 0.1
    labels = (torch.rand(batch_size, 20, device=device) < 0.15).float()
    known = torch.ones(batch_size, 20, dtype=torch.bool, device=device)
    n_frames = int(seconds / 0.96) + 1
    teacher = torch.randn(batch_size, n_frames, 768, device=device)
    times = torch.arange(n_frames, dtype=torch.float32) * 0.96
    batch = Batch(audio, labels, known, torch.arange(batch_size, device=device), [TeacherFrames(teacher, times, 0.96)])
    result = {}
    for variant in ("baseline", "east-final"):
        objective = EAsTObjective(variant=variant, lam=0.3)

        def step() -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device.startswith("cuda")):
                output = model(audio)
            losses = objective(output, batch)
            optimiser.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimiser.step()

        rate = timed_rate(step, 1, 0.0 if sizes.smoke else 4.0, device)
        result[f"{variant}_steps_per_second"] = rate
    east, baseline = result["east-final_steps_per_second"], result["baseline_steps_per_second"]
    result["east_over_baseline_throughput"] = east / baseline
    result.update(batch_size=batch_size, amp_bf16=amp)
    return result


# ---- the run --------------------------------------------------------------------------------------
def prepare(folder: Path, sizes: Sizes) -> None:
    """On a CPU machine: render the end-to-end files and copy musicnn's weights into ``folder``."""
    from pipeline.teachers import build_teacher

    render_files(folder / "audio", sizes.e2e_files, sizes.e2e_file_seconds)
    target = folder / "MTT_musicnn"
    target.mkdir(parents=True, exist_ok=True)
    for path in build_teacher("musicnn", {}).weight_files():  # the checkpoint's .index and .data files
        shutil.copy2(path, target / path.name)
    copy = build_teacher("musicnn", {"weights": str(target)})
    assert copy.weights_sha256 == build_teacher("musicnn", {}).weights_sha256, "musicnn weights copy differs"
    print(f"prepared {folder}: {sizes.e2e_files} files, musicnn weights")


def verdict(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return ""
    return "MET" if value >= target else "missed"


def run_all(args: argparse.Namespace) -> dict:
    import random_weights

    sizes = Sizes(args.smoke)
    device = "cpu" if args.smoke or not torch.cuda.is_available() else "cuda"
    name = torch.cuda.get_device_name(0) if device == "cuda" else (platform.processor() or "cpu")
    peak = next((v for k, v in PEAKS.items() if k in name), None)
    results: dict[str, Any] = {"device": name, "torch": torch.__version__, "python": platform.python_version(),
                               "cpus": os.cpu_count(), "smoke": args.smoke, "peak_tflops": peak,
                               "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:])}
    assets = Path(args.assets) if args.assets else Path(tempfile.mkdtemp(prefix="gpu-check-"))
    musicnn_weights = str(assets / "MTT_musicnn") if (assets / "MTT_musicnn").is_dir() else None
    settings = random_weights.teacher_settings(assets / ("weights-tiny" if args.smoke else "weights"),
                                               tiny=args.smoke, musicnn_weights=musicnn_weights)
    files = render_files(assets / "audio", sizes.e2e_files, sizes.e2e_file_seconds)
    results["teachers"] = []
    with tempfile.TemporaryDirectory() as work:
        for teacher in args.teachers:
            start = time.perf_counter()
            row = teacher_rows(teacher, settings[teacher], device, sizes, peak)
            row["end_to_end"] = end_to_end(teacher, settings[teacher], device, sizes, files,
                                           row["forward_float32"], row["audio_seconds_per_unit"], Path(work))
            row["seconds"] = time.perf_counter() - start
            results["teachers"].append(row)
            report_teacher(row)
    if not args.no_training:
        with tempfile.TemporaryDirectory() as tmp:  # one store (int16 audio + 768-d frames) for both runs
            store, clips = make_stores(Path(tmp), sizes.train_clips, 1.0 if args.smoke else 10.0, 32000)
            results["training"] = [training_row(device, sizes, 8 if args.smoke else 16, False, store, clips),
                                   training_row(device, sizes, 8 if args.smoke else 64, True, store, clips)]
        results["step"] = [step_ratio(device, sizes, 8 if args.smoke else 16, False),
                           step_ratio(device, sizes, 8 if args.smoke else 16, True)]
        report_training(results)
    return results


def report_teacher(row: dict) -> None:
    name, target = row["teacher"], TARGETS[row["teacher"]]
    e2e = row["end_to_end"]
    print(f"{name:8} forward fp32 {row['forward_float32']:>10,.0f} {target['unit']} (target {target['float32']:,}, "
          f"before {target['before']:,}) {verdict(row['forward_float32'], target['float32'])}; "
          f"bf16 {row['forward_bfloat16']:>10,.0f} (target {target['reduced']:,}) "
          f"{verdict(row['forward_bfloat16'], target['reduced'])}", flush=True)
    print(f"{'':8} GFLOP/{row['gflop_per_unit']['unit']}: counted {row['gflop_per_unit']['counted']:.2f}, "
          f"issue {row['gflop_per_unit']['issue_estimate']}; share of peak fp32 "
          f"{row.get('share_of_peak_float32', float('nan')):.1%}; bf16 error {row['bfloat16_rel_error']:.2e}, "
          f"fp16 {row['float16_rel_error']:.2e}; gpu vs cpu {row['gpu_vs_cpu_rel_diff']:.1e} "
          f"(tol {row['gpu_vs_cpu_tolerance']:.1e})", flush=True)
    if "rate" in e2e:
        print(f"{'':8} end to end {e2e['rate']:,.0f} {target['unit']} = {e2e['over_forward_only']:.2f}x forward only "
              f"(target >= 0.8) {verdict(e2e['over_forward_only'], 0.8)}", flush=True)


def report_training(results: dict) -> None:
    targets = [(900, "fp32 batch 16", 612), (1150, "bf16 batch 64", 649)]
    for row, (target, what, before) in zip(results["training"], targets):
        print(f"CP-ResNet training {what}: {row['clips_per_second']:,.0f} clips/s (target {target:,}, before "
              f"{before}) {verdict(row['clips_per_second'], target)}", flush=True)
    for row in results["step"]:
        ratio = row["east_over_baseline_throughput"]
        print(f"EAsT-Final step / baseline step throughput ({'bf16' if row['amp_bf16'] else 'fp32'}): {ratio:.2f} "
              f"(target >= 0.9) {verdict(ratio, 0.9)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (a test runs this)")
    parser.add_argument("--prepare", metavar="DIR", help="render the audio and copy musicnn's weights, then exit")
    parser.add_argument("--assets", metavar="DIR", help="folder made by --prepare (weights are written there too)")
    parser.add_argument("--teachers", nargs="+", default=list(TEACHERS), choices=list(TEACHERS))
    parser.add_argument("--no-training", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/gpu_check.json"))
    args = parser.parse_args()
    if args.prepare:
        prepare(Path(args.prepare), Sizes(args.smoke))
        return
    start = time.perf_counter()
    results = run_all(args)
    results["wall_s"] = time.perf_counter() - start
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} in {results['wall_s']:.0f} s", flush=True)
    unequal = [r["teacher"] for r in results["teachers"] if not r["gpu_equals_cpu"]]
    if unequal:
        raise SystemExit(f"GPU output differs from the CPU beyond the documented tolerance: {unequal}")


if __name__ == "__main__":
    main()
