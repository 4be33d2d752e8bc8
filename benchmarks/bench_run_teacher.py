"""An in-domain teacher: a bigger model trained by this pipeline (`run:`) vs musicnn vs no teacher.

On the demo set (``pipeline prepare demo`` first): train a CP-ResNet teacher (labels only),
extract its last feature map with ``--teacher run:<dir>``, fit both teachers' probes, then
train the default Mobile-FCN student with EAsT-KD from each teacher and without a teacher,
for several seeds, and score every run on the test split. Writes
``benchmarks/results/run_teacher.json`` after every finished run (partial results survive),
with mean ± std per arm and per-seed paired differences, judged by one stated rule.

Usage: nice -n 10 python benchmarks/bench_run_teacher.py [--seeds 0 1 2] [--epochs 8]
       [--teacher-epochs 12] [--jobs 2] [--train-clips N]
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
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORK = Path("benchmarks/work/run_teacher")
OUT = Path("benchmarks/results/run_teacher.json")
TEACHER_DIR = WORK / "teacher-cpresnet"
RUN_TEACHER = f"run:{TEACHER_DIR}"
ARMS = {  # arm -> (variant, teacher)
    "no teacher": ("baseline", "musicnn"),
    "musicnn": ("east-kd", "musicnn"),
    "run: CP-ResNet": ("east-kd", RUN_TEACHER),
}
#: The judging rule: "better"/"worse" when every seed's paired difference has the same sign and
#: |mean| > 2 standard errors of the differences; otherwise "not distinguishable".
RULE = ("better/worse: all per-seed paired differences share a sign and |mean| > 2 * std/sqrt(n); "
        "else not distinguishable")


MANIFESTS: dict[str, str] = {}  # set by --train-clips: the subset manifests folder


def _params(overrides: dict):  # noqa: ANN202
    from pipeline.config import load_params

    return load_params("params.yaml", {"distill.threads": 1, **MANIFESTS, **overrides})  # parallel jobs: 1 thread each


def _subset(size: int) -> None:
    """Manifests with the first ``size`` train clips (valid and test whole), used by every later step."""
    from pipeline.config import load_params
    from pipeline.manifests import load_split, write_manifest

    src = Path(load_params("params.yaml").data.manifests)
    dst = WORK / f"manifests-{size}"
    dst.mkdir(parents=True, exist_ok=True)
    write_manifest(dst / "train.jsonl", load_split(src, "train")[:size])
    for name in ("valid.jsonl", "test.jsonl", "classes.json"):
        shutil.copy(src / name, dst / name)
    MANIFESTS["data.manifests"] = str(dst)


def _run_dir(arm: str, seed: int) -> Path:
    return WORK / "students" / f"{arm.split(':')[0].replace(' ', '_')}-seed{seed}"


def collect(seeds: list[int]) -> list[dict]:
    """Every finished student run on disk (``eval-test.json``), also those of earlier invocations."""
    runs = []
    for arm, (variant, teacher) in ARMS.items():
        for seed in seeds:
            folder = _run_dir(arm, seed)
            if (folder / "eval-test.json").is_file() and (folder / "metrics.json").is_file():
                tested = json.loads((folder / "eval-test.json").read_text())
                trained = json.loads((folder / "metrics.json").read_text())
                timings = folder / "timings.json"  # wall-clock figures live beside metrics.json
                trained.update(json.loads(timings.read_text()) if timings.is_file() else {})
                runs.append({"arm": arm, "variant": variant, "teacher": teacher if variant != "baseline" else None,
                             "seed": seed, "test_map": tested["map"], "test_roc_auc": tested["roc_auc"],
                             "valid_map": trained["valid_map"], "best_epoch": trained["best_epoch"],
                             "train_seconds": trained.get("train_seconds")})
    return runs


def _student_job(args: tuple[str, int, int, dict]) -> dict:
    arm, seed, epochs, manifests = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    MANIFESTS.update(manifests)
    from stages import distill, evaluate

    variant, teacher = ARMS[arm]
    params = _params({"distill.variant": variant, "distill.teacher": teacher, "distill.seed": seed,
                      "distill.epochs": epochs, "distill.device": "cpu"})
    run_dir = _run_dir(arm, seed)
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    trained = distill.run(params, run_dir=str(run_dir), progress=False)
    tested = evaluate.run(params, run_dir=str(run_dir))
    return {"arm": arm, "variant": variant, "teacher": teacher if variant != "baseline" else None, "seed": seed,
            "test_map": tested["map"], "test_roc_auc": tested["roc_auc"], "valid_map": trained["valid_map"],
            "best_epoch": trained["best_epoch"], "seconds": time.perf_counter() - start}


def _prepare_teachers(teacher_epochs: int, log: dict) -> None:
    """musicnn store, the CP-ResNet teacher run, its run: store, and both probes (each done once)."""
    from stages import distill, evaluate, extract, probe

    started = time.perf_counter()
    report = extract.run(_params({"extract.device": "cpu"}), teacher="musicnn", progress=False)
    log["musicnn_extracted"] = report.to_json()
    if not (TEACHER_DIR / "metrics.json").is_file():
        params = _params({"distill.student": "cp_resnet", "students.cp_resnet.base_channels": 64,
                          "distill.variant": "baseline", "distill.epochs": teacher_epochs, "distill.seed": 0,
                          "distill.device": "cpu"})
        log["teacher_train"] = distill.run(params, run_dir=str(TEACHER_DIR), progress=False)
    log["teacher_valid"] = json.loads((TEACHER_DIR / "metrics.json").read_text())
    log["teacher_test"] = {k: v for k, v in evaluate.run(_params({}), run_dir=str(TEACHER_DIR)).items()
                           if isinstance(v, (int, float, str))}
    report = extract.run(_params({"extract.device": "cpu", "extract.workers": 0}), teacher=RUN_TEACHER,
                         progress=False, overwrite=True)  # cheap; always the current teacher and code
    log["run_teacher_extracted"] = report.to_json()
    for teacher in ("musicnn", RUN_TEACHER):
        log[f"probe {teacher}"] = probe.run(_params({}), teacher=teacher)
    log["prepare_seconds"] = time.perf_counter() - started


def _judge(diffs: list[float]) -> str:
    if len(diffs) < 2:
        return "not distinguishable (fewer than 2 seeds)"
    mean, sd = statistics.mean(diffs), statistics.stdev(diffs)
    same_sign = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
    if same_sign and abs(mean) > 2 * sd / len(diffs) ** 0.5:
        return "better" if mean > 0 else "worse"
    return "not distinguishable"


def summarise(runs: list[dict]) -> dict:
    """Mean ± std per arm and per-seed paired differences (same seed) between arms."""
    by_arm: dict[str, dict[int, float]] = {}
    for r in runs:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r["test_map"]
    summary = {arm: {"mean": statistics.mean(v.values()), "std": statistics.stdev(v.values()) if len(v) > 1 else 0.0,
                     "n": len(v), "per_seed": dict(sorted(v.items()))} for arm, v in by_arm.items()}
    pairs = {}
    for a, b in (("musicnn", "no teacher"), ("run: CP-ResNet", "no teacher"), ("run: CP-ResNet", "musicnn")):
        if a in by_arm and b in by_arm:
            seeds = sorted(set(by_arm[a]) & set(by_arm[b]))
            diffs = [by_arm[a][s] - by_arm[b][s] for s in seeds]
            pairs[f"{a} - {b}"] = {
                "per_seed": dict(zip(seeds, diffs)), "mean": statistics.mean(diffs) if diffs else None,
                "std": statistics.stdev(diffs) if len(diffs) > 1 else None, "verdict": _judge(diffs)}
    return {"arms": summary, "paired_differences": pairs, "rule": RULE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=8, help="student epochs (params.yaml has 12)")
    parser.add_argument("--teacher-epochs", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--train-clips", type=int, default=0, help="first N train clips only (0: all)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS),
                        help="arms to (re)train now; finished runs of the others are read from disk")
    args = parser.parse_args()
    if args.train_clips:
        _subset(args.train_clips)
    WORK.mkdir(parents=True, exist_ok=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result: dict = {
        "benchmark": "run: teacher (CP-ResNet, base_channels 64, trained on the demo) vs musicnn vs no teacher; "
                     "student: default Mobile-FCN, EAsT-KD, test mAP on the demo test split",
        "command": "nice -n 10 python " + " ".join(sys.argv),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": os.getloadavg(), "python": platform.python_version()},
        "settings": {"student_epochs": args.epochs, "teacher_epochs": args.teacher_epochs, "seeds": args.seeds,
                     "student": "mobile_fcn (params.yaml: dropout 0.2)",
                     "teacher_student": "cp_resnet base_channels 64",
                     "variant": "east-kd (lam, kd_weight, tau from params.yaml)",
                     "train_clips": args.train_clips or "all (600)",
                     "manifests": MANIFESTS.get("data.manifests", "params.yaml")},
        "log": {}, "runs": [], "complete": False,
    }
    _prepare_teachers(args.teacher_epochs, result["log"])
    result["runs"] = collect(args.seeds)
    result.update(summarise(result["runs"]))
    _write(result)
    jobs = [(arm, seed, args.epochs, dict(MANIFESTS)) for seed in args.seeds for arm in args.arms]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(_student_job, job) for job in jobs]
        for future in as_completed(futures):
            error = future.exception()
            if error is not None:
                result["log"].setdefault("failed", []).append(f"{type(error).__name__}: {error}")
            result["runs"] = collect(args.seeds)
            result.update(summarise(result["runs"]))
            result["wall_seconds"] = time.perf_counter() - started
            _write(result)
    result["complete"] = len(result["runs"]) == len(ARMS) * len(args.seeds)
    result["machine"]["loadavg_after"] = os.getloadavg()
    _write(result)
    print(json.dumps({k: result[k] for k in ("arms", "paired_differences")}, indent=2))


def _write(result: dict) -> None:
    tmp = OUT.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
    tmp.replace(OUT)


if __name__ == "__main__":
    main()
