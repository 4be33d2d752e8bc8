"""Judging runs over seeds: group runs that differ only in seed, pair them with a baseline by seed, give a verdict.

A *configuration* is a run's ``config.json`` without its seed (``distill.seed``), its output
folder (``distill.runs_root``) and the runtime settings of :data:`pipeline.config.RUNTIME_KEYS`
(device, threads, workers, loader: how fast, not what). Runs of one configuration are its seeds.

Each configuration is compared with a *baseline*: a configuration of variant ``baseline`` with the
same data and student settings (:data:`MATCH_KEYS`); when several qualify, the one sharing the most
settings (ties: the first by label). The comparison is the per-seed paired difference of test mAP
(run of seed s minus baseline run of seed s; seeds the baseline lacks are left out and listed), and
the verdict follows :data:`RULE`. ``pipeline report`` and the benchmarks use these functions.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np

from pipeline.config import RUNTIME_KEYS
from pipeline.variants import is_reference, variant_label

#: Flattened ``config.json`` keys that are not part of a configuration: the seed, where the run was
#: written, and the runtime settings (already left out of new ``config.json`` files).
NOT_CONFIGURATION = frozenset({"distill.seed", "distill.runs_root"}
                              | {k for k in RUNTIME_KEYS if k.startswith("distill.")})
#: Settings (and their sub-keys) a baseline must share with the configuration it is compared with.
MATCH_KEYS = ("student", "student_settings", "n_classes", "classes", "sample_rate", "clip_seconds",
              "manifests", "audio_root")
BETTER, WORSE, SAME = "better", "worse", "not distinguishable"
#: Verdicts of configurations that are not compared: baselines, and those without a baseline.
REFERENCE, NO_BASELINE = "reference (baseline)", "no baseline"
MIN_PAIRS = 3
STANDARD_ERRORS = 2.0
RULE = (f'"{BETTER}" when the mean of the per-seed paired differences of test mAP (run minus baseline run of '
        f"the same seed) exceeds {STANDARD_ERRORS:g} standard errors (sample std of the differences / sqrt(n)) "
        f'with n >= {MIN_PAIRS} pairs; "{WORSE}" when it is below minus {STANDARD_ERRORS:g} standard errors; '
        f'otherwise "{SAME}".')


@dataclass(frozen=True)
class Run:
    """One evaluated run folder.

    Attributes:
        folder: the run folder (holds ``config.json`` and ``eval-test.json``).
        seed: ``distill.seed`` of its ``config.json`` (else ``metrics.json``'s seed); None when unknown.
        settings: its configuration: flattened ``config.json`` (``"distill.lam"``) without
            :data:`NOT_CONFIGURATION`; lists become tuples.
        map: test macro mAP (``eval-test.json``'s ``map``), 0..1.
        roc_auc: test macro ROC-AUC, or None when not recorded.
    """

    folder: Path
    seed: Optional[int]
    settings: Mapping[str, Any]
    map: float
    roc_auc: Optional[float] = None


@dataclass
class Configuration:
    """The runs that differ only in seed.

    Attributes:
        key: 10 hex digits identifying the settings.
        variant: the ``variant`` setting (``baseline``, ``east-final``, ``east-kd``).
        settings: the shared configuration (see :class:`Run`).
        runs: one run per seed, sorted by seed (runs without a seed last).
        label: variant label plus the settings that differ between configurations of the same variant.
        duplicates: older runs of a seed that another run of this configuration already covers (ignored).
    """

    key: str
    variant: str
    settings: Mapping[str, Any]
    runs: list[Run] = field(default_factory=list)
    label: str = ""
    duplicates: list[Path] = field(default_factory=list)

    def by_seed(self, metric: str = "map") -> dict[int, float]:
        """Seed -> ``metric`` (``map`` or ``roc_auc``) of the runs with a known seed and value."""
        return {r.seed: getattr(r, metric) for r in self.runs if r.seed is not None and getattr(r, metric) is not None}


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof=1) of ``n`` values; std is None for n < 2, mean for n = 0."""

    mean: Optional[float]
    std: Optional[float]
    n: int


@dataclass(frozen=True)
class PairedDifferences:
    """Per-seed differences ``run[seed] - baseline[seed]`` over the seeds both have.

    Attributes:
        seeds: the paired seeds, ascending.
        differences: one difference per paired seed.
        mean, std, se: their mean, sample std (ddof=1) and standard error ``std / sqrt(n)``;
            None where undefined (no pair; std and se for fewer than two pairs).
        unpaired: seeds of the run side without a baseline run (left out).
    """

    seeds: tuple[int, ...]
    differences: tuple[float, ...]
    mean: Optional[float]
    std: Optional[float]
    se: Optional[float]
    unpaired: tuple[int, ...] = ()

    @property
    def n(self) -> int:
        """Number of pairs."""
        return len(self.differences)


def summarize(values: Sequence[float]) -> Summary:
    """Mean and sample std (ddof=1) of ``values``."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean()) if data.size else None
    std = float(data.std(ddof=1)) if data.size >= 2 else None
    return Summary(mean, std, int(data.size))


def paired_differences(runs: Mapping[int, float], baseline: Mapping[int, float]) -> PairedDifferences:
    """Pair ``runs`` and ``baseline`` (seed -> metric) by seed; seeds the baseline lacks are listed, not used."""
    seeds = tuple(sorted(set(runs) & set(baseline)))
    differences = tuple(float(runs[s]) - float(baseline[s]) for s in seeds)
    stats = summarize(differences)
    se = stats.std / math.sqrt(stats.n) if stats.std is not None else None
    return PairedDifferences(seeds, differences, stats.mean, stats.std, se, tuple(sorted(set(runs) - set(baseline))))


def verdict(paired: PairedDifferences) -> str:
    """:data:`BETTER`, :data:`WORSE` or :data:`SAME` by :data:`RULE`."""
    if paired.n < MIN_PAIRS or paired.mean is None or paired.se is None:
        return SAME
    if paired.mean > STANDARD_ERRORS * paired.se:
        return BETTER
    if paired.mean < -STANDARD_ERRORS * paired.se:
        return WORSE
    return SAME


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"distill": {"lam": 0.3}}`` -> ``{"distill.lam": 0.3}``; lists become tuples (hashable)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, dotted + "."))
        else:
            out[dotted] = tuple(value) if isinstance(value, list) else value
    return out


def configuration_settings(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's configuration: its flattened ``config.json`` without :data:`NOT_CONFIGURATION`."""
    return {k: v for k, v in flatten(config).items() if k not in NOT_CONFIGURATION}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_runs(runs_root: Path) -> list[Run]:
    """Every folder directly under ``runs_root`` with ``config.json`` and an ``eval-test.json`` holding ``map``.

    Folders without them (probes, runs not evaluated yet, unreadable JSON) are left out.
    """
    runs = []
    for result in sorted(Path(runs_root).glob("*/eval-test.json")):
        config, metrics = _read_json(result.parent / "config.json"), _read_json(result)
        if not config or not isinstance(metrics.get("map"), (int, float)):
            continue
        seed = config.get("distill", {}).get("seed", _read_json(result.parent / "metrics.json").get("seed"))
        roc = metrics.get("roc_auc")
        runs.append(Run(result.parent, seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
                        configuration_settings(config), float(metrics["map"]),
                        float(roc) if isinstance(roc, (int, float)) else None))
    return runs


def settings_key(settings: Mapping[str, Any]) -> str:
    """10 hex digits identifying ``settings`` (sha256 of their sorted JSON)."""
    text = json.dumps(dict(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def group_runs(runs: Iterable[Run]) -> list[Configuration]:
    """Group ``runs`` into configurations (same settings, any seed), labelled, sorted by label.

    Of several runs of one configuration and seed the newest (``eval-test.json`` modification time)
    is kept; the others are listed in :attr:`Configuration.duplicates`.
    """
    groups: dict[str, Configuration] = {}
    newest_first = sorted(runs, key=lambda r: -_mtime(r.folder / "eval-test.json"))
    for run in newest_first:
        key = settings_key(run.settings)
        group = groups.setdefault(key, Configuration(key, str(run.settings.get("variant")), run.settings))
        if run.seed is not None and run.seed in group.by_seed():
            group.duplicates.append(run.folder)
        else:
            group.runs.append(run)
    configurations = list(groups.values())
    for group in configurations:
        group.runs.sort(key=lambda r: (r.seed is None, r.seed or 0, r.folder.name))
        group.label = _label(group, configurations)
    return sorted(configurations, key=lambda c: (not is_reference(c.variant), c.label, c.key))


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _label(group: Configuration, configurations: list[Configuration]) -> str:
    """Variant label plus the settings that differ between configurations of the same variant
    (``distill.teacher`` is left out where ``teacher`` already shows, and so on)."""
    same = [c.settings for c in configurations if c.variant == group.variant]
    keys = sorted({k for s in same for k in s} - {"variant", "distill.variant"})
    varying = [k for k in keys if len({json.dumps(s.get(k), default=str) for s in same}) > 1]
    varying = [k for k in varying if not (k.startswith("distill.") and k.split(".", 1)[1] in varying)]
    shown = ", ".join(f"{k}={_short(group.settings.get(k))}" for k in varying)
    name = variant_label(group.variant)
    return f"{name} ({shown})" if shown else name


def _short(value: Any, limit: int = 40) -> str:
    text = str(list(value)) if isinstance(value, tuple) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shared_settings(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """How many keys ``a`` and ``b`` both hold with equal values."""
    return sum(1 for k in set(a) & set(b) if a[k] == b[k])


def _same_data_and_student(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    keys = {k for k in set(a) | set(b) if any(k == m or k.startswith(m + ".") for m in MATCH_KEYS)}
    return all(a.get(k) == b.get(k) for k in keys)


def choose_baseline(configuration: Configuration,
                    configurations: Sequence[Configuration]) -> tuple[Optional[Configuration], list[Configuration]]:
    """The baseline of ``configuration`` and every baseline that qualified (best first).

    A baseline qualifies when its variant is ``baseline`` and it shares every :data:`MATCH_KEYS`
    setting with ``configuration``; the chosen one shares the most settings (ties: first by label).
    Baselines themselves get none: ``(None, [])``.
    """
    if is_reference(configuration.variant):
        return None, []
    qualified = [c for c in configurations
                 if is_reference(c.variant) and _same_data_and_student(c.settings, configuration.settings)]
    qualified.sort(key=lambda c: (-shared_settings(c.settings, configuration.settings), c.label, c.key))
    return (qualified[0] if qualified else None), qualified


@dataclass(frozen=True)
class Judgement:
    """One configuration judged against its baseline.

    Attributes:
        configuration: the configuration and its runs.
        map, roc_auc: mean ± sample std of test mAP / ROC-AUC over its seeds.
        baseline: the chosen baseline configuration, or None (a baseline itself, or none qualified).
        candidates: how many baselines qualified.
        shared: settings the chosen baseline shares with it, of ``total`` (their union).
        paired: per-seed paired differences of test mAP to the baseline, or None without a baseline.
        verdict: :data:`BETTER`, :data:`WORSE`, :data:`SAME`, :data:`REFERENCE` or :data:`NO_BASELINE`.
    """

    configuration: Configuration
    map: Summary
    roc_auc: Summary
    baseline: Optional[Configuration]
    candidates: int
    shared: int
    total: int
    paired: Optional[PairedDifferences]
    verdict: str


def judge(configurations: Sequence[Configuration]) -> list[Judgement]:
    """Summarise each configuration, pair it with its baseline by seed and give the verdict of :data:`RULE`."""
    out = []
    for config in configurations:
        baseline, qualified = choose_baseline(config, configurations)
        paired = paired_differences(config.by_seed(), baseline.by_seed()) if baseline else None
        if paired is not None:
            result = verdict(paired)
        else:
            result = REFERENCE if is_reference(config.variant) else NO_BASELINE
        other = baseline.settings if baseline else {}
        out.append(Judgement(
            config, summarize([r.map for r in config.runs]),
            summarize([r.roc_auc for r in config.runs if r.roc_auc is not None]),
            baseline, len(qualified), shared_settings(config.settings, other) if baseline else 0,
            len(set(config.settings) | set(other)) if baseline else 0, paired, result))
    return out


def judge_folder(runs_root: Path) -> list[Judgement]:
    """:func:`judge` of every evaluated run under ``runs_root`` (see :func:`read_runs`)."""
    return judge(group_runs(read_runs(runs_root)))


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def to_json(judgements: Sequence[Judgement]) -> dict[str, Any]:
    """The judged table as JSON-friendly data: ``{"rule", "metric", "configurations": [...]}``."""
    rows = []
    for j in judgements:
        c = j.configuration
        rows.append({
            "id": c.key, "label": c.label, "variant": c.variant,
            "runs": [{"folder": r.folder.name, "seed": r.seed, "map": r.map, "roc_auc": r.roc_auc} for r in c.runs],
            "ignored_duplicates": [p.name for p in c.duplicates],
            "map": vars(j.map), "roc_auc": vars(j.roc_auc),
            "baseline": None if j.baseline is None else {
                "id": j.baseline.key, "label": j.baseline.label, "qualified": j.candidates,
                "shared_settings": j.shared, "settings": j.total},
            "paired": None if j.paired is None else {
                "seeds": list(j.paired.seeds), "differences": list(j.paired.differences), "n": j.paired.n,
                "mean": j.paired.mean, "std": j.paired.std, "se": j.paired.se,
                "unpaired_seeds": list(j.paired.unpaired)},
            "verdict": j.verdict,
            "settings": {k: _plain(v) for k, v in sorted(c.settings.items())},
        })
    return {"rule": RULE, "metric": "test macro mAP", "configurations": rows}
