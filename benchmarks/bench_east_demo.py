"""Does the teacher help? Baseline vs EAsT-Final vs EAsT-KD on the demo set, several seeds and train sizes.

Needs a finished demo pipeline in the current folder (``make demo`` / ``dvc repro``: the
manifests, the rendered audio and the musicnn store with its audio cache). For each training-set
size (the first N clips of the train split) it fits the teacher's probe on those N clips, then
trains every variant with every seed, evaluates on the full test split, and writes
``benchmarks/results/east_demo.json`` with per-run test mAP and mean/std per (size, variant).

Usage: python benchmarks/bench_east_demo.py [--sizes 100 300 600] [--seeds 0 1 2] [--jobs 2]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORK = Path("benchmarks/work")


def _subset(params, size: int) -> Path:  # noqa: ANN001
    from pipeline.manifests import load_split, write_manifest

    src = Path(params.data.manifests)
    dst = WORK / f"manifests-{size}"
    dst.mkdir(parents=True, exist_ok=True)
    write_manifest(dst / "train.jsonl", load_split(src, "train")[:size])
    for name in ("valid.jsonl", "test.jsonl", "classes.json"):
        shutil.copy(src / name, dst / name)
    return dst


def _job(args: tuple[str, int, str, int, str]) -> dict:
    params_path, size, variant, seed, manifests = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from pipeline.config import load_params
    from stages import distill, evaluate

    params = load_params(params_path, {"data.manifests": manifests, "distill.variant": variant, "distill.threads": 1,
                                       "distill.seed": seed, "probe.runs_root": str(WORK / f"probes-{size}")})
    run_dir = WORK / f"runs-{size}" / f"{variant}-seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    trained = distill.run(params, run_dir=str(run_dir), progress=False)
    tested = evaluate.run(params, run_dir=str(run_dir))
    return {"size": size, "variant": variant, "seed": seed, "test_map": tested["map"],
            "test_roc_auc": tested["roc_auc"], "valid_map": trained["valid_map"],
            "best_epoch": trained["best_epoch"], "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 600])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=["baseline", "east-final", "east-kd"])
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes (1 torch thread each)")
    parser.add_argument("--out", default="benchmarks/results/east_demo.json")
    args = parser.parse_args()

    from pipeline.config import load_params
    from stages import probe

    params = load_params(args.params)
    teacher = params.distill.teacher
    jobs, probes = [], {}
    for size in args.sizes:
        manifests = _subset(params, size)
        sized = load_params(args.params, {"data.manifests": str(manifests),
                                          "probe.runs_root": str(WORK / f"probes-{size}")})
        probes[size] = probe.run(sized, teacher=teacher)
        jobs += [(args.params, size, v, s, str(manifests)) for v in args.variants for s in args.seeds]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(_job, jobs))
    summary = {}
    for size in args.sizes:
        for variant in args.variants:
            scores = [r["test_map"] for r in runs if r["size"] == size and r["variant"] == variant]
            summary[f"{size}/{variant}"] = {"mean": statistics.mean(scores),
                                            "std": statistics.stdev(scores) if len(scores) > 1 else 0.0,
                                            "n": len(scores)}
        summary[f"{size}/probe-{teacher}"] = {"mean": probes[size]["test_map"], "std": 0.0, "n": 1}
    result = {"teacher": teacher, "lam": params.distill.lam, "epochs": params.distill.epochs,
              "student": params.distill.student, "summary": summary, "runs": runs,
              "probes": {str(k): v for k, v in probes.items()}, "wall_seconds": time.perf_counter() - start}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    for key, value in summary.items():
        print(f"{key:>28}: test mAP {value['mean']:.4f} +- {value['std']:.4f} (n={value['n']})")


if __name__ == "__main__":
    main()
