"""Stage-two loader from object storage: clips/s reading a store locally and from ``s3://``, side by side.

A real store (default: the demo's musicnn store with its int16 audio cache, read only) is
uploaded to a ``moto`` S3 server that this benchmark starts on loopback (as the tests do), and
the training loader (:class:`pipeline.data.ClipDataset` through a ``DataLoader``, batch 16,
random crops, z-scored frames, as ``pipeline distill`` builds it) reads the train clips:

- ``store``: ``distill.loader: store``, every item read from the store (zarr chunks by byte range
  over HTTP for the S3 copy);
- ``memmap``: ``distill.loader: memmap`` (the default): :func:`pipeline.data.hot_copy` first copies
  the store into a local raw memmap (once; its seconds are recorded as ``copy_s``), then every
  item is a slice of it. For ``s3://`` this is the prefetch: the whole store comes over in bulk.

Rates are clips per wall second (object storage is I/O bound), the median of ``--repeats``
epochs after a warm-up epoch; ``s3_over_local`` is the ratio of the same loader's rates.

``--train-epochs N`` (default 2; 0 skips it) then times whole trainings side by side:
``pipeline distill`` (``stages.distill.run``, EAsT-Final, the default loader, 1 torch thread) on
the project at ``--project`` with ``extract.store_root`` the local folder and then the bucket,
alternately, ``--train-repeats`` times each. A training's wall time includes everything it does
(opening the store, the memmap copy, made cold in every run, the epochs, validation); its rate is train
clips x epochs / wall seconds, and ``train.s3_over_local`` the ratio of the median rates.

Run: ``nice -n 10 python benchmarks/bench_s3_loader.py [--store /work/study/stores/musicnn]``
(writes ``benchmarks/results/s3_loader.json``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
          "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": "/nonexistent/aws-config",
          "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials"}


class MotoServer:
    """``python -m moto.server`` on a free loopback port; its endpoint goes into ``os.environ``."""

    def __enter__(self) -> "MotoServer":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ready = threading.Event()

        def watch() -> None:  # drain stderr (one line per request) so the server never blocks
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                if f"Running on {self.endpoint}" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=watch, daemon=True).start()
        ready.wait()
        if self.proc.poll() is not None:
            raise SystemExit("the moto S3 server did not start (pip install 'moto[server]' s3fs)")
        os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL": self.endpoint})
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _upload(local: Path, bucket: str) -> str:
    """Copy the store folder (with its audio cache) to ``s3://<bucket>/<name>``; returns the URL."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(bucket)
    fs.put(str(local), f"{bucket}/{local.name}", recursive=True)
    return f"s3://{bucket}/{local.name}"


def _epochs(loader: Any, repeats: int) -> dict[str, float]:
    """Median clips per wall second (and per CPU second) over ``repeats`` epochs after one warm-up epoch."""
    def epoch() -> int:
        return sum(len(batch) for batch in loader)

    epoch()
    walls, cpus, count = [], [], 0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        count = epoch()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"clips": count, "repeats": repeats, "wall_s": statistics.median(walls),
            "clips_per_s": count / statistics.median(walls), "clips_per_cpu_s": count / statistics.median(cpus)}


def _loader(clips: list, store: str, cache: str, args: argparse.Namespace, norm: Any) -> Any:
    import torch
    from torch.utils.data import DataLoader

    from pipeline.audio_source import AudioSource
    from pipeline.data import ClipDataset

    dataset = ClipDataset(clips, AudioSource(args.audio_root, args.sample_rate, cache), clip_seconds=args.seconds,
                          teacher_store=store, teacher_norm=norm, random_crop=True, seed=0)
    return DataLoader(dataset, batch_size=16, shuffle=True, num_workers=0, collate_fn=dataset.collate,
                      generator=torch.Generator().manual_seed(0))


def _sources(local: str, url: str, cache_root: Path) -> Iterator[tuple[str, str, str, str, float]]:
    """(loader, where, teacher store, audio cache, copy seconds) of every measured path."""
    from pipeline.data import hot_copy

    for where, base in (("local", local), ("s3", url)):
        yield "store", where, base, f"{base}/audio", 0.0
    for where, base in (("local", local), ("s3", url)):
        start = time.perf_counter()
        teacher, audio = hot_copy(base, cache_root / where), hot_copy(f"{base}/audio", cache_root / where)
        yield "memmap", where, str(teacher), str(audio), time.perf_counter() - start


