"""Issue 14's study: does the teacher's knowledge reach the student, and which term carries it?

On the demo set (a finished ``make demo`` / ``dvc repro`` in the current folder: manifests,
audio, the musicnn store with its audio cache). For each labelled training-set size (the first
N labelled train clips) the teachers' probes are fitted on those N clips; then every
configuration below is trained with every seed and scored on the full test split. Each finished
run is appended to ``benchmarks/results/east_study.json`` at once (a cut-off study keeps what
finished; running the command again skips finished runs and resumes a cut-off one from its
``last.pt``, as ``pipeline distill`` does; other settings start it over), and the table is judged per size
against the baseline of the same seed with :mod:`pipeline.judging`'s rule.

Configurations (``CONFIGS``): the baseline; EAsT-Final and EAsT-KD with the paper's V-statistic
per frame; the same with the bias-corrected U-statistic pooled over batch x frames; EAsT-KD with
extra unlabeled clips (``--unlabeled-manifests``: a manifest folder whose train split holds
unlabeled clips, extracted into the same stores); EAsT-KD with two teachers (musicnn MTT +
musicnn MSD, ``--second-teacher``). Issue 18's rows, each with the baseline's step budget: KD as the
field weights it (``kd09``: 0.1 BCE + 0.9 KD, temperature 1, every entry), cosine after a learned
projection (``cos``), both (``kd09-cos``), and label-free pretraining on labelled + unlabeled clips
then kd09 fine-tuning (``pretrain-ft``, run as two trainings, the second with ``distill.init``).
``views-kd09`` runs kd09 on the store's augmented views (README "Augmented views"), with its exact
control, the baseline on the same rendered views (``views-base``). ``kd-v-nofeat`` is today's EAsT-KD
without its feature term (the same BCE : KD ratio): ``kd-v`` against it is what the stored features add.

The ``views-*`` configurations read the stores under ``--views-store-root`` (default
``stores-views``), which must hold the musicnn store with ``extract.views`` views of the size's
train clips; make it once per size (the clean tracks are copied, only the views are extracted):

    mkdir -p stores-views && cp -r stores/musicnn stores-views/
    pipeline -S extract.store_root=stores-views -S extract.views=4 \
        -S data.manifests=benchmarks/work/east_study/manifests-300 extract --teacher musicnn

Usage: nice -n 10 python benchmarks/bench_east_study.py [--sizes 300 600] [--seeds 0 1 2]
       [--configs baseline kd-v ...] [--jobs 2] [--epochs 12]
Studies running side by side write to their own file (``EAST_STUDY_OUT=benchmarks/results/x.json``);
``--table --merge A.json B.json`` joins them into ``benchmarks/results/east_study.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import platform
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WORK = Path("benchmarks/work/east_study")
OUT = Path(os.environ.get("EAST_STUDY_OUT", "benchmarks/results/east_study.json"))
U_BATCH = {"distill.dcor_estimator": "u", "distill.dcor_pool": "batch"}
#: KD as EfficientAT and PretrainedSED weight it: 0.1 BCE + 0.9 KD, temperature 1, on every entry
KD_FIELD = {"distill.variant": "east-kd", "distill.lam": 0.9, "distill.kd_weight": 1.0, "distill.tau": 1.0,
            "distill.kd_entries": "all"}
#: configuration -> distill overrides (``unlabeled`` and ``teachers`` are resolved per run)
CONFIGS: dict[str, dict[str, Any]] = {
    "baseline": {"distill.variant": "baseline"},
    "final-v": {"distill.variant": "east-final"},
    "kd-v": {"distill.variant": "east-kd"},
    "final-u": {"distill.variant": "east-final", **U_BATCH},
    "kd-u": {"distill.variant": "east-kd", **U_BATCH},
    "kd-v-unlabeled": {"distill.variant": "east-kd", "unlabeled": True},
    # the unlabeled rows take twice the steps per epoch (unlabeled_per_epoch = the labelled count):
    # this control gives the labelled-only student the same number of steps
    "kd-v-2x-epochs": {"distill.variant": "east-kd", "epochs_factor": 2},
    "kd-u-unlabeled": {"distill.variant": "east-kd", "unlabeled": True, **U_BATCH},
    "kd-v-mtt+msd": {"distill.variant": "east-kd", "two_teachers": True},
    "kd-u-mtt+msd": {"distill.variant": "east-kd", "two_teachers": True, **U_BATCH},
    # issue 18: every configuration below has the baseline's step budget (12 epochs of the labelled
    # clips); KD as the field weights it, the field's feature loss, and label-free pretraining
    "kd09": KD_FIELD,
    "cos": {"distill.variant": "east-final", "distill.feature_loss": "cosine_projection", "distill.lam": 0.9},
    "kd09-cos": {**KD_FIELD, "distill.kd_weight": 0.7, "distill.feature_loss": "cosine_projection"},
    # kd09 from the second teacher alone (musicnn trained on MSD): which teacher triage should pick
    "kd09-msd": {**KD_FIELD, "second_only": True},
    # kd09 with a small CKA feature term beside it: 0.1 BCE + 0.81 KD + 0.09 (1 - linear CKA)
    "kd09-cka": {**KD_FIELD, "distill.kd_weight": 0.9, "distill.feature_loss": "linear_cka"},
    # today's EAsT-KD without its feature term: 0.7 BCE + 0.09 KD + 0.21 distance correlation less the
    # last, the same BCE : KD ratio (0.886 : 0.114, temperature 2); kd-v against it is what the features add
    "kd-v-nofeat": {"distill.variant": "east-kd", "distill.lam": 0.09 / 0.79, "distill.kd_weight": 1.0},
    # 3 epochs of label-free pretraining over 2x the labelled count (labelled + as many unlabeled clips),
    # then 6 epochs of kd09 fine-tuning: 3 x 2 + 6 = 12 epochs' steps
    "pretrain-ft": {**KD_FIELD, "epochs_factor": 0.5,
                    "pretrain": {"distill.variant": "pretrain", "distill.feature_loss": "cosine_projection",
                                 "distill.kd_weight": 0.5, "distill.tau": 1.0, "distill.kd_entries": "all",
                                 "epochs_factor": 0.25, "unlabeled": True, "unlabeled_share": 1}},
    # augmented views (extract.views): the student hears the audio each view's teacher frames were computed
    # from; views-base is the exact control (the same view draws and rendered audio, no teacher term)
    "views-base": {"distill.variant": "baseline", "views": True},
    "views-kd09": {**KD_FIELD, "views": True},
}


def _subset(manifests: Path, size: int, unlabeled: Path | None) -> Path:
    """A manifest folder with the first ``size`` labelled train clips (+ every unlabeled clip given)."""
    from pipeline.manifests import load_split, write_manifest

    name = f"manifests-{size}" + ("-unlabeled" if unlabeled else "")
    target = WORK / name
    target.mkdir(parents=True, exist_ok=True)
    labelled = [c for c in load_split(manifests, "train") if any(c.known)][:size]
    extra = [c for c in load_split(unlabeled, "train") if not any(c.known)] if unlabeled else []
    write_manifest(target / "train.jsonl", labelled + extra)
    for file in ("valid.jsonl", "test.jsonl", "classes.json"):
        shutil.copy(manifests / file, target / file)
    return target


def _overrides(config: str, size: int, seed: int, args: argparse.Namespace,
               settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``params.yaml`` overrides of one run; a ``pretrain`` entry becomes ``{"pretrain": its overrides}``."""
    settings = dict(CONFIGS[config] if settings is None else settings)
    pretrain = settings.pop("pretrain", None)
    unlabeled = settings.pop("unlabeled", False)
    unlabeled_share = settings.pop("unlabeled_share", 0)  # unlabeled clips per epoch per labelled clip
    two = settings.pop("two_teachers", False)
    second_only = settings.pop("second_only", False)
    views = settings.pop("views", False)
    epochs = int(round(args.epochs * settings.pop("epochs_factor", 1)))
    manifests = WORK / (f"manifests-{size}" + ("-unlabeled" if unlabeled else ""))
    out = {**settings, "data.manifests": str(manifests), "distill.seed": seed, "distill.threads": 1,
           "distill.epochs": epochs, "probe.runs_root": str(WORK / f"probes-{size}")}
    if unlabeled and unlabeled_share:
        out["distill.unlabeled_per_epoch"] = int(size * unlabeled_share)
    elif unlabeled and args.unlabeled_per_epoch:
        out["distill.unlabeled_per_epoch"] = args.unlabeled_per_epoch
    if views:
        out.update({"distill.views": True, "extract.store_root": args.views_store_root})
    if two:
        out["distill.teachers"] = [{"name": "musicnn", "weight": 1.0}, {"name": args.second_teacher, "weight": 1.0}]
    if second_only:
        out["distill.teachers"] = [{"name": args.second_teacher, "weight": 1.0}]
    if pretrain is not None:
        out["pretrain"] = _overrides(config, size, seed, args, pretrain)
    return out


