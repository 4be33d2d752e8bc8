"""Multi-label metrics with an unknown-label mask (docs/method.md, "Training and evaluation").

Per class, only the entries whose label is known count. Then:

- ``mAP``: macro mean of average precision (for MagnaTagATune this is the "PR-AUC");
- ``roc_auc``: macro mean of ROC-AUC;
- ``binary_f1``: macro mean of the positive-class F1 at ``probs > threshold`` (paper: 0.4);
- ``macro_f1``: macro mean of ``(F1_pos + F1_neg) / 2`` (the OpenMIC convention).

AP and AUC are scikit-learn's ``average_precision_score`` and ``roc_auc_score``; the mask, the
macro average and the skipping of undefined classes are ours. A class is undefined for a metric
when its known labels cannot tell a good model from a bad one, and is left out of that metric's
macro mean (NaN in the per-class arrays; :attr:`Metrics.covered` counts the classes each mean
covers):

- AP and ROC-AUC need a known positive *and* a known negative (with no negative, every ranking
  scores AP 1.0; with no positive, AP has no recall);
- the positive-class F1 needs a known positive, the negative-class F1 a known negative, and
  ``macro_f1`` both.

An F1 whose denominator is 0 otherwise is 0 (sklearn's and torchmetrics' default). Labels count
as positive when > 0.5 (mixup-soft targets are rounded).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from pipeline.errors import TrainingError


def average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """Average precision, ``sum_k (R_k - R_{k-1}) P_k`` over the distinct score thresholds.

    Args:
        scores: float (n,).
        positive: bool (n,) with at least one True.

    Returns:
        Average precision in [0, 1] (scikit-learn's ``average_precision_score``).
    """
    return float(average_precision_score(positive, scores))


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(tie).

    Args:
        scores: float (n,).
        positive: bool (n,) with at least one True and one False.

    Returns:
        ROC-AUC in [0, 1] (scikit-learn's ``roc_auc_score``).
    """
    return float(roc_auc_score(positive, scores))


def _f1(tp: int, fp: int, fn: int) -> float:
    denominator = 2 * tp + fp + fn
    return 2.0 * tp / denominator if denominator else 0.0


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else float("nan")


@dataclass
class Metrics:
    """Scores of one prediction set; per-class arrays are (C,) float64 with NaN for skipped classes.

    Attributes:
        mAP, roc_auc, binary_f1, macro_f1: macro averages over the classes that have them.
        per_class_ap, per_class_auc, per_class_f1, per_class_f1_neg: per class.
        n_positive, n_negative: known positives / negatives per class.
        skipped_ap, skipped_auc: classes left out of ``mAP`` / ``roc_auc``.
        covered: classes each macro mean covers (``map``, ``roc_auc``, ``binary_f1``, ``macro_f1``).
        threshold: the F1 threshold.
        class_names: names per class.
    """

    mAP: float
    roc_auc: float
    binary_f1: float
    macro_f1: float
    per_class_ap: np.ndarray
    per_class_auc: np.ndarray
    per_class_f1: np.ndarray
    per_class_f1_neg: np.ndarray
    n_positive: np.ndarray
    n_negative: np.ndarray
    skipped_ap: int
    skipped_auc: int
    threshold: float
    class_names: list[str]
    covered: dict[str, int] = field(default_factory=dict)

    def coverage(self) -> str:
        """How many classes each mean covers, e.g. ``"mAP and ROC-AUC over 18 of 20 classes, F1 over 19"``."""
        total = len(self.class_names)
        ranked = self.covered.get("map", total)
        f1 = self.covered.get("macro_f1", total)
        text = f"mAP and ROC-AUC over {ranked} of {total} classes"
        return text + ("" if f1 == ranked else f", macro F1 over {f1}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (NaN becomes None) with a per-class table."""

        def num(value: float) -> float | None:
            return None if np.isnan(value) else float(value)

        return {
            "map": num(self.mAP),
            "roc_auc": num(self.roc_auc),
            "binary_f1": num(self.binary_f1),
            "macro_f1": num(self.macro_f1),
            "threshold": self.threshold,
            "skipped_ap": self.skipped_ap,
            "skipped_auc": self.skipped_auc,
            "n_classes": len(self.class_names),
            "classes_covered": dict(self.covered),
            "per_class": {
                name: {
                    "average_precision": num(self.per_class_ap[i]),
                    "roc_auc": num(self.per_class_auc[i]),
                    "f1": num(self.per_class_f1[i]),
                    "f1_negative": num(self.per_class_f1_neg[i]),
                    "positives": int(self.n_positive[i]),
                    "negatives": int(self.n_negative[i]),
                }
                for i, name in enumerate(self.class_names)
            },
        }


def evaluate_predictions(
    probs: np.ndarray,
    labels: np.ndarray,
    known: np.ndarray | None = None,
    *,
    threshold: float = 0.4,
    class_names: Sequence[str] | None = None,
) -> Metrics:
    """Macro mAP, ROC-AUC and F1 over known labels, plus per-class values.

    Args:
        probs: (n, C) scores (sigmoid probabilities for F1 to make sense).
        labels: (n, C) targets, positive when > 0.5.
        known: (n, C) bool, False for unknown labels; ``None`` means all known.
        threshold: F1 decision threshold on ``probs`` (strictly greater is positive, compared in
            the dtype of ``probs``).
        class_names: C names (default ``class_0..``).

    Raises:
        TrainingError: mismatched shapes or non-finite scores.
    """
    raw = np.asarray(probs)
    # the threshold is compared in the scores' own precision (float32 0.4 is not > 0.4), as torchmetrics does
    precision = raw.dtype if raw.dtype in (np.float16, np.float32, np.float64) else np.dtype(np.float64)
    predicted = raw.astype(precision) > precision.type(threshold)
    probs = raw.astype(np.float64)
    labels = np.asarray(labels)
    known = np.ones(labels.shape, dtype=bool) if known is None else np.asarray(known, dtype=bool)
    names = _checked(probs, labels, known, class_names)
    ap, auc, f1, f1_neg, n_pos, n_neg = _per_class(probs, labels > 0.5, known, predicted)
    return Metrics(
        mAP=_nanmean(ap),
        roc_auc=_nanmean(auc),
        binary_f1=_nanmean(f1),
        macro_f1=_nanmean((f1 + f1_neg) / 2.0),
        per_class_ap=ap,
        per_class_auc=auc,
        per_class_f1=f1,
        per_class_f1_neg=f1_neg,
        n_positive=n_pos,
        n_negative=n_neg,
        skipped_ap=int(np.isnan(ap).sum()),
        skipped_auc=int(np.isnan(auc).sum()),
        threshold=float(threshold),
        class_names=names,
        covered={"map": int((~np.isnan(ap)).sum()), "roc_auc": int((~np.isnan(auc)).sum()),
                 "binary_f1": int((~np.isnan(f1)).sum()), "macro_f1": int((~np.isnan(f1 + f1_neg)).sum())},
    )


def _checked(probs: np.ndarray, labels: np.ndarray, known: np.ndarray,
             class_names: Sequence[str] | None) -> list[str]:
    """The class names, after checking that the arrays fit together and the scores are finite."""
    if probs.ndim != 2 or probs.shape != labels.shape or probs.shape != known.shape:
        raise TrainingError(
            f"metrics need (clips, classes) arrays of one shape, got probs {probs.shape}, "
            f"labels {labels.shape}, known {known.shape}"
        )
    if not np.isfinite(probs).all():
        raise TrainingError(f"{int((~np.isfinite(probs)).sum())} predicted scores are NaN or infinite")
    n_classes = probs.shape[1]
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(n_classes)]
    if len(names) != n_classes:
        raise TrainingError(f"{len(names)} class names for {n_classes} classes")
    return names


def _per_class(probs: np.ndarray, positive_all: np.ndarray, known: np.ndarray,
               predicted_all: np.ndarray) -> tuple[np.ndarray, ...]:
    """AP, ROC-AUC, F1, negative-class F1 (NaN where undefined), known positives and negatives, per class."""
    n_classes = probs.shape[1]
    ap, auc, f1, f1_neg = (np.full(n_classes, np.nan) for _ in range(4))
    n_pos, n_neg = np.zeros(n_classes, dtype=np.int64), np.zeros(n_classes, dtype=np.int64)
    for c in range(n_classes):
        mask = known[:, c]
        scores, positive = probs[mask, c], positive_all[mask, c]
        n_pos[c] = int(positive.sum())
        n_neg[c] = int(mask.sum()) - n_pos[c]
        if n_pos[c] and n_neg[c]:  # either kind alone: any ranking is "perfect" (AP 1.0) or meaningless
            ap[c] = average_precision(scores, positive)
            auc[c] = roc_auc(scores, positive)
        predicted = predicted_all[mask, c]
        tp = int((predicted & positive).sum())
        fp = int((predicted & ~positive).sum())
        fn = int((~predicted & positive).sum())
        tn = int(mask.sum()) - tp - fp - fn
        if n_pos[c]:
            f1[c] = _f1(tp, fp, fn)
        if n_neg[c]:
            f1_neg[c] = _f1(tn, fn, fp)
    return ap, auc, f1, f1_neg, n_pos, n_neg
