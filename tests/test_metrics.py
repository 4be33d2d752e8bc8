"""Masked multi-label metrics against scikit-learn (docs/method.md, "Training and evaluation")."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from pipeline.errors import TrainingError
from pipeline.metrics import average_precision, evaluate_predictions, roc_auc


def _data(seed: int, n: int = 300, c: int = 12, decimals: int | None = 2) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < rng.uniform(0.1, 0.6, c)).astype(np.float32)
    probs = np.clip(0.35 * labels + rng.random((n, c)) * 0.65, 0, 1)
    if decimals is not None:
        probs = np.round(probs, decimals)  # many ties
    known = rng.random((n, c)) > 0.3
    return probs, labels, known


@pytest.mark.parametrize("seed,decimals", [(0, 2), (1, 1), (2, None)])
def test_ap_and_auc_match_sklearn_with_a_mask(seed: int, decimals: int | None) -> None:
    probs, labels, known = _data(seed, decimals=decimals)
    metrics = evaluate_predictions(probs, labels, known)
    for c in range(probs.shape[1]):
        m = known[:, c]
        expected_ap = average_precision_score(labels[m, c], probs[m, c])
        assert metrics.per_class_ap[c] == pytest.approx(expected_ap, abs=1e-9)
        assert metrics.per_class_auc[c] == pytest.approx(roc_auc_score(labels[m, c], probs[m, c]), abs=1e-9)
    assert metrics.mAP == pytest.approx(np.mean(metrics.per_class_ap), abs=1e-12)
    assert metrics.skipped_ap == metrics.skipped_auc == 0


def test_small_random_cases_with_heavy_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(2, 40))
        scores = rng.integers(0, 4, n) / 4.0
        positive = rng.random(n) < 0.5
        if positive.all() or not positive.any():
            continue
        expected = average_precision_score(positive, scores)
        assert average_precision(scores, positive) == pytest.approx(expected, abs=1e-12)
        assert roc_auc(scores, positive) == pytest.approx(roc_auc_score(positive, scores), abs=1e-12)


def test_f1_at_threshold_matches_sklearn() -> None:
    probs, labels, known = _data(4)
    metrics = evaluate_predictions(probs, labels, known, threshold=0.4)
    pos, neg = [], []
    for c in range(probs.shape[1]):
        m = known[:, c]
        predicted = probs[m, c] > 0.4
        pos.append(f1_score(labels[m, c], predicted, zero_division=0))
        neg.append(f1_score(labels[m, c], predicted, pos_label=0, zero_division=0))
    np.testing.assert_allclose(metrics.per_class_f1, pos, atol=1e-12)
    np.testing.assert_allclose(metrics.per_class_f1_neg, neg, atol=1e-12)
    assert metrics.binary_f1 == pytest.approx(np.mean(pos))
    assert metrics.macro_f1 == pytest.approx(np.mean((np.array(pos) + np.array(neg)) / 2))
    assert evaluate_predictions(probs, labels, known, threshold=0.9).binary_f1 != metrics.binary_f1


def test_unknown_entries_are_ignored() -> None:
    probs, labels, known = _data(5)
    changed = probs.copy()
    changed[~known] = 1.0 - changed[~known]
    flipped = labels.copy()
    flipped[~known] = 1 - flipped[~known]
    a = evaluate_predictions(probs, labels, known)
    b = evaluate_predictions(changed, flipped, known)
    assert (a.mAP, a.roc_auc, a.binary_f1, a.macro_f1) == (b.mAP, b.roc_auc, b.binary_f1, b.macro_f1)


def test_classes_without_positives_or_negatives_are_skipped_and_counted() -> None:
    probs, labels, known = _data(6, c=5)
    labels[:, 1] = 0  # no positive: no AP, no AUC, no positive-class F1
    labels[:, 3] = 1  # no negative: no AP (it would be 1.0 whatever the scores), no AUC, no negative-class F1
    known[:, 4] = False  # nothing known
    m = evaluate_predictions(probs, labels, known, class_names=list("abcde"))
    for c in (1, 3, 4):
        assert math.isnan(m.per_class_ap[c]) and math.isnan(m.per_class_auc[c])
    assert math.isnan(m.per_class_f1[1]) and not math.isnan(m.per_class_f1_neg[1])
    assert math.isnan(m.per_class_f1_neg[3]) and not math.isnan(m.per_class_f1[3])
    assert math.isnan(m.per_class_f1[4]) and math.isnan(m.per_class_f1_neg[4])
    assert (m.skipped_ap, m.skipped_auc) == (3, 3)
    assert m.mAP == pytest.approx(np.mean(m.per_class_ap[[0, 2]]))
    assert m.roc_auc == pytest.approx(np.mean(m.per_class_auc[[0, 2]]))
    assert m.covered == {"map": 2, "roc_auc": 2, "binary_f1": 3, "macro_f1": 2}
    assert m.coverage() == "mAP and ROC-AUC over 2 of 5 classes"
    summary = m.to_dict()
    assert summary["per_class"]["b"]["average_precision"] is None
    assert summary["per_class"]["d"]["average_precision"] is None and summary["per_class"]["d"]["positives"] > 0
    assert summary["classes_covered"]["map"] == 2 and summary["n_classes"] == 5


def test_a_class_without_negatives_no_longer_lifts_the_map_of_a_random_model() -> None:
    """The issue's case: a class whose known test labels are all positive scored AP 1.0 for any model."""
    rng = np.random.default_rng(3)
    labels = (rng.random((40, 4)) < 0.3).astype(np.float32)
    labels[:, 3] = 1.0  # every known label of class 3 is positive
    known = np.ones_like(labels, dtype=bool)
    for seed in range(3):  # whatever the model does
        probs = np.random.default_rng(seed).random((40, 4))
        m = evaluate_predictions(probs, labels, known)
        assert math.isnan(m.per_class_ap[3])
        assert m.mAP == pytest.approx(np.mean([average_precision_score(labels[:, c], probs[:, c])
                                               for c in range(3)]))