def _job(job: tuple[str, int, int, dict[str, Any]]) -> dict[str, Any]:
    config, size, seed, overrides = job
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from pipeline.allocator import tune_allocator
    from pipeline.config import load_params
    from pipeline.logs import configure
    from stages import distill, evaluate

    configure(0)
    tune_allocator()  # the glibc settings `pipeline` applies: without them training runs at half speed
    overrides = dict(overrides)
    pretrain = overrides.pop("pretrain", None)
    run_dir = WORK / f"runs-{size}" / f"{config}-seed{seed}"
    start = time.perf_counter()
    if pretrain is not None:  # label-free pretraining first; the run below starts from its best.pt
        pre_dir = WORK / f"runs-{size}" / f"{config}-pretrain-seed{seed}"
        distill.run(load_params("params.yaml", pretrain), run_dir=str(pre_dir), progress=False)
        overrides["distill.init"] = str(pre_dir)
    params = load_params("params.yaml", overrides)
    trained = distill.run(params, run_dir=str(run_dir), progress=False)
    tested = evaluate.run(params, run_dir=str(run_dir))
    return {"size": size, "config": config, "seed": seed, "test_map": tested["map"],
            "test_roc_auc": tested["roc_auc"], "valid_map": trained["valid_map"],
            "best_epoch": trained["best_epoch"], "epochs": trained["epochs_run"],
            "valid_curve": valid_curve(run_dir),
            "train_clips": trained.get("n_labeled"), "unlabeled_clips": trained.get("n_unlabeled"),
            "seconds": time.perf_counter() - start, "overrides": {**overrides, "pretrain": pretrain}}