def _train_rates(args: argparse.Namespace, local_root: str, s3_root: str) -> dict[str, Any]:
    """Whole ``distill`` runs reading the teacher store locally and from the bucket, alternately."""
    from pipeline.config import load_params
    from stages import distill

    project = Path(args.project).resolve()
    here = Path.cwd()
    rows: dict[str, list[dict[str, float]]] = {"local": [], "s3": []}
    os.chdir(project)
    try:
        for _ in range(args.train_repeats):
            for where, root in (("local", local_root), ("s3", s3_root)):
                params = load_params("params.yaml", {"extract.store_root": root, "distill.variant": "east-final",
                                                     "distill.epochs": args.train_epochs, "distill.threads": 1,
                                                     "distill.seed": 0})
                with tempfile.TemporaryDirectory(dir=args.workdir) as run_dir:
                    os.environ["EAST_CACHE_DIR"] = f"{run_dir}/cache"  # a cold memmap copy in every run
                    start = time.perf_counter()
                    out = distill.run(params, run_dir=f"{run_dir}/run", progress=False)
                    wall = time.perf_counter() - start
                clips = int(out.get("n_labeled") or 0) * args.train_epochs
                rows[where].append({"wall_s": wall, "clips_per_s": clips / wall, "valid_map": out["valid_map"]})
                print(f"train   {where:6s} {clips / wall:8.1f} clips/s ({wall:.1f} s)", flush=True)
    finally:
        os.chdir(here)
    medians = {w: statistics.median(r["clips_per_s"] for r in rows[w]) for w in rows}
    return {"epochs": args.train_epochs, "repeats": args.train_repeats, "variant": "east-final", "runs": rows,
            "local_clips_per_s": medians["local"], "s3_clips_per_s": medians["s3"],
            "s3_over_local": medians["s3"] / medians["local"]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from pipeline.data import frame_statistics
    from pipeline.manifests import load_split

    torch.set_num_threads(1)
    clips = [c for c in load_split(Path(args.manifests), "train")][: args.clips]
    norm = frame_statistics(args.store, clips[:32])
    results: dict[str, dict[str, Any]] = {}
    with MotoServer(), tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        start = time.perf_counter()
        url = _upload(Path(args.store), "east-bench")
        upload_s = time.perf_counter() - start
        for loader, where, teacher, audio, copy_s in _sources(str(args.store), url, Path(tmp)):
            row = _epochs(_loader(clips, teacher, audio, args, norm), args.repeats)
            results.setdefault(loader, {})[where] = {**row, "copy_s": copy_s}
            print(f"{loader:7s} {where:6s} {row['clips_per_s']:8.1f} clips/s (copy {copy_s:.1f} s)", flush=True)
        train = _train_rates(args, str(Path(args.store).parent), url.rsplit("/", 1)[0]) if args.train_epochs else None
    for rows in results.values():
        rows["s3_over_local"] = rows["s3"]["clips_per_s"] / rows["local"]["clips_per_s"]
    if train is not None:
        results["train"] = train
    return {"benchmark": "s3_loader", "store": str(args.store), "endpoint": "moto on loopback",
            "clips": len(clips), "clip_seconds": args.seconds, "batch_size": 16, "upload_s": upload_s,
            "target": "s3 >= 0.9 x local (same loader)",
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": os.getloadavg()},
            "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="/work/study/stores/musicnn", help="local store with its audio cache")
    parser.add_argument("--manifests", default="/work/study/data_manifests/demo")
    parser.add_argument("--audio-root", default="/work/study/data/demo")
    parser.add_argument("--sample-rate", type=int, default=16000, help="the audio cache's rate")
    parser.add_argument("--seconds", type=float, default=5.0, help="crop length of an item")
    parser.add_argument("--clips", type=int, default=300, help="train clips per epoch")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--workdir", default=None, help="where the memmap copies go (temporary)")
    parser.add_argument("--project", default="/work/study", help="the project whose params.yaml the trainings use")
    parser.add_argument("--train-epochs", type=int, default=2, help="epochs of each timed training (0: none)")
    parser.add_argument("--train-repeats", type=int, default=2, help="trainings per side, alternating")
    parser.add_argument("--out", default="benchmarks/results/s3_loader.json")
    args = parser.parse_args()
    report = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for loader, rows in report["results"].items():
        if loader == "train":
            print(f"training: local {rows['local_clips_per_s']:.1f}, s3 {rows['s3_clips_per_s']:.1f} clips/s: "
                  f"s3 / local = {rows['s3_over_local']:.2f}")
            continue
        print(f"loader {loader}: local {rows['local']['clips_per_s']:.1f}, s3 {rows['s3']['clips_per_s']:.1f} "
              f"clips/s: s3 / local = {rows['s3_over_local']:.2f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
