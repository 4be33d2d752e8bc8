"""Classes undefined for a metric (no known positive, or no known negative): prepare warns about both,
evaluate and the report say how many classes each mean covers."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from pipeline.datasets.base import coverage_warnings, label_stats
from pipeline.manifests import Clip
from pipeline.report import RunSummary, coverage_lines
from tests import stage2_fixtures
from tests.stage2_fixtures import TinyPipeline, invoke

tiny_pipeline = stage2_fixtures.tiny_pipeline


def _clip(i: int, labels: tuple[int, ...], known: tuple[bool, ...]) -> Clip:
    return Clip(f"c{i}", f"c{i}.wav", 1.0, 16000, labels, known)


def test_prepare_warns_about_classes_without_positives_and_without_negatives() -> None:
    classes = ["piano", "violin", "drums", "flute"]
    clips = [_clip(0, (1, 0, 1, 0), (True, True, True, False)),
             _clip(1, (1, 0, 0, 0), (True, True, True, False))]
    warnings = coverage_warnings({"test": label_stats(clips, 4)}, classes)
    assert any("'test' has no known negative for: piano " in w and "left out" in w for w in warnings), warnings
    assert any("'test' has no known positive for: violin " in w for w in warnings), warnings
    assert any("'test' has no known label for: flute " in w for w in warnings), warnings
    assert not any("drums" in w for w in warnings)


def test_the_report_says_how_many_classes_each_mean_covers() -> None:
    covered = {"map": 18, "roc_auc": 18, "binary_f1": 19, "macro_f1": 17}
    runs = [RunSummary(name, name, {"map": 0.5, "classes_covered": covered, "n_classes": 20})
            for name in ("baseline", "east-kd")]
    assert coverage_lines(runs) == ["", "Classes in each test mean: mAP 18 of 20, ROC-AUC 18 of 20, macro F1 17 of 20 "
                                        "(a class without a known positive or negative there is left out)."]
    assert coverage_lines([RunSummary("old", "old", {"map": 0.5})]) == []  # scored before coverage was recorded


def test_evaluate_says_how_many_classes_its_means_cover(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_pipeline.run_dir("baseline"), run)
    result = invoke(tiny_pipeline.params, "evaluate", str(run))
    assert result.exit_code == 0, result.output
    scored = json.loads((run / "eval-test.json").read_text())
    covered = scored["classes_covered"]
    assert scored["n_classes"] == 20 and 0 < covered["map"] < 20  # 8 test clips cannot define 20 classes
    assert f"mAP over {covered['map']} of 20 classes" in result.stdout
