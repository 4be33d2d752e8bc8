"""How the embedding store scales with tracks: open time, memory, window reads, verify, files.

Builds synthetic stores of ``--tracks`` (default 10k, 100k, 1M) locally through the store's own
writer (``PartWriter.add``: checksums, commits, index segments; no teacher, no audio): 8-dim
float16 frames at a 0.5 s hop, 4 to 11 frames per track (2 to 5.5 s), parts of 256 tracks
(extraction's default ``part_tracks``), ids like ``7/TR0000000000123457`` (20 bytes) and a sha256
per track. Small frames keep a million tracks within minutes and a few hundred MB of disk; the
index, which is what this measures, is the same size whatever the frames.

Each store is then measured in fresh processes (page cache warm, it was just written):

- ``open``: ``open_store`` + ``len`` + one ``in`` (seconds), and the memory it took: the peak
  of Python allocations (``tracemalloc``, numpy included) and the RSS high-water mark minus
  the RSS before opening;
- ``lookup``: median of 10,000 ``id in store`` (half of them absent), microseconds;
- ``window``: median and p95 of 200 ``read_window`` of 2 s at a random time of a random track
  (each mostly the first read of its part, so the part's array is opened too), milliseconds,
  and the median of the same 200 reads again once their parts are open;
- ``verify``: ``store.verify(checksums=False)`` (index against data: every part's shape, every
  track's rows) and, up to ``--checksum-max`` tracks, with checksums (reads every frame);
- ``files``/``bytes``: what the store holds (what ``dvc push`` moves), and the index's share.

``--s3`` adds the same rows for stores in object storage, on a ``moto`` S3 server this benchmark
starts on loopback (as the tests do): up to ``--s3-writer-max`` tracks (default 100k) the store is
written straight into the bucket by the object-store writer (``ObjectPartWriter``: a claim, the
part's objects and one commit object per part, as ``pipeline extract`` with an ``s3://`` store
does), opened once as extraction leaves it (``open_commits_s``: one GET per commit object), then
compacted (``pipeline store compact``, ``compact_s``) and measured as above; larger stores are built
locally and uploaded (``build_s`` includes the upload), as ``dvc push`` or ``aws s3 sync`` would.
``files`` are then objects. s3fs and botocore are imported before the memory baseline is taken.

``--old REV`` runs the same on stores built and read by the code at git revision REV (index
format 1, one JSON object per track), extracted with ``git archive`` into a temporary folder,
for ``--old-tracks`` (default 10k, 100k): the before/after.

Run: ``python benchmarks/bench_store_scale.py [--tracks 10000 100000 1000000] [--old cc501a5] [--s3 | --s3-only]``
(writes ``benchmarks/results/store_scale.json`` and prints a Markdown table).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DIM, HOP, PART_TRACKS, WINDOW = 8, 0.5, 256, 2.0
S3_LABEL = "2 on S3 (moto)"


def _spec():  # noqa: ANN202 - a StoreSpec of whichever code version is imported
    from pipeline.stores import StoreSpec

    return StoreSpec(kind="embedding", teacher="synthetic", config={"bench": "store_scale"}, weights_sha256="0" * 64,
                     sample_rate=16000, hop_seconds=HOP, window_seconds=1.0, frame0_center_seconds=0.5,
                     clip_level=False, dim=DIM, dtype="float16")


def track_id(i: int) -> str:
    """``7/TR0000000000123457``: a folder digit and an MSD-like 18-character id (20 bytes)."""
    return f"{i % 10}/TR{i:016d}"


def build(path: Path | str, n_tracks: int) -> dict:
    """Write ``n_tracks`` synthetic tracks through the store writer (a local folder or an ``s3://``
    URL: the object-store writer); returns seconds taken."""
    import hashlib

    from pipeline.stores import create_store

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    store = create_store(str(path) if _is_url(path) else path, _spec(), overwrite=True)
    block = rng.standard_normal((1 << 16, DIM)).astype(np.float16)
    with store.writer(part_tracks=PART_TRACKS) as writer:
        for i in range(n_tracks):
            n = 4 + i % 8
            at = (i * 7) % (len(block) - n)
            sha = hashlib.sha256(i.to_bytes(8, "little")).hexdigest()
            writer.add(track_id(i), block[at:at + n], audio_sha256=sha, duration=n * HOP)
    return {"build_s": time.perf_counter() - start}


def _is_url(path: Path | str) -> bool:
    return "://" in str(path)


def build_uploaded(url: str, n_tracks: int) -> dict:
    """Build locally (:func:`build`), then upload the folder to ``url``; seconds of both."""
    import s3fs

    local = Path(tempfile.mkdtemp(prefix="store-scale-up-")) / "store"
    out = build(local, n_tracks)
    start = time.perf_counter()
    s3fs.S3FileSystem(skip_instance_cache=True).put(str(local), url.removeprefix("s3://"), recursive=True)
    shutil.rmtree(local.parent, ignore_errors=True)
    return {"build_s": out["build_s"] + time.perf_counter() - start, "upload_s": time.perf_counter() - start}


def compact(url: str) -> dict:
    """``pipeline store compact`` on ``url``: seconds, and the commit objects folded."""
    from pipeline.stores.compact import compact_store

    start = time.perf_counter()
    result = compact_store(url)
    return {"compact_s": time.perf_counter() - start, "commit_objects": result.commits_folded}


def _rss() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in bytes."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) << 10, int(fields["VmHWM"].split()[0]) << 10


def _reset_hwm() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def measure_open(path: Path) -> dict:
    """Open time and memory (RSS high-water delta, then tracemalloc peak in a second open)."""
    import gc
    import tracemalloc

    from pipeline.stores import open_store

    if _is_url(path):
        import s3fs  # the client library is not the index: load it before the baseline

        s3fs.S3FileSystem(skip_instance_cache=True).ls(str(path).removeprefix("s3://"))
    gc.collect()
    _reset_hwm()
    rss0, _ = _rss()
    start = time.perf_counter()
    store = open_store(path)
    n = len(store)
    present = track_id(0) in store
    seconds = time.perf_counter() - start
    _, hwm = _rss()
    del store
    gc.collect()
    tracemalloc.start()
    store = open_store(path)
    len(store)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"tracks": n, "found": present, "open_s": seconds, "open_rss_delta_mb": (hwm - rss0) / 1e6,
            "open_tracemalloc_peak_mb": peak / 1e6}


def measure_reads(path: Path, n_tracks: int, reads: int = 200, lookups: int = 10_000) -> dict:
    """Median lookup (us) and window-read latencies (ms) on a freshly opened store."""
    from pipeline.stores import open_store

    store = open_store(path)
    rng = np.random.default_rng(1)
    ids = [track_id(int(i)) if k % 2 else f"absent-{k}" for k, i in enumerate(rng.integers(0, n_tracks, lookups))]
    times = []
    for tid in ids:
        start = time.perf_counter()
        _ = tid in store
        times.append(time.perf_counter() - start)
    plan = []
    for i in rng.integers(0, n_tracks, reads):
        n = 4 + int(i) % 8
        t0 = float(rng.uniform(0.0, max(n * HOP - WINDOW, 0.0)))
        plan.append((track_id(int(i)), t0))
    passes = []
    for _pass in range(2):  # first: each read opens its part's array; second: parts already open
        windows = []
        for tid, t0 in plan:
            start = time.perf_counter()
            frames, _times = store.read_window(tid, t0, t0 + WINDOW)
            windows.append(time.perf_counter() - start)
            assert len(frames) >= 1
        passes.append(windows)
    return {"lookup_median_us": statistics.median(times) * 1e6,
            "window_median_ms": statistics.median(passes[0]) * 1e3,
            "window_p95_ms": float(np.percentile(passes[0], 95)) * 1e3,
            "window_open_parts_median_ms": statistics.median(passes[1]) * 1e3}


def measure_verify(path: Path, checksums: bool) -> dict:
    from pipeline.stores import open_store

    store = open_store(path)
    start = time.perf_counter()
    report = store.verify(checksums=checksums)
    key = "verify_checksums_s" if checksums else "verify_index_s"
    assert report.ok, report.problems[:3]
    return {key: time.perf_counter() - start}


def _sizes(path: Path | str) -> dict[str, int]:
    """Relative path -> bytes of every file (object) of the store."""
    if _is_url(path):
        import s3fs

        root = str(path).removeprefix("s3://").rstrip("/")
        found = s3fs.S3FileSystem(skip_instance_cache=True).find(root, detail=True)
        return {key[len(root) + 1:]: int(info["size"]) for key, info in found.items()}
    out = {}
    for folder, _dirs, names in os.walk(path):
        for name in names:
            file = Path(folder) / name
            out[file.relative_to(path).as_posix()] = file.stat().st_size
    return out


def measure_files(path: Path | str) -> dict:
    """Files (objects) and bytes of the store, and of its index (parts.json, index/, commits/)."""
    sizes = _sizes(path)
    index = {rel: n for rel, n in sizes.items()
             if rel == "parts.json" or rel.startswith(("index/", "commits/"))
             or (rel.startswith("parts/") and rel.count("/") == 1 and rel.endswith(".json"))}  # format 1
    return {"files": len(sizes), "bytes": sum(sizes.values()), "index_files": len(index),
            "index_bytes": sum(index.values())}


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints its JSON."""
    path: Path | str = args.path if _is_url(args.path) else Path(args.path)
    if args.child == "build":
        out = build(path, args.n)
    elif args.child == "upload":
        out = build_uploaded(str(path), args.n)
    elif args.child == "compact":
        out = compact(str(path))
    elif args.child == "open-commits":
        out = {f"{k}_commits": v for k, v in measure_open(path).items() if k.startswith("open")}
    elif args.child == "open":
        out = measure_open(path)
    elif args.child == "reads":
        out = measure_reads(path, args.n)
    elif args.child == "verify":
        out = measure_verify(path, checksums=False)
    elif args.child == "verify-checksums":
        out = measure_verify(path, checksums=True)
    else:
        out = measure_files(path)
    print(json.dumps(out))


