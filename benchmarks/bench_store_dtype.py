"""Store dtype and codec: size on disk, read speed and reconstruction error of each stored form.

The frames are a real musicnn store (default: the demo's ``/work/study/stores/musicnn``, read
only), converted with :func:`pipeline.stores.convert_store` into each form:

- ``float32``: the reference (exactly the source's float16 values when the source is float16);
- ``float16``: the default form;
- ``float16+zstd``: the same with zarr's zstd codec (level 3) on every chunk;
- ``uint8``: the 8-bit form (per-part, per-dimension scale and shift; :mod:`pipeline.stores.quant`);
- ``uint8+zstd``: the 8-bit form with the zstd codec.

For each form: bytes on disk per frame (part data alone, and with the index), random window
reads per second (``store.read`` of ``--window`` frames at a random track and start, the
training loader's access), full-scan MB/s (every track read whole with ``store.read``, in float32
MB delivered: per-call cost dominates short tracks) and part-scan MB/s (each part's array read
whole and dequantised: the bulk rate of ``convert`` and the memmap hot copy),
and the error of the frames read against the float32 form (max abs, max abs / max |x|, and
relative RMS ||x - y|| / ||x||). Rates are the median of ``--repeats`` passes after a warm-up
(page cache warm), per CPU second of this process and per wall second.

Run: ``nice -n 10 python benchmarks/bench_store_dtype.py [--source /work/study/stores/musicnn]``
(writes ``benchmarks/results/store_dtype.json``; the copies go to ``benchmarks/work/store_dtype``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: form -> (dtype, compression)
FORMS: dict[str, tuple[str, str]] = {
    "float32": ("float32", "none"),
    "float16": ("float16", "none"),
    "float16+zstd": ("float16", "zstd"),
    "uint8": ("uint8", "none"),
    "uint8+zstd": ("uint8", "zstd"),
}


def _rate(fn: Callable[[], int], repeats: int) -> dict[str, float]:
    """Median units per CPU second and per wall second of ``fn`` (returns its unit count), after a warm-up."""
    fn()
    walls, cpus, units = [], [], 0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        units = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"per_cpu_s": units / max(statistics.median(cpus), 1e-9),
            "per_wall_s": units / max(statistics.median(walls), 1e-9)}


def _part_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in (path / "parts").rglob("*") if f.is_file())


def measure(path: Path, reference: dict[str, np.ndarray], args: argparse.Namespace) -> dict[str, Any]:
    """Size, speeds and error of the store at ``path`` against the float32 ``reference`` frames."""
    from pipeline.stores import open_store
    from pipeline.stores.quant import dequantise

    store = open_store(path)
    ids = store.track_ids()
    frames = int(sum(store.entry(t).n_frames for t in ids))
    rng = np.random.default_rng(0)
    picks = [ids[i] for i in rng.integers(0, len(ids), args.windows)]
    starts = [int(rng.integers(0, max(1, store.entry(t).n_frames - args.window + 1))) for t in picks]

    def windows() -> int:
        for track, start in zip(picks, starts):
            store.read(track, start, start + args.window)
        return len(picks)

    def scan() -> int:
        return sum(store.read(t).astype(np.float32, copy=False).nbytes for t in ids)

    def bulk() -> int:
        done = 0
        for part in store.parts():
            rows = store.part_reader(part.name).read(0, part.n_frames)
            if store.spec.quantised:
                rows = dequantise(rows, *store.quant_params(part.name))
            done += rows.astype(np.float32, copy=False).nbytes
        return done

    scan_rate, bulk_rate = _rate(scan, args.repeats), _rate(bulk, args.repeats)
    x = np.concatenate([reference[t] for t in ids]).astype(np.float64)
    y = np.concatenate([store.read(t) for t in ids]).astype(np.float64)
    _files, total = store.disk_usage()
    return {
        "dtype": store.spec.dtype, "compression": store.layout.compression, "chunk_frames": store.layout.chunk_frames,
        "tracks": len(ids), "frames": frames, "dim": store.spec.dim,
        "part_bytes": _part_bytes(path), "bytes_on_disk": total,
        "bytes_per_frame": _part_bytes(path) / frames, "bytes_per_frame_with_index": total / frames,
        "window_reads_per_s": _rate(windows, args.repeats),
        "scan_mb_per_s": {k: v / 1e6 for k, v in scan_rate.items()},
        "part_scan_mb_per_s": {k: v / 1e6 for k, v in bulk_rate.items()},
        "max_abs_error": float(np.abs(x - y).max()),
        "max_abs_error_over_max_abs": float(np.abs(x - y).max() / np.abs(x).max()),
        "relative_rms_error": float(np.linalg.norm(x - y) / np.linalg.norm(x)),
        "verify_clean": store.verify().ok,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pipeline.stores import convert_store, open_store

    source = open_store(args.source)
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    paths = {}
    for form, (dtype, compression) in FORMS.items():
        paths[form] = work / form
        convert_store(source, paths[form], backend="zarr", dtype=dtype, compression=compression)
    reference_store = open_store(paths["float32"])
    reference = {t: reference_store.read(t) for t in reference_store.track_ids()}
    results = {form: measure(path, reference, args) for form, path in paths.items()}
    base = results["float16"]
    for row in results.values():
        row["size_vs_float16"] = row["bytes_per_frame"] / base["bytes_per_frame"]
        row["window_reads_vs_float16"] = (row["window_reads_per_s"]["per_cpu_s"]
                                          / base["window_reads_per_s"]["per_cpu_s"])
    return {
        "benchmark": "store_dtype", "source": str(source.path), "source_dtype": source.spec.dtype,
        "teacher": source.spec.teacher, "window_frames": args.window, "windows": args.windows,
        "repeats": args.repeats,
        "notes": (f"every form is converted from the {source.spec.dtype} source: float32 holds exactly its values "
                  "(the reference), so the float16 rows show 0 error by construction; sizes and speeds are "
                  "those of the real frames"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
        "results": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default="/work/study/stores/musicnn", help="store to convert (read only)")
    parser.add_argument("--work", default="benchmarks/work/store_dtype", help="where the converted copies go")
    parser.add_argument("--window", type=int, default=3, help="frames per random window read")
    parser.add_argument("--windows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/store_dtype.json")
    args = parser.parse_args()
    report = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'form':14s} {'B/frame':>8s} {'vs f16':>7s} {'windows/s':>10s} {'scan MB/s':>10s} "
          f"{'parts MB/s':>10s} {'max abs err':>12s} {'rel RMS':>9s}")
    for form, row in report["results"].items():
        print(f"{form:14s} {row['bytes_per_frame']:8.1f} {row['size_vs_float16']:7.2f} "
              f"{row['window_reads_per_s']['per_cpu_s']:10.0f} {row['scan_mb_per_s']['per_cpu_s']:10.1f} "
              f"{row['part_scan_mb_per_s']['per_cpu_s']:10.1f} "
              f"{row['max_abs_error']:12.3g} {row['relative_rms_error']:9.2e}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
