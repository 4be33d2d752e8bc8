"""Stage-two loader throughput: clips per second per CPU core, OpenMIC-like (10 s clips, 32 kHz).

A synthetic dataset of ``--clips`` ten-second clips is written as the pipeline's stores: an
int16 audio cache (zarr, as ``pipeline extract`` leaves it) and a 768-d float16 teacher at a
0.96 s hop (PaSST-like). One process (one core) then reads every clip in random order through

- ``zarr-cache``: :class:`pipeline.data.ClipDataset` on the zarr stores (the default path);
- ``zarr-cache+collate``: the same through a ``DataLoader`` (batch 16, no workers), as training does;
- ``zarr-cache-chunk64k``: the same with audio chunks of 65,536 samples instead of the default
  (>= 30 s: 960,001 samples at 32 kHz), to separate read amplification from zarr's own cost;
- ``memmap-export``: ClipDataset on ``pipeline store export --format memmap`` copies of both stores;
- ``raw-memmap``: a bare ``np.memmap`` slice of the same int16 samples and float16 frames (the ceiling);
- ``decode-flac``: ``pipeline.audio.read_audio`` of a 32 kHz FLAC per item plus ``np.load`` of the
  clip's ``.npy`` embedding (the official code's way), on ``--files`` clips;
- ``decode-ogg-44k``: the same from 44.1 kHz Ogg Vorbis resampled to 32 kHz (OpenMIC's files).

Rates are per CPU second of this process (``time.process_time``), so they mean "per core"
even on a shared machine; wall-clock rates are recorded too. Page cache is warm (a first pass
is not timed). A GPU trains CP-ResNet at ~1,000 ten-second clips/s (see
``/work/shared/reference/gpu-anchor.md``); the JSON says how many cores each path needs for that.

Run: ``python benchmarks/bench_loader.py [--clips 300] [--files 48] [--repeats 3]``
(writes ``benchmarks/results/loader.json``).
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
from typing import Callable

import numpy as np

SR = 32000
SECONDS = 10.0
DIM = 768
HOP = 0.96
GPU_CLIPS_PER_SECOND = 1000.0


def _clip_audio(rng: np.random.Generator, n: int) -> np.ndarray:
    """Music-like noise: a few tones over coloured noise, peak ~0.5."""
    t = np.arange(n) / SR
    x = np.cumsum(rng.standard_normal(n)) * 0.002
    x -= np.convolve(x, np.ones(64) / 64, mode="same")
    for _ in range(3):
        x += 0.1 * np.sin(2 * np.pi * rng.uniform(80, 4000) * t + rng.uniform(0, 6.28))
    return np.clip(x, -1, 1).astype(np.float32)


def build(root: Path, n_clips: int, n_files: int, seed: int = 0) -> dict:
    """Write the stores, the flat memmaps, the memmap exports and the files; returns their paths."""
    from pipeline.audio import write_audio
    from pipeline.manifests import Clip
    from pipeline.stores import StoreSpec, create_store, export_store

    rng = np.random.default_rng(seed)
    n = int(SR * SECONDS)
    frames = int(np.ceil((SECONDS - HOP / 2) / HOP))
    spec = StoreSpec(kind="embedding", teacher="synthetic-768", config={}, weights_sha256="0" * 64,
                     sample_rate=SR, hop_seconds=HOP, window_seconds=HOP, frame0_center_seconds=HOP / 2,
                     clip_level=False, dim=DIM, dtype="float16")
    teacher = create_store(root / "store", spec)
    cache = create_store(root / "store" / "audio", StoreSpec.for_audio(SR))
    small = create_store(root / "small-chunks", StoreSpec.for_audio(SR), chunk_frames=1 << 16)
    flat_audio = np.lib.format.open_memmap(root / "audio.npy", mode="w+", dtype=np.int16, shape=(n_clips, n))
    flat_teacher = np.lib.format.open_memmap(root / "teacher.npy", mode="w+", dtype=np.float16,
                                             shape=(n_clips, frames, DIM))
    clips = []
    (root / "npy").mkdir()
    with teacher.writer(part_tracks=128) as tw, cache.writer(part_tracks=128) as cw, \
            small.writer(part_tracks=128) as sw:
        for i in range(n_clips):
            cid = f"{i:06d}_0"
            wave = _clip_audio(rng, n)
            pcm = np.round(wave * 32767).astype(np.int16)
            emb = rng.standard_normal((frames, DIM)).astype(np.float16)
            cw.add(cid, pcm, audio_sha256="-", duration=SECONDS)
            sw.add(cid, pcm, audio_sha256="-", duration=SECONDS)
            tw.add(cid, emb, audio_sha256="-", duration=SECONDS)
            flat_audio[i] = pcm
            flat_teacher[i] = emb
            if i < n_files:
                write_audio(root / "flac" / f"{cid}.flac", wave, SR)
                import soxr

                wave44 = soxr.resample(wave, SR, 44100).astype(np.float32)
                write_audio(root / "ogg" / f"{cid}.ogg", wave44, 44100)
                np.save(root / "npy" / f"{cid}.npy", emb)
            clips.append(Clip(cid, f"{cid}.flac", SECONDS, SR, (0, 1), (True, True)))
    flat_audio.flush()
    flat_teacher.flush()
    del flat_audio, flat_teacher
    export_store(root / "store", root / "memmap", format="memmap")
    export_store(root / "store" / "audio", root / "memmap" / "audio", format="memmap")
    return {"clips": clips, "frames": frames}


def _time(fn: Callable[[int], object], order: list[int], repeats: int) -> dict:
    for i in order[: min(len(order), 8)]:  # warm-up: open handles, page cache
        fn(i)
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        for i in order:
            fn(i)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    per_core = len(order) / cpu
    return {"clips": len(order), "repeats": repeats, "wall_s": wall, "cpu_s": cpu,
            "clips_per_s_wall": len(order) / wall, "clips_per_s_per_core": per_core,
            "mb_per_s_per_core": per_core * SR * SECONDS * 2 / 1e6,
            "cores_for_gpu": GPU_CLIPS_PER_SECOND / per_core}


def run(args: argparse.Namespace) -> dict:
    import torch

    from pipeline.audio import read_audio
    from pipeline.data import ClipDataset, frame_statistics
    from pipeline.audio_source import AudioSource

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        info = build(root, args.clips, args.files)
        build_s = time.perf_counter() - t0
        clips = info["clips"]
        order = list(np.random.default_rng(1).permutation(len(clips)))
        file_order = [i for i in order if i < args.files]
        norm = frame_statistics(root / "store", clips[:32])
        results = {}

        def dataset(store: Path, cache: Path) -> ClipDataset:
            return ClipDataset(clips, AudioSource(root / "flac", SR, cache), clip_seconds=SECONDS,
                               teacher_store=store, teacher_norm=norm, random_crop=True, seed=0)

        zarr_ds = dataset(root / "store", root / "store" / "audio")
        results["zarr-cache"] = _time(lambda i: zarr_ds[i], order, args.repeats)

        small_ds = dataset(root / "store", root / "small-chunks")
        results["zarr-cache-chunk64k"] = _time(lambda i: small_ds[i], order, args.repeats)

        from torch.utils.data import DataLoader

        loader = DataLoader(zarr_ds, batch_size=16, shuffle=True, num_workers=0, collate_fn=zarr_ds.collate,
                            generator=torch.Generator().manual_seed(0))
        results["zarr-cache+collate"] = _time_loader(loader, args.repeats)

        mm_ds = dataset(root / "memmap", root / "memmap" / "audio")
        results["memmap-export"] = _time(lambda i: mm_ds[i], order, args.repeats)

        flat_audio = np.load(root / "audio.npy", mmap_mode="r")
        flat_teacher = np.load(root / "teacher.npy", mmap_mode="r")
        mean, std = norm

        def raw(i: int) -> tuple[np.ndarray, np.ndarray]:
            audio = flat_audio[i].astype(np.float32) / 32768.0
            frames = (flat_teacher[i].astype(np.float32) - mean) / std
            return audio, frames

        results["raw-memmap"] = _time(raw, order, args.repeats)

        def decode(folder: str, suffix: str) -> Callable[[int], object]:
            def item(i: int) -> tuple[np.ndarray, np.ndarray]:
                cid = clips[i].id
                audio = read_audio(root / folder / f"{cid}{suffix}", sample_rate=SR)
                frames = (np.load(root / "npy" / f"{cid}.npy").astype(np.float32) - mean) / std
                return audio, frames

            return item

        results["decode-flac"] = _time(decode("flac", ".flac"), file_order, args.repeats)
        results["decode-ogg-44k"] = _time(decode("ogg", ".ogg"), file_order, max(1, args.repeats - 1))
        check = zarr_ds[order[0]].audio
        assert np.array_equal(check, mm_ds[order[0]].audio) and np.array_equal(check, raw(order[0])[0])
    ceiling = results["raw-memmap"]["clips_per_s_per_core"]
    for name, row in results.items():
        row["fraction_of_raw_memmap"] = row["clips_per_s_per_core"] / ceiling
    return {
        "benchmark": "loader",
        "clip": {"seconds": SECONDS, "sample_rate": SR, "teacher_dim": DIM, "teacher_hop_s": HOP,
                 "teacher_dtype": "float16", "frames_per_clip": info["frames"]},
        "clips": args.clips, "files": args.files, "build_seconds": build_s,
        "gpu_target_clips_per_s": GPU_CLIPS_PER_SECOND,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "results": results,
    }


def _time_loader(loader, repeats: int) -> dict:  # noqa: ANN001
    next(iter(loader))
    walls, cpus, count = [], [], 0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        count = sum(len(batch) for batch in loader)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"clips": count, "repeats": repeats, "wall_s": wall, "cpu_s": cpu,
            "clips_per_s_wall": count / wall,
            "clips_per_s_per_core": count / cpu, "mb_per_s_per_core": count / cpu * SR * SECONDS * 2 / 1e6,
            "cores_for_gpu": GPU_CLIPS_PER_SECOND / (count / cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--files", type=int, default=48, help="clips also written as FLAC/OGG files")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where the temporary dataset goes")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "loader.json"))
    args = parser.parse_args()
    report = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    header = ("path", "clips/s/core", "MB/s/core", "cores for 1k/s", "of ceiling")
    print(f"{header[0]:22s} {header[1]:>12s} {header[2]:>10s} {header[3]:>15s} {header[4]:>10s}")
    for name, row in report["results"].items():
        print(f"{name:22s} {row['clips_per_s_per_core']:12.1f} {row['mb_per_s_per_core']:10.1f} "
              f"{row['cores_for_gpu']:15.1f} {row['fraction_of_raw_memmap']:10.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