def valid_curve(run_dir: Path) -> list[float]:
    """Valid mAP after each epoch, from the run's ``history.csv`` (``[]`` when it has none)."""
    history = run_dir / "history.csv"
    if not history.is_file():
        return []
    with history.open(newline="") as f:
        return [float(row["valid_map"]) for row in csv.DictReader(f)]


def _backfill_curves(result: dict[str, Any]) -> None:
    """Give runs recorded before curves were kept their run folder's curve, when it is this run's.

    A run folder is reused by studies of other lengths, so its curve is taken only when it has the
    run's epoch count and its best value is the run's recorded valid mAP.
    """
    for run in result["runs"]:
        if run.get("valid_curve"):
            continue
        curve = valid_curve(WORK / f"runs-{run['size']}" / f"{run['config']}-seed{run['seed']}")
        if len(curve) == run["epochs"] and curve and abs(max(curve) - run["valid_map"]) < 1e-9:
            run["valid_curve"] = curve


def _mean_curve(curves: list[list[float]]) -> list[float]:
    """The mean over seeds at each epoch, as long as the shortest curve."""
    length = min(len(c) for c in curves)
    return [sum(c[e] for c in curves) / len(curves) for e in range(length)]


def convergence(result: dict[str, Any], last: int = 5) -> list[dict[str, Any]]:
    """Per (size, configuration): the best valid epochs and how far valid mAP moved over the last epochs.

    ``mean_span`` is max - min of the seeds' mean curve over its last ``last`` epochs (under 0.01 reads
    "the curve has flattened" in the README); ``last_span`` the largest such span of a single seed.
    """
    rows = []
    for size in sorted({r["size"] for r in result["runs"]}):
        for config in CONFIGS:
            runs = [r for r in result["runs"] if r["size"] == size and r["config"] == config and r.get("valid_curve")]
            if runs:
                mean = _mean_curve([r["valid_curve"] for r in runs])[-last:]
                rows.append({"size": size, "config": config, "n": len(runs), "epochs": max(r["epochs"] for r in runs),
                             "best_epochs": sorted(r["best_epoch"] for r in runs),
                             "mean_span": max(mean) - min(mean),
                             "last_span": max(max(r["valid_curve"][-last:]) - min(r["valid_curve"][-last:])
                                              for r in runs)})
    return rows


