"""Markdown report and PNG plots comparing the teacher probe, the baseline and the EAsT variants.

Two tables: one row per probe and per variant (a single run each), and the runs grouped by
configuration over seeds, judged against the baseline of the same seeds (:mod:`pipeline.judging`).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pipeline.cost import cost_table
from pipeline.files import write_atomic, write_rendered
from pipeline.judging import Judgement, RULE, to_json
from pipeline.timings import timings_file
from pipeline.variants import VARIANTS, is_reference, variant_label

__all__ = ["RunSummary", "collect_runs", "plot_all", "plot_seeds", "write_markdown", "write_judged"]


@dataclass
class RunSummary:
    """What the report shows of one run (a student variant or a probe)."""

    name: str
    label: str
    metrics: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)
    per_class: dict[str, float] = field(default_factory=dict)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def collect_runs(runs_root: Path, variants: list[str], probes: list[str]) -> list[RunSummary]:
    """Read probe and variant results under ``runs_root`` (missing ones are left out)."""
    summaries = []
    for teacher in probes:
        folder = runs_root / f"probe-{teacher}"
        if (folder / "metrics.json").is_file():
            metrics = json.loads((folder / "metrics.json").read_text())
            per_class = {r["class"]: float(r["average_precision"]) for r in _read_csv(folder / "per_class.csv")}
            summaries.append(RunSummary(f"probe-{teacher}", f"Teacher probe ({teacher})", {
                "map": metrics["test_map"], "roc_auc": metrics["test_roc_auc"], "f1_macro": metrics.get("test_f1"),
                "parameters": metrics.get("parameters"),
                "classes_covered": metrics.get("test_classes_covered"), "n_classes": len(per_class),
            }, per_class=per_class))
    for variant in variants:
        found = _variant_folder(runs_root, variant)
        if found is None:
            continue
        folder = found
        metrics = json.loads((folder / "eval-test.json").read_text())
        timings = timings_file(folder, "eval-test")
        if timings.is_file():  # wall-clock figures live beside the metrics DVC tracks
            metrics.update(json.loads(timings.read_text()))
        train = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
        metrics.update({k: train[k] for k in ("valid_map", "best_epoch", "lam", "teacher", "seed") if k in train})
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
        metrics["student"] = config.get("student", train.get("student"))  # the cost table's row
        history = [{k: float(v) for k, v in row.items() if v != ""} for row in _read_csv(folder / "history.csv")]
        per_class = {r["class"]: float(r["average_precision"]) for r in _read_csv(folder / "per_class-test.csv")}
        summaries.append(RunSummary(variant, variant_label(variant), metrics, history, per_class))
    return summaries


def _variant_folder(runs_root: Path, variant: str) -> Path | None:
    """``runs_root/<variant>`` when evaluated, else the evaluated run of that variant with the lowest seed
    (dvc.yaml's ``<variant>-<seed>``; ties and runs without a seed: the latest), under any name
    (``pipeline distill``'s default is ``<student>-<teacher>-<variant>``)."""
    if (runs_root / variant / "eval-test.json").is_file():
        return runs_root / variant
    found = []
    for result in runs_root.glob("*/eval-test.json"):
        config_file = result.parent / "config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        if config.get("variant") == variant:
            seed = config.get("distill", {}).get("seed")
            found.append((seed if isinstance(seed, int) else float("inf"), -result.stat().st_mtime, result.parent))
    return min(found)[2] if found else None


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    """Write ``fig`` as a PNG and free it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        write_rendered(path, lambda handle: fig.savefig(handle, dpi=120, format="png"))
    finally:
        plt.close(fig)
    return path


def plot_all(summaries: list[RunSummary], out: Path) -> list[Path]:
    """Write comparison.png, curves.png and per_class.png; returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out.mkdir(parents=True, exist_ok=True)
    files = []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [s.label for s in summaries]
    values = [s.metrics.get("map") or 0.0 for s in summaries]
    bars = ax.barh(labels, values, color=["#999999" if s.name.startswith("probe") else "#3b75af" for s in summaries])
    ax.bar_label(bars, fmt="%.3f", padding=2)
    ax.set_xlabel("test macro mAP")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    files.append(_save(fig, out / "comparison.png"))

    trained = [s for s in summaries if s.history]
    if trained:
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
        for s in trained:
            epochs = [row["epoch"] for row in s.history]
            left.plot(epochs, [row.get("valid_map", np.nan) for row in s.history], marker="o", label=s.label)
            right.plot(epochs, [row.get("train_pred", np.nan) for row in s.history], marker="o", label=s.label)
        left.set(xlabel="epoch", ylabel="validation mAP", title="Validation mAP")
        right.set(xlabel="epoch", ylabel="training BCE (L_pred)", title="Training label loss")
        left.legend(fontsize=8)
        files.append(_save(fig, out / "curves.png"))

    with_classes = [s for s in summaries if s.per_class]
    if with_classes:
        classes = list(with_classes[0].per_class)
        width = 0.8 / len(with_classes)
        fig, ax = plt.subplots(figsize=(max(8, len(classes) * 0.55), 4))
        x = np.arange(len(classes))
        for i, s in enumerate(with_classes):
            ax.bar(x + i * width, [s.per_class.get(c, np.nan) for c in classes], width, label=s.label)
        ax.set_xticks(x + width * (len(with_classes) - 1) / 2, classes, rotation=60, ha="right")
        ax.set_ylabel("test average precision")
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8, ncol=len(with_classes), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
        files.append(_save(fig, out / "per_class.png"))
    return files


#: The narrowest mAP range the seeds plot shows: a 0.02 gap between single runs must not fill the width.
MIN_MAP_SPAN = 0.2


def seeds_axis_limits(values: Sequence[float], min_span: float = MIN_MAP_SPAN) -> tuple[float, float]:
    """x limits (mAP, within 0..1) covering ``values`` and at least ``min_span`` wide, centered on them."""
    low, high = min(values), max(values)
    pad = max(0.0, min_span - (high - low)) / 2 + 0.02 * (high - low)
    low, high = low - pad, high + pad
    shift = max(0.0, -low) - max(0.0, high - 1.0)
    return max(0.0, low + shift), min(1.0, high + shift)


def plot_seeds(judgements: Sequence[Judgement], out: Path) -> Path | None:
    """Write ``seeds.png``: test mAP per configuration, mean ± std as error bars, each seed's run as a dot.

    Returns None (and writes nothing) when no configuration has a run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [j for j in judgements if j.configuration.runs]
    if not rows:
        return None
    out.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.45 * len(rows)))
    for y, j in enumerate(rows):
        values = [r.map for r in j.configuration.runs]
        colour = "#999999" if is_reference(j.configuration.variant) else "#3b75af"
        ax.errorbar([j.map.mean or 0.0], [y], xerr=[j.map.std or 0.0], fmt="D", color=colour, capsize=4, markersize=6)
        ax.scatter(values, [y] * len(values), s=18, color="black", alpha=0.6, zorder=3)
    every = [r.map for j in rows for r in j.configuration.runs] + [
        (j.map.mean or 0.0) + sign * (j.map.std or 0.0) for j in rows for sign in (-1, 1)]
    ax.set_xlim(*seeds_axis_limits(every))
    ax.set_yticks(range(len(rows)), [f"{j.configuration.label} (n={j.map.n})" for j in rows], fontsize=8)
    ax.set_xlabel("test macro mAP")
    title = "Over seeds: mean ± std (diamond, bars), each seed (dot)"
    if max(j.map.n for j in rows) < 3:
        title += "; under 3 seeds nothing is judged"
    ax.set_title(title, fontsize=9)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out / "seeds.png")


def _mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def judged_rows(judgements: Sequence[Judgement]) -> list[str]:
    """The Markdown lines of the table over seeds: the rule, one row per configuration, then notes."""
    lines = [
        "## Over seeds", "",
        "Runs that differ only in their seed form one configuration. Each is compared with the baseline "
        "run of the same seed (paired difference of test mAP).", "",
        f"Rule: {RULE}", "",
        "| configuration | n | seeds | test mAP, mean ± std | ROC-AUC, mean ± std | baseline | "
        "mAP - baseline, per seed | mean ± se | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for j in judgements:
        c, p = j.configuration, j.paired
        seeds = ", ".join(str(r.seed) if r.seed is not None else "?" for r in c.runs)
        per_seed = ", ".join(f"{d:+.4f}" for d in p.differences) if p and p.n else "n/a"
        mean_se = "n/a" if p is None or p.mean is None else (
            f"{p.mean:+.4f} ± {p.se:.4f}" if p.se is not None else f"{p.mean:+.4f}")
        lines.append(f"| {c.label} | {j.map.n} | {seeds} | {_mean_std(j.map.mean, j.map.std)} | "
                     f"{_mean_std(j.roc_auc.mean, j.roc_auc.std)} | {j.baseline.label if j.baseline else '-'} | "
                     f"{per_seed} | {mean_se} | {j.verdict} |")
        if j.candidates > 1 and j.baseline is not None:
            notes.append(f"- {c.label}: {j.candidates} baselines qualified; compared with {j.baseline.label}, "
                         f"which shares {j.shared} of {j.total} settings.")
        if p is not None and p.unpaired:
            seeds_text = ("seed " if len(p.unpaired) == 1 else "seeds ") + ", ".join(map(str, p.unpaired))
            notes.append(f"- {c.label}: the baseline has no run of {seeds_text}; left out of the pairs "
                         f"({p.n} pairs).")
        if c.duplicates:
            notes.append(f"- {c.label}: ignored older runs of a seed already covered: "
                         f"{', '.join(sorted(d.name for d in c.duplicates))}.")
    return lines + ([""] + notes if notes else []) + ["", "The same table as JSON: [judged.json](judged.json).", ""]


def write_judged(judgements: Sequence[Judgement], out: Path) -> Path:
    """Write ``judged.json`` (:func:`pipeline.judging.to_json`) into ``out``."""
    target = out / "judged.json"
    write_atomic(target, json.dumps(to_json(judgements), indent=2) + "\n")
    return target


def coverage_lines(summaries: Sequence[RunSummary]) -> list[str]:
    """One line per distinct class coverage of the runs' test means (none for runs scored before it was recorded).

    A class with no known positive or no known negative in the test split is left out of the
    means it is undefined for (``pipeline.metrics``); the line says how many each mean covers.
    """
    seen: dict[tuple, list[str]] = {}
    for s in summaries:
        covered, total = s.metrics.get("classes_covered"), s.metrics.get("n_classes")
        if covered and total:
            key = (total, covered.get("map"), covered.get("roc_auc"), covered.get("macro_f1"))
            seen.setdefault(key, []).append(s.label)
    lines = []
    for (total, ap, auc, f1), labels in seen.items():
        who = "" if len(seen) == 1 else f" ({', '.join(labels)})"
        lines.append(f"Classes in each test mean{who}: mAP {ap} of {total}, ROC-AUC {auc} of {total}, macro F1 "
                     f"{f1} of {total} (a class without a known positive or negative there is left out).")
    return [""] + lines if lines else []


def cost_lines(cost: Mapping[str, Any], summaries: Sequence[RunSummary]) -> list[str]:
    """The cost table of ``benchmarks/bench_cost.py``'s JSON with each model's test mAP in this report.

    A student's cell lists every run of it (``0.547 (EAsT-KD)``), a teacher's its probe's.
    """
    test_map: dict[str, list[str]] = {}
    for s in summaries:
        model = s.metrics.get("student") if not s.name.startswith("probe-") else s.name.removeprefix("probe-")
        if model and s.metrics.get("map") is not None:
            label = "probe" if s.name.startswith("probe-") else s.label
            test_map.setdefault(str(model), []).append(f"{s.metrics['map']:.3f} ({label})")
    machine = cost.get("machine", {})
    return [
        "## Cost: each student next to the teacher it replaces", "",
        cost_table(cost, {k: ", ".join(v) for k, v in test_map.items()}), "",
        f"Measured side by side by `{cost.get('command', 'benchmarks/bench_cost.py')}` "
        f"(`benchmarks/results/cost.json`; {machine.get('cpus', '?')} CPUs, load average "
        f"{_fmt((machine.get('load_average_before') or [None])[0], '.1f')} before): tagging one 10-s clip, "
        "CPU time at 1 thread as the median of repeats; GFLOPs counted by `FlopCounterMode` (an STFT by "
        "FFT is not counted); real-time factor = time / audio length. A teacher's row is the teacher "
        "with its linear probe, run as `pipeline extract` + probe run it.", "",
    ]


def write_markdown(summaries: list[RunSummary], plots: list[Path], out: Path,
                   judgements: Sequence[Judgement] = (), cost: Mapping[str, Any] | None = None) -> Path:
    """Write ``report.md``: the single-run table, the cost table (when ``cost``, the JSON of
    ``benchmarks/bench_cost.py``), the table over seeds (when ``judgements``), the plots."""
    lines = [
        "# EAsT pipeline report",
        "",
        "Test-split results of the teacher's linear probe, the student trained without a teacher, and the",
        "student regularised by the cached teacher embeddings (EAsT-Final) plus label KD from the probe (EAsT-KD).",
        "This table shows one run per variant (the lowest seed); the table over seeds below judges them.",
        "",
        "| model | test mAP | ROC-AUC | macro F1 | parameters | lambda | seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        m = s.metrics
        params = m.get("parameters")
        lines.append(
            f"| {s.label} | {_fmt(m.get('map'), '.4f')} | {_fmt(m.get('roc_auc'), '.4f')} | "
            f"{_fmt(m.get('f1_macro'), '.4f')} | {_fmt(params, ',')} | "
            f"{_fmt(m.get('lam'), '.2f')} | {_fmt(m.get('seed'), 'd')} |"
        )
    baseline = next((s for s in summaries if is_reference(s.name)), None)
    if baseline is not None and baseline.metrics.get("map") is not None:
        lines += ["", "Difference to the baseline (test mAP):", ""]
        for s in summaries:
            if _is_distilled(s.name) and s.metrics.get("map") is not None:
                lines.append(f"- {s.label}: {s.metrics['map'] - baseline.metrics['map']:+.4f}")
    lines += coverage_lines(summaries)
    lines += ["", "The probe row's parameters count only the linear layer; the teacher itself is not needed "
              "at inference.", ""]
    if cost:
        lines += cost_lines(cost, summaries)
    if judgements:
        lines += judged_rows(judgements)
    for path in plots:
        lines += [f"![{path.stem}]({path.name})", ""]
    target = out / "report.md"
    write_atomic(target, "\n".join(lines) + "\n")
    return target


def _is_distilled(name: str) -> bool:
    """A run of a variant trained on the labels and a teacher (listed against the baseline)."""
    return name in VARIANTS and VARIANTS[name].uses_teacher and VARIANTS[name].label_term