def _run(step: str, path: Path, n: int, pythonpath: Path, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    cmd = [sys.executable, __file__, "--child", step, "--path", str(path), "--n", str(n)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{step} on {path} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_store(root: Path | str, label: str, n: int, pythonpath: Path, args: argparse.Namespace) -> dict:
    """Build one store with the code at ``pythonpath`` and measure it; removes it unless ``--keep``."""
    path: Path | str = f"{root}/{label}-{n}" if _is_url(root) else Path(root) / f"{label}-{n}"
    row: dict = {"format": label, "tracks": n}
    steps = ["build", "files", "open", "reads", "verify"] + (["verify-checksums"] if n <= args.checksum_max else [])
    if _is_url(path):  # the object writer's commits, opened as they are, then compacted; or an upload
        steps[:1] = ["build", "open-commits", "compact"] if n <= args.s3_writer_max else ["upload"]
    for step in steps:
        started = time.perf_counter()
        row.update(_run(step, path, n, pythonpath, args.timeout))
        print(f"  {label} {n}: {step} done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    if not args.keep and not _is_url(path):
        shutil.rmtree(path, ignore_errors=True)
    return row


def _old_source(rev: str, into: Path) -> Path:
    """The ``pipeline`` package at git revision ``rev``, extracted under ``into``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "pipeline"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def table(rows: list[dict]) -> str:
    """The Markdown table of ``rows``."""
    lines = ["| index | tracks | open | open memory (RSS / traced) | `in` | 2 s window: median (p95); parts open | "
             "verify, index | verify, checksums | files (index files) | index size |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        checks = f"{r['verify_checksums_s']:.1f} s" if "verify_checksums_s" in r else "-"
        lines.append(
            f"| {r['format']} | {r['tracks']:,} | {r['open_s']:.3f} s | {r['open_rss_delta_mb']:.0f} / "
            f"{r['open_tracemalloc_peak_mb']:.0f} MB | {r['lookup_median_us']:.0f} us | "
            f"{r['window_median_ms']:.2f} ({r['window_p95_ms']:.2f}); {r['window_open_parts_median_ms']:.2f} ms | "
            f"{r['verify_index_s']:.1f} s | {checks} | "
            f"{r['files']:,} ({r['index_files']:,}) | {r['index_bytes'] / 1e6:.1f} MB |"
        )
    return "\n".join(lines)


def table_s3(rows: list[dict]) -> str:
    """The Markdown table of the object-storage rows."""
    lines = ["| tracks | built | open as extracted (commit objects) | compact | open | open memory (RSS / traced) | "
             "2 s window: median (p95); parts open | verify, index | objects (index objects) | index size |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        writer = "commit" in " ".join(r)
        before = f"{r['open_s_commits']:.2f} s ({r['commit_objects']:,})" if writer else "-"
        fold = f"{r['compact_s']:.1f} s" if writer else "-"
        lines.append(
            f"| {r['tracks']:,} | {'object writer' if writer else 'uploaded'} | {before} | {fold} | "
            f"{r['open_s']:.3f} s | "
            f"{r['open_rss_delta_mb']:.0f} / {r['open_tracemalloc_peak_mb']:.0f} MB | {r['window_median_ms']:.2f} "
            f"({r['window_p95_ms']:.2f}); {r['window_open_parts_median_ms']:.2f} ms | {r['verify_index_s']:.1f} s | "
            f"{r['files']:,} ({r['index_files']:,}) | {r['index_bytes'] / 1e6:.1f} MB |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--old", default=None, help="git revision of the format-1 code to compare (e.g. cc501a5)")
    parser.add_argument("--old-tracks", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--checksum-max", type=int, default=100_000, help="verify with checksums up to this size")
    parser.add_argument("--root", default=None, help="where to build the stores (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per step")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "store_scale.json"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the other rows of --out: replace only those of the same index format and size")
    parser.add_argument("--s3", action="store_true",
                        help="also measure the stores in object storage (moto on loopback)")
    parser.add_argument("--s3-only", action="store_true", help="only the object-storage rows")
    parser.add_argument("--s3-writer-max", type=int, default=100_000,
                        help="largest store written by the object writer; larger ones are built locally and uploaded")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--path", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    root = Path(args.root or tempfile.mkdtemp(prefix="store-scale-"))
    root.mkdir(parents=True, exist_ok=True)
    result = {"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "setup": {"dim": DIM, "dtype": "float16", "hop_s": HOP, "frames_per_track": "4-11",
                        "part_tracks": PART_TRACKS, "window_s": WINDOW, "id_bytes": 20},
              "rows": []}
    if args.merge and Path(args.out).exists():
        earlier = json.loads(Path(args.out).read_text())
        result["earlier_runs"] = earlier.get("earlier_runs", []) + [
            {k: earlier[k] for k in ("command", "load_average_before", "load_average_after") if k in earlier}]
        result["rows"] = earlier["rows"]
    plans = [] if args.s3_only else [("2 (npz segments)", n, REPO) for n in args.tracks]
    if args.s3 or args.s3_only:
        plans += [(S3_LABEL, n, REPO) for n in args.tracks]
    with _s3_server(args.s3 or args.s3_only):
        _run_plans(plans, root, result, args)
    local_rows = [r for r in result["rows"] if r["format"] != S3_LABEL]
    if local_rows:
        print(table(local_rows))
    s3_rows = [r for r in result["rows"] if r["format"] == S3_LABEL]
    if s3_rows:
        print(table_s3(s3_rows))


def _s3_server(wanted: bool) -> contextlib.AbstractContextManager:
    """The loopback moto server with a ``bench`` bucket when ``wanted`` (else nothing)."""
    if not wanted:
        return contextlib.nullcontext()
    from bench_s3_loader import MotoServer

    server = MotoServer()

    @contextlib.contextmanager
    def running() -> Iterator[None]:
        with server:
            import s3fs

            s3fs.S3FileSystem(skip_instance_cache=True).mkdir("bench")
            yield
    return running()


def _run_plans(plans: list[tuple[str, int, Path]], root: Path, result: dict, args: argparse.Namespace) -> None:
    old_src = None
    if args.old:
        old_src = _old_source(args.old, Path(tempfile.mkdtemp(prefix="store-scale-old-")))
        plans = [(f"1 (JSON, {args.old})", n, old_src) for n in args.old_tracks] + plans
    for label, n, src in plans:
        result["load_average_before"] = os.getloadavg()
        where: Path | str = "s3://bench" if label == S3_LABEL else root
        row = measure_store(where, label.split()[0], n, src, args) | {"format": label}
        result["rows"] = [r for r in result["rows"] if (r["format"], r["tracks"]) != (label, n)] + [row]
        result["rows"].sort(key=lambda r: (r["format"], r["tracks"]))
        result["load_average_after"] = os.getloadavg()
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    if old_src is not None:
        shutil.rmtree(old_src, ignore_errors=True)
    if not args.keep and not args.root:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