def plot_curves(result: dict[str, Any], out: Path) -> Path | None:
    """Write the valid-mAP curves (one panel per size, each configuration's seeds as thin lines and their mean).

    Returns None (and writes nothing) when no run has a curve.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["size"] for r in result["runs"] if r.get("valid_curve")})
    if not sizes:
        return None
    fig, axes = plt.subplots(1, len(sizes), figsize=(6 * len(sizes), 4), squeeze=False)
    present = [c for c in CONFIGS if any(r["config"] == c and r.get("valid_curve") for r in result["runs"])]
    for ax, size in zip(axes[0], sizes):
        for index, config in enumerate(present):  # one colour per configuration, the same in every panel
            curves = [r["valid_curve"] for r in result["runs"]
                      if r["size"] == size and r["config"] == config and r.get("valid_curve")]
            if not curves:
                continue
            colour = f"C{index % 10}"
            for curve in curves:
                ax.plot(range(1, len(curve) + 1), curve, color=colour, alpha=0.25, linewidth=0.8)
            mean = _mean_curve(curves)
            ax.plot(range(1, len(mean) + 1), mean, color=colour, linewidth=1.8, label=f"{config} (n={len(curves)})")
        ax.set_title(f"{size} labelled train clips", fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("valid macro mAP")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Valid mAP per epoch: each seed (thin) and the mean over seeds (thick)", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _fit_probes(size: int, teachers: list[str]) -> dict[str, float]:
    from pipeline.config import load_params
    from pipeline.runs import probe_dir
    from stages import probe

    params = load_params("params.yaml", {"data.manifests": str(WORK / f"manifests-{size}"),
                                         "probe.runs_root": str(WORK / f"probes-{size}")})
    scores = {}
    for teacher in teachers:
        metrics = probe_dir(params, teacher) / "metrics.json"
        if not metrics.is_file():
            probe.run(params, teacher=teacher)
        scores[teacher] = json.loads(metrics.read_text())["test_map"]
    return scores


def _check_views_store(root: Path, size: int) -> None:
    """Stop before training when the views store lacks the views of this size's train clips."""
    from pipeline.manifests import load_split
    from pipeline.views import read_view_table

    table = read_view_table(root / "musicnn") if (root / "musicnn").is_dir() else None
    clips = {p.clip for p in table.views.values()} if table else set()
    missing = [c.id for c in load_split(WORK / f"manifests-{size}", "train") if c.id not in clips]
    if missing:
        raise SystemExit(f"{root}/musicnn has no views of {len(missing)} train clip(s) of size {size} (first: "
                         f"{missing[0]}); extract them as this script's docstring shows")


def _load() -> dict[str, Any]:
    return json.loads(OUT.read_text()) if OUT.is_file() else {"runs": [], "probes": {}}


def _save(result: dict[str, Any]) -> None:
    result["table"] = judged_table(result)
    result["paired"] = paired_table(result)
    result["convergence"] = convergence(result)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    tmp.replace(OUT)