def test_numbers_are_unchanged_where_every_class_is_defined() -> None:
    """With a positive and a negative known in every class, the means are sklearn's macro means, as before."""
    probs, labels, known = _data(7, c=6)
    known[:] = True
    labels[0], labels[1] = 1, 0  # every class has both kinds
    m = evaluate_predictions(probs, labels, known, threshold=0.4)
    assert m.covered == {"map": 6, "roc_auc": 6, "binary_f1": 6, "macro_f1": 6}
    assert m.mAP == pytest.approx(average_precision_score(labels, probs, average="macro"), abs=1e-12)
    assert m.roc_auc == pytest.approx(roc_auc_score(labels, probs, average="macro"), abs=1e-12)
    predicted = probs > 0.4
    assert m.binary_f1 == pytest.approx(f1_score(labels, predicted, average="macro", zero_division=0), abs=1e-12)
    negative = np.mean([f1_score(1 - labels[:, c], ~predicted[:, c], zero_division=0) for c in range(6)])
    assert m.macro_f1 == pytest.approx((m.binary_f1 + negative) / 2, abs=1e-12)


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(TrainingError, match="one shape"):
        evaluate_predictions(np.zeros((3, 2)), np.zeros((3, 3)), np.ones((3, 3), bool))
    with pytest.raises(TrainingError, match="NaN"):
        evaluate_predictions(np.full((3, 2), np.nan), np.zeros((3, 2)), np.ones((3, 2), bool))


def test_threshold_is_strict_in_the_scores_precision() -> None:
    labels = np.array([[1.0], [0.0], [1.0], [0.0]])
    for dtype in (np.float32, np.float64):
        probs = np.array([[0.4], [0.4], [0.41], [0.1]], dtype=dtype)  # 0.4 sits on the threshold: negative
        m = evaluate_predictions(probs, labels, threshold=0.4)
        # predicted positive: only 0.41 -> tp 1, fp 0, fn 1
        assert m.per_class_f1[0] == pytest.approx(2 / 3)
