"""The report judges seeds: grouping by configuration, pairing by seed with the baseline, the stated rule.

Fixture runs are written here with test mAP values chosen so that every number is computed by hand
(the comments show the arithmetic); nothing is trained.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, strategies as st

from pipeline.config import Params
from pipeline.judging import (BETTER, NO_BASELINE, REFERENCE, RULE, SAME, WORSE, Judgement, group_runs,
                              judge, judge_folder, paired_differences, read_runs, summarize, verdict)

# name -> (variant, settings that differ from the shared ones, {seed: (test mAP, ROC-AUC)})
RUNS: dict[str, tuple[str, dict[str, Any], dict[int, tuple[float, float]]]] = {
    "b12": ("baseline", {}, {0: (0.50, 0.80), 1: (0.52, 0.82), 2: (0.48, 0.78)}),
    "b24": ("baseline", {"epochs": 24}, {0: (0.55, 0.85), 1: (0.56, 0.86), 2: (0.54, 0.84)}),
    "kd": ("east-kd", {}, {0: (0.53, 0.81), 1: (0.54, 0.83), 2: (0.52, 0.79)}),
    "kd-openl3": ("east-kd", {"teacher": "openl3"}, {0: (0.60, 0.9), 1: (0.64, 0.9)}),
    "final": ("east-final", {}, {0: (0.52, 0.8), 1: (0.51, 0.8), 2: (0.485, 0.8)}),
    "final-lam": ("east-final", {"lam": 0.9}, {0: (0.45, 0.7), 1: (0.48, 0.7), 2: (0.42, 0.7), 3: (0.40, 0.7)}),
    "final-cp": ("east-final", {"student": "cp_resnet"}, {0: (0.30, 0.6)}),
}
LABELS = {
    "b12": "Baseline (no teacher) (distill.epochs=12)", "b24": "Baseline (no teacher) (distill.epochs=24)",
    "kd": "EAsT-KD (teacher=musicnn)", "kd-openl3": "EAsT-KD (teacher=openl3)",
    "final": "EAsT-Final (distill.lam=0.3, student=mobile_fcn)",
    "final-lam": "EAsT-Final (distill.lam=0.9, student=mobile_fcn)",
    "final-cp": "EAsT-Final (distill.lam=0.3, student=cp_resnet)",
}
SE_OF_STD_001 = 0.01 / math.sqrt(3)  # 0.0057735: a sample std of 0.01 over 3 pairs


def _config(variant: str, seed: int, changes: dict[str, Any]) -> dict[str, Any]:
    """A config.json as stages/distill.py writes it (plus a runtime key old runs carried)."""
    student = changes.get("student", "mobile_fcn")
    teacher = changes.get("teacher", "musicnn")
    distill = {"student": student, "teacher": teacher, "variant": variant, "lam": changes.get("lam", 0.3),
               "epochs": changes.get("epochs", 12), "seed": seed, "runs_root": f"runs{seed}",
               "device": "cuda" if seed == 1 else "cpu"}  # runs_root and device never split a configuration
    return {"student": student, "student_settings": {"dropout": 0.2}, "n_classes": 4,
            "classes": ["a", "b", "c", "d"], "sample_rate": 16000, "clip_seconds": 5.0,
            "teacher": None if variant == "baseline" else teacher, "variant": variant, "distill": distill,
            "manifests": "data_manifests/demo", "audio_root": "data/demo"}


def write_run(root: Path, folder: str, variant: str, seed: int, changes: dict[str, Any], value: float,
              roc: float, mtime: float | None = None) -> Path:
    """One evaluated run folder (config.json, metrics.json, eval-test.json)."""
    path = root / folder
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(_config(variant, seed, changes)))
    lam = 0.0 if variant == "baseline" else changes.get("lam", 0.3)
    (path / "metrics.json").write_text(json.dumps({"seed": seed, "variant": variant, "lam": lam}))
    (path / "eval-test.json").write_text(json.dumps({"map": value, "roc_auc": roc, "f1_macro": 0.3}))
    if mtime is not None:
        os.utime(path / "eval-test.json", (mtime, mtime))
    return path


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for name, (variant, changes, values) in RUNS.items():
        for seed, (value, roc) in values.items():
            write_run(root, f"{name}-{seed}", variant, seed, changes, value, roc)
    # an older run of kd, seed 0 (as dvc.yaml named runs before seeds): ignored, and said so
    write_run(root, "east-kd", "east-kd", 0, {}, 0.99, 0.99, mtime=1_000_000.0)
    (root / "probe-musicnn").mkdir()  # a probe: no config.json, not a student run
    (root / "probe-musicnn" / "metrics.json").write_text(json.dumps({"test_map": 0.67, "test_roc_auc": 0.9}))
    (root / "not-evaluated").mkdir()
    (root / "not-evaluated" / "config.json").write_text(json.dumps(_config("baseline", 5, {})))
    return root


def _by_label(judgements: list[Judgement]) -> dict[str, Judgement]:
    return {j.configuration.label: j for j in judgements}


def test_runs_are_grouped_by_configuration_without_seed(runs: Path) -> None:
    configurations = group_runs(read_runs(runs))
    assert [c.label for c in configurations] == [
        LABELS["b12"], LABELS["b24"], LABELS["final-cp"], LABELS["final"], LABELS["final-lam"],
        LABELS["kd"], LABELS["kd-openl3"]]
    kd = next(c for c in configurations if c.label == LABELS["kd"])
    assert [r.folder.name for r in kd.runs] == ["kd-0", "kd-1", "kd-2"]  # seed 1 ran on cuda: same configuration
    assert [p.name for p in kd.duplicates] == ["east-kd"]  # the older run of seed 0
    assert sum(len(c.runs) for c in configurations) == 3 + 3 + 3 + 2 + 3 + 4 + 1


def test_mean_std_paired_differences_and_verdicts(runs: Path) -> None:
    judged = _by_label(judge_folder(runs))
    # baseline (epochs 12): mAP 0.50, 0.52, 0.48 -> mean 0.50, deviations 0, +0.02, -0.02,
    # sample variance (0 + 4e-4 + 4e-4) / 2 = 4e-4, std 0.02; ROC-AUC 0.80 ± 0.02 the same way
    base = judged[LABELS["b12"]]
    assert (base.map.mean, base.map.std, base.map.n) == pytest.approx((0.50, 0.02, 3))
    assert (base.roc_auc.mean, base.roc_auc.std) == pytest.approx((0.80, 0.02))
    assert base.verdict == REFERENCE and base.paired is None

    # EAsT-KD (musicnn): diffs +0.03, +0.02, +0.04 -> mean 0.03, std 0.01, se 0.01 / sqrt(3) = 0.0057735;
    # 0.03 > 2 * 0.0057735 = 0.011547 with n = 3 -> better
    kd = judged[LABELS["kd"]]
    assert kd.baseline is not None and kd.baseline.label == LABELS["b12"]  # shares epochs 12, b24 does not
    assert kd.candidates == 2 and kd.total - kd.shared == 3  # differs in variant, distill.variant, teacher
    assert kd.paired is not None and kd.paired.seeds == (0, 1, 2)
    assert kd.paired.differences == pytest.approx((0.03, 0.02, 0.04))
    assert (kd.paired.mean, kd.paired.std, kd.paired.se) == pytest.approx((0.03, 0.01, 0.0057735), abs=1e-7)
    assert kd.map.mean == pytest.approx(0.53) and kd.verdict == BETTER

    # EAsT-Final (lam 0.3): diffs +0.02, -0.01, +0.005 -> mean 0.005, deviations +0.015, -0.015, 0,
    # variance 2 * 2.25e-4 / 2 = 2.25e-4, std 0.015, se 0.015 / sqrt(3) = 0.0086603; |0.005| < 0.017321
    final = judged[LABELS["final"]]
    assert final.paired is not None
    assert (final.paired.mean, final.paired.std, final.paired.se) == pytest.approx((0.005, 0.015, 0.0086603), abs=1e-7)
    assert final.verdict == SAME

    # EAsT-Final (lam 0.9): seeds 0-2 diffs -0.05, -0.04, -0.06 -> mean -0.05, std 0.01, se 0.0057735;
    # -0.05 < -0.011547 -> worse. Seed 3 has no baseline run: left out (n = 3, not 4) and listed
    worse = judged[LABELS["final-lam"]]
    assert worse.paired is not None and worse.paired.unpaired == (3,) and worse.paired.n == 3
    assert (worse.paired.mean, worse.paired.se) == pytest.approx((-0.05, SE_OF_STD_001), abs=1e-7)
    assert worse.map.n == 4 and worse.map.mean == pytest.approx((0.45 + 0.48 + 0.42 + 0.40) / 4)
    assert worse.verdict == WORSE

    # EAsT-KD (openl3): diffs +0.10, +0.12 -> mean 0.11, std 0.0141421, se 0.01; large, but n = 2 < 3
    two = judged[LABELS["kd-openl3"]]
    assert two.paired is not None and two.paired.n == 2
    assert (two.paired.mean, two.paired.std, two.paired.se) == pytest.approx((0.11, 0.0141421, 0.01), abs=1e-7)
    assert two.verdict == SAME

    # cp_resnet student: no baseline with that student
    lonely = judged[LABELS["final-cp"]]
    assert lonely.baseline is None and lonely.verdict == NO_BASELINE and lonely.map.std is None


def test_report_shows_the_rule_the_rows_the_plot_and_json(runs: Path, tmp_path: Path) -> None:
    from stages.report import run

    out = tmp_path / "report"
    text = run(Params(), out=str(out), runs_root=str(runs)).read_text()
    assert f"Rule: {RULE}" in text and "exceeds 2 standard errors" in RULE
    assert (f"| {LABELS['kd']} | 3 | 0, 1, 2 | 0.5300 ± 0.0100 | 0.8100 ± 0.0200 | {LABELS['b12']} | "
            "+0.0300, +0.0200, +0.0400 | +0.0300 ± 0.0058 | better |") in text
    # lam 0.9: mean 1.75 / 4 = 0.4375; squared deviations 0.0125², 0.0425², 0.0175², 0.0375² sum to 0.003675,
    # / 3 = 0.001225, std 0.035
    assert f"| {LABELS['final-lam']} | 4 | 0, 1, 2, 3 | 0.4375 ± 0.0350 | " in text
    assert "-0.0500, -0.0400, -0.0600 | -0.0500 ± 0.0058 | worse |" in text
    assert f"| {LABELS['kd-openl3']} | 2 | 0, 1 | 0.6200 ± 0.0283 | 0.9000 ± 0.0000 | " in text
    assert "+0.1000, +0.1200 | +0.1100 ± 0.0100 | not distinguishable |" in text
    assert f"| {LABELS['final-cp']} | 1 | 0 | 0.3000 | 0.6000 | - | n/a | n/a | no baseline |" in text
    assert f"- {LABELS['final-lam']}: the baseline has no run of seed 3; left out of the pairs (3 pairs)." in text
    assert f"- {LABELS['kd']}: 2 baselines qualified; compared with {LABELS['b12']}" in text
    assert "ignored older runs of a seed already covered: east-kd." in text
    assert (out / "seeds.png").stat().st_size > 5_000 and "![seeds](seeds.png)" in text
    judged = json.loads((out / "judged.json").read_text())
    assert judged["rule"] == RULE and "[judged.json](judged.json)" in text
    rows = {row["label"]: row for row in judged["configurations"]}
    assert rows[LABELS["kd"]]["verdict"] == BETTER and rows[LABELS["kd"]]["paired"]["n"] == 3
    assert rows[LABELS["final-lam"]]["paired"]["unpaired_seeds"] == [3]
    assert "distill.seed" not in rows[LABELS["kd"]]["settings"]
    assert "distill.device" not in rows[LABELS["kd"]]["settings"]


def test_single_run_table_takes_the_lowest_seed(tmp_path: Path) -> None:
    from pipeline.report import collect_runs

    root = tmp_path / "runs"
    for seed, value in ((2, 0.2), (0, 0.5), (1, 0.1)):
        write_run(root, f"east-kd-{seed}", "east-kd", seed, {}, value, 0.7)
    (summary,) = collect_runs(root, ["east-kd", "baseline"], [])
    assert (summary.name, summary.metrics["map"], summary.metrics["seed"]) == ("east-kd", 0.5, 0)


def test_one_seed_each_is_judged_not_distinguishable(tmp_path: Path) -> None:
    """The demo default (seeds: [0]): one pair, never better or worse."""
    root = tmp_path / "runs"
    write_run(root, "baseline-0", "baseline", 0, {}, 0.40, 0.7)
    write_run(root, "east-kd-0", "east-kd", 0, {}, 0.60, 0.8)
    judged = judge(group_runs(read_runs(root)))
    assert [j.verdict for j in judged] == [REFERENCE, SAME]
    assert judged[1].paired is not None and judged[1].paired.differences == pytest.approx((0.2,))
    assert judged[1].paired.std is None and judged[1].map.std is None


def test_summaries_by_hand() -> None:
    stats = summarize([1.0, 2.0, 4.0])  # mean 7/3, deviations -4/3, -1/3, 5/3: variance (16+1+25)/9/2 = 7/3
    assert (stats.mean, stats.std, stats.n) == pytest.approx((7 / 3, math.sqrt(7 / 3), 3))
    assert summarize([]).mean is None and summarize([0.5]).std is None
    # equal differences: std 0, se 0, any positive mean is better
    assert verdict(paired_differences({0: 0.6, 1: 0.6, 2: 0.6}, {0: 0.5, 1: 0.5, 2: 0.5})) == BETTER
    assert verdict(paired_differences({0: 0.5, 1: 0.5, 2: 0.5}, {0: 0.5, 1: 0.5, 2: 0.5})) == SAME


_values = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(st.dictionaries(st.integers(0, 9), st.tuples(_values, _values), min_size=0, max_size=8))
def test_swapping_the_arms_flips_the_verdict(pairs: dict[int, tuple[float, float]]) -> None:
    a = {seed: x for seed, (x, _) in pairs.items()}
    b = {seed: y for seed, (_, y) in pairs.items()}
    forward, backward = verdict(paired_differences(a, b)), verdict(paired_differences(b, a))
    assert backward == {BETTER: WORSE, WORSE: BETTER, SAME: SAME}[forward]
    if len(pairs) < 3:
        assert forward == SAME


ROOT = Path(__file__).resolve().parents[1]


def test_params_seeds_default_and_override() -> None:
    from pipeline.config import load_params

    assert load_params(ROOT / "params.yaml").seeds == (0,)  # the demo: one seed, three runs
    assert load_params(ROOT / "params.yaml", {"seeds": [0, 1, 2]}).seeds == (0, 1, 2)


@pytest.mark.parametrize("seeds, message", [
    ([], r"seeds must be a non-empty list .* got \[\]"),
    ([0, 1, 1], r"distinct .* got \[0, 1, 1\]; e.g. seeds: \[0, 1, 2\]"),
    ([-1], r">= 0 .* got \[-1\]"),
    ([0.5], r"seeds\[0\] must be a whole number, got 0.5"),
    (["one"], r"seeds\[0\] must be a number, got 'one'"),
])
def test_bad_seeds_are_one_clear_error(seeds: list[Any], message: str) -> None:
    from pipeline.config import load_params
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        load_params(ROOT / "params.yaml", {"seeds": seeds})


def test_seeds_plot_axis_does_not_exaggerate_a_small_gap() -> None:
    """n = 1 runs 0.544 and 0.562: the axis spans at least 0.2 mAP, so 0.018 is under a tenth of it."""
    from pipeline.report import MIN_MAP_SPAN, seeds_axis_limits

    low, high = seeds_axis_limits([0.544, 0.562])
    assert high - low >= MIN_MAP_SPAN and low < 0.544 and high > 0.562
    assert seeds_axis_limits([0.01, 0.02])[0] == 0.0  # stays inside 0..1
    assert seeds_axis_limits([0.98, 0.99])[1] == 1.0
    low, high = seeds_axis_limits([0.2, 0.7])  # a wide spread keeps its own range (plus a margin)
    assert low < 0.2 and high > 0.7 and high - low < 0.55