def judged_table(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (size, configuration): test mAP mean ± std, paired differences to the baseline, verdict."""
    from pipeline.judging import paired_differences, summarize, verdict

    rows = []
    for size in sorted({r["size"] for r in result["runs"]}):
        runs = [r for r in result["runs"] if r["size"] == size]
        base = {r["seed"]: r["test_map"] for r in runs if r["config"] == "baseline"}
        for config in [c for c in CONFIGS if any(r["config"] == c for r in runs)]:
            mine = {r["seed"]: r["test_map"] for r in runs if r["config"] == config}
            stats = summarize(list(mine.values()))
            auc = summarize([r["test_roc_auc"] for r in runs if r["config"] == config])
            paired = paired_differences(mine, base)
            rows.append({"size": size, "config": config, "n": stats.n, "map_mean": stats.mean, "map_std": stats.std,
                         "auc_mean": auc.mean, "auc_std": auc.std, "differences": list(paired.differences),
                         "diff_mean": paired.mean, "diff_se": paired.se,
                         "verdict": "reference" if config == "baseline" else verdict(paired),
                         "probe": result["probes"].get(str(size), {}).get("musicnn"),
                         "seconds": sum(r["seconds"] for r in runs if r["config"] == config)})
    return rows


#: issue 18's comparisons beyond "against the baseline": each configuration against the one with the same
#: steps and augmentations that it must beat (views against the baseline on the same rendered views; the
#: feature-using configurations against KD weighted 0.9 alone, so that the features add what the probe's
#: labels do not)
PAIRS = (("kd-v", "kd-v-nofeat"), ("views-kd09", "views-base"), ("kd09-cos", "kd09"), ("pretrain-ft", "kd09"),
         ("views-kd09", "kd09"),
         ("kd09", "kd-v"), ("kd09-cos", "kd-v"), ("kd09-cka", "kd09"), ("kd09-msd", "kd09"), ("views-kd09", "kd-v"),
         ("views-base", "baseline"))


def paired_table(result: dict[str, Any], pairs: tuple[tuple[str, str], ...] = PAIRS) -> list[dict[str, Any]]:
    """One row per (size, configuration, reference) with both finished: paired differences and the verdict."""
    from pipeline.judging import paired_differences, verdict

    rows = []
    for size in sorted({r["size"] for r in result["runs"]}):
        by: dict[str, dict[int, float]] = {}
        for r in result["runs"]:
            if r["size"] == size:
                by.setdefault(r["config"], {})[r["seed"]] = r["test_map"]
        for config, reference in pairs:
            if config in by and reference in by:
                paired = paired_differences(by[config], by[reference])
                rows.append({"size": size, "config": config, "reference": reference,
                             "differences": list(paired.differences), "diff_mean": paired.mean,
                             "diff_se": paired.se, "verdict": verdict(paired)})
    return rows


def paired_markdown(rows: list[dict[str, Any]]) -> str:
    """The paired comparisons as Markdown."""
    lines = ["| train clips | configuration | against | minus reference, per seed | mean ± se | verdict |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        diffs = ", ".join(f"{d:+.3f}" for d in r["differences"])
        se = "" if r["diff_se"] is None else f" ± {r['diff_se']:.3f}"
        mean = "-" if r["diff_mean"] is None else f"{r['diff_mean']:+.3f}{se}"
        lines.append(f"| {r['size']} | {r['config']} | {r['reference']} | {diffs} | {mean} | {r['verdict']} |")
    return "\n".join(lines)


def convergence_markdown(rows: list[dict[str, Any]]) -> str:
    """How long each configuration trained and whether its curves had flattened, as Markdown."""
    lines = ["| train clips | configuration | epochs | best valid epoch per seed | valid mAP range, last 5 epochs: "
             "mean over seeds | the widest seed |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['config']} | {r['epochs']} | {', '.join(map(str, r['best_epochs']))} | "
              f"{r['mean_span']:.3f} | {r['last_span']:.3f} |" for r in rows]
    return "\n".join(lines)


def merge(paths: list[Path]) -> dict[str, Any]:
    """The runs of several study files (studies run from different folders), one per (size, config, seed)."""
    result: dict[str, Any] = {"runs": [], "probes": {}}
    seen = set()
    for path in paths:
        data = json.loads(path.read_text())
        for size, probes in data.get("probes", {}).items():
            result["probes"].setdefault(size, {}).update(probes)
        result["machine"] = data.get("machine", result.get("machine"))
        for run in data["runs"]:
            key = (run["size"], run["config"], run["seed"])
            if key not in seen:
                seen.add(key)
                result["runs"].append(run)
    return result


def markdown(rows: list[dict[str, Any]]) -> str:
    """The judged table as Markdown (README and closing note)."""
    def pm(mean: float | None, std: float | None) -> str:
        return "-" if mean is None else f"{mean:.3f} ± {std:.3f}" if std is not None else f"{mean:.3f}"

    lines = ["| train clips | configuration | n | test mAP | ROC-AUC | minus baseline, per seed | mean ± se "
             "| verdict |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        diffs = ", ".join(f"{d:+.3f}" for d in r["differences"]) if r["config"] != "baseline" else "-"
        mean = "-" if r["config"] == "baseline" or r["diff_mean"] is None else pm(r["diff_mean"], r["diff_se"])
        lines.append(f"| {r['size']} | {r['config']} | {r['n']} | {pm(r['map_mean'], r['map_std'])} | "
                     f"{pm(r['auc_mean'], r['auc_std'])} | {diffs} | {mean} | {r['verdict']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 600])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--jobs", type=int, default=2, help="parallel training processes (1 torch thread each)")
    parser.add_argument("--manifests", default="data_manifests/demo")
    parser.add_argument("--unlabeled-manifests", default=None, help="folder whose train split holds unlabeled clips")
    parser.add_argument("--unlabeled-per-epoch", type=int, default=0, help="0 = all unlabeled clips each epoch")
    parser.add_argument("--second-teacher", default="musicnn@msd")
    parser.add_argument("--views-store-root", default="stores-views",
                        help="store root of the views-* configurations (a musicnn store with extract.views)")
    parser.add_argument("--table", action="store_true", help="only judge what has finished and print the tables")
    parser.add_argument("--merge", nargs="+", type=Path, default=None,
                        help="with --table: first merge the runs of these study files into the results file")
    args = parser.parse_args()
    if args.table:
        result = merge([OUT, *args.merge]) if args.merge else _load()
        _backfill_curves(result)
        _save(result)
        plot = plot_curves(result, OUT.with_name(OUT.stem + "_curves.png"))
        sections = [markdown(result["table"]), paired_markdown(result["paired"])]
        if result["convergence"]:  # runs recorded before curves were kept have none
            sections += [convergence_markdown(result["convergence"]), f"curves: {plot}"]
        print("\n\n".join(sections))
        return

    result = _load()
    done = {(r["size"], r["config"], r["seed"]) for r in result["runs"]}
    jobs = []
    for size in args.sizes:
        _subset(Path(args.manifests), size, None)
        if args.unlabeled_manifests:
            _subset(Path(args.manifests), size, Path(args.unlabeled_manifests))
        teachers = ["musicnn"] + ([args.second_teacher] if any("msd" in c for c in args.configs) else [])
        result["probes"][str(size)] = _fit_probes(size, teachers)
        if any(c.startswith("views-") for c in args.configs):
            _check_views_store(Path(args.views_store_root), size)
        jobs += [(c, size, s, _overrides(c, size, s, args)) for c in args.configs for s in args.seeds
                 if (size, c, s) not in done]
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform()}
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_job, job) for job in jobs]
        for future in as_completed(futures):
            try:
                run = future.result()
            except Exception as exc:  # noqa: BLE001 - one failed run must not end the study
                print(f"a run failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            result["runs"].append(run)
            _save(result)
            print(f"{run['size']:>4} {run['config']:<16} seed {run['seed']}: test mAP {run['test_map']:.4f} "
                  f"({run['seconds']:.0f} s, {time.perf_counter() - started:.0f} s so far)", flush=True)
    _save(result)


if __name__ == "__main__":
    main()
