"""Does the 8-bit store cost test mAP? EAsT-KD students trained from a store root, judged against float16.

Run in the folder of a finished demo (``params.yaml``, ``data/``, ``data_manifests/demo``,
``stores/musicnn`` with its audio cache); it writes ``benchmarks/work/east_study/`` (manifest
subset, probes and runs, apart from ``bench_east_study.py``'s) and
``benchmarks/results/store_dtype_map.json`` there. Make the
8-bit store root first (the teacher store, then its audio cache inside it, unchanged)::

    pipeline store convert stores/musicnn --backend zarr --dtype uint8 --out stores-uint8/musicnn
    pipeline store convert stores/musicnn/audio --backend zarr --out stores-uint8/musicnn/audio

Then, for each store root (label), EAsT-KD (``kd-v`` of ``bench_east_study.py``: the V-statistic
per frame) is trained on the first ``--size`` labelled train clips for ``--epochs`` epochs with
every seed (``distill.threads 1``), its probe fitted on the same root's frames, and scored on
the test split. Each finished run is appended to the JSON at once (finished runs are skipped
when the command is run again), and every label is judged, paired by seed, against the
``--reference`` label with :mod:`pipeline.judging`'s rule::

    nice -n 15 python benchmarks/bench_store_dtype_map.py --store-root stores --label float16 --jobs 1
    nice -n 15 python benchmarks/bench_store_dtype_map.py --store-root stores-uint8 --label uint8 --jobs 1

(``--reference-rows benchmarks/results/east_study.json`` takes the float16 rows from that study
instead of training them again.)
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_east_study as study  # noqa: E402

OUT = Path("benchmarks/results/store_dtype_map.json")
CONFIG = "kd-v"


def _overrides(label: str, store_root: str, size: int, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    out = study._overrides(CONFIG, size, seed, args)
    out.update({"extract.store_root": store_root, "probe.runs_root": str(study.WORK / f"probes-{size}-{label}")})
    return out


def _job(job: tuple[str, int, int, dict[str, Any]]) -> dict[str, Any]:
    """Train and test one student; returns its row."""
    label, size, seed, overrides = job
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from pipeline.allocator import tune_allocator
    from pipeline.config import load_params
    from pipeline.logs import configure
    from stages import distill, evaluate

    configure(0)
    tune_allocator()
    params = load_params("params.yaml", overrides)
    run_dir = study.WORK / f"runs-{size}-{label}" / f"{CONFIG}-seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    trained = distill.run(params, run_dir=str(run_dir), progress=False)
    tested = evaluate.run(params, run_dir=str(run_dir))
    return {"label": label, "size": size, "config": CONFIG, "seed": seed, "test_map": tested["map"],
            "test_roc_auc": tested["roc_auc"], "valid_map": trained["valid_map"],
            "seconds": time.perf_counter() - start, "overrides": overrides}


def _fit_probe(label: str, store_root: str, size: int) -> float:
    from pipeline.config import load_params
    from pipeline.runs import probe_dir
    from stages import probe

    params = load_params("params.yaml", {"data.manifests": str(study.WORK / f"manifests-{size}"),
                                         "extract.store_root": store_root,
                                         "probe.runs_root": str(study.WORK / f"probes-{size}-{label}")})
    metrics = probe_dir(params, "musicnn") / "metrics.json"
    if not metrics.is_file():
        probe.run(params, teacher="musicnn")
    return float(json.loads(metrics.read_text())["test_map"])


def _borrow(result: dict[str, Any], path: Path, label: str, size: int) -> None:
    """Add the ``kd-v`` rows of ``size`` from ``bench_east_study.py``'s JSON at ``path`` as ``label``'s rows."""
    have = {(r["label"], r["seed"]) for r in result["runs"]}
    for row in json.loads(path.read_text())["runs"]:
        if row["config"] == CONFIG and row["size"] == size and (label, row["seed"]) not in have:
            result["runs"].append({**row, "label": label, "from": str(path)})


def judged(result: dict[str, Any], reference: str) -> list[dict[str, Any]]:
    """One row per label: test mAP mean ± std and, against ``reference``, paired differences and verdict."""
    from pipeline.judging import paired_differences, summarize, verdict

    base = {r["seed"]: r["test_map"] for r in result["runs"] if r["label"] == reference}
    rows = []
    for label in sorted({r["label"] for r in result["runs"]}, key=lambda x: (x != reference, x)):
        mine = {r["seed"]: r["test_map"] for r in result["runs"] if r["label"] == label}
        stats, paired = summarize(list(mine.values())), paired_differences(mine, base)
        rows.append({"label": label, "n": stats.n, "map_mean": stats.mean, "map_std": stats.std,
                     "differences": list(paired.differences), "diff_mean": paired.mean, "diff_se": paired.se,
                     "verdict": "reference" if label == reference else verdict(paired),
                     "probe_test_map": result["probes"].get(label)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store-root", required=True, help="extract.store_root holding musicnn (and its audio)")
    parser.add_argument("--label", required=True, help="name of this store root's rows (e.g. float16, uint8)")
    parser.add_argument("--reference", default="float16", help="label the others are judged against")
    parser.add_argument("--size", type=int, default=600, help="labelled train clips")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=1, help="parallel training processes (1 torch thread each)")
    parser.add_argument("--manifests", default="data_manifests/demo")
    parser.add_argument("--reference-rows", default=None,
                        help="an east_study.json whose kd-v rows of --size become the --reference label's rows")
    args = parser.parse_args()
    args.unlabeled_per_epoch = 0
    result = json.loads(OUT.read_text()) if OUT.is_file() else {"runs": [], "probes": {}}
    if args.reference_rows:
        _borrow(result, Path(args.reference_rows), args.reference, args.size)
    study._subset(Path(args.manifests), args.size, None)
    result["probes"][args.label] = _fit_probe(args.label, args.store_root, args.size)
    done = {(r["label"], r["size"], r["seed"]) for r in result["runs"]}
    jobs = [(args.label, args.size, s, _overrides(args.label, args.store_root, args.size, s, args))
            for s in args.seeds if (args.label, args.size, s) not in done]
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in as_completed([pool.submit(_job, job) for job in jobs]):
            run = future.result()
            result["runs"].append(run)
            result["table"] = judged(result, args.reference)
            OUT.parent.mkdir(parents=True, exist_ok=True)
            OUT.write_text(json.dumps(result, indent=2) + "\n")
            print(f"{run['label']} seed {run['seed']}: test mAP {run['test_map']:.4f} ({run['seconds']:.0f} s)",
                  flush=True)
    result["table"] = judged(result, args.reference)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    for row in result["table"]:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
