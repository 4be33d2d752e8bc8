"""Teacher triage: which teacher to distil from, judged before any GPU hour is spent (issue 18, item 5).

For each teacher store: the probe's valid mAP (how much the teacher knows about the labels), and the
dependence between teachers and between each teacher and a baseline student on the valid split (how
much of a teacher the others, or the student alone, already hold). Dependence is measured on
clip-pooled embeddings (the mean of a clip's frames) with the bias-corrected distance correlation
(Székely & Rizzo 2014) or bias-corrected linear CKA (:func:`pipeline.losses.linear_cka`); both are
about 0 for independent embeddings and 1 for a rotated, scaled, shifted copy. The stage
(``stages/triage.py``) gathers the inputs; this module computes, decides and writes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

from pipeline.errors import ConfigError
from pipeline.stores import open_store

#: the dependence measures ``pipeline triage --measure`` offers
MEASURES = ("dcor", "cka")
#: two teachers at least this dependent are treated as one (a copy adds nothing)
REDUNDANT = 0.9
#: probes within this much valid mAP of the best count as equally good
MAP_MARGIN = 0.02
#: the row and column name of the baseline student's features
STUDENT = "student"
RULE = (f"among teachers with a probe, drop any whose dependence with a better-probed teacher is >= {REDUNDANT:g} "
        f"(a near copy); of those left within {MAP_MARGIN:g} valid mAP of the best probe, recommend the one least "
        "dependent on the baseline student's features (it holds the most the student does not learn alone); "
        "without a baseline student, the best probe.")


def pooled_embeddings(store_path: Path | str, clip_ids: Sequence[str]) -> np.ndarray:
    """The mean over frames of each clip's teacher frames: float64 (n_clips, dim).

    Raises:
        StoreError: a clip is not in the store (from the store's reader).
    """
    store = open_store(store_path)
    return np.stack([store.read(cid).astype(np.float64).mean(axis=0) for cid in clip_ids])


def dependence(x: np.ndarray, y: np.ndarray, measure: str = "dcor") -> float:
    """Bias-corrected dependence of paired rows ``x`` (n, d1) and ``y`` (n, d2); about 0 when independent.

    Raises:
        ConfigError: an unknown measure, or fewer than 4 rows.
    """
    import torch

    from pipeline.losses import distance_correlation, linear_cka

    if measure not in MEASURES:
        raise ConfigError(f"unknown dependence measure {measure!r}; choose one of {', '.join(MEASURES)}")
    if len(x) < 4:
        raise ConfigError(f"triage needs at least 4 clips in the split, got {len(x)}")
    a, b = torch.from_numpy(np.asarray(x, np.float64)), torch.from_numpy(np.asarray(y, np.float64))
    value = distance_correlation(a, b, "u") if measure == "dcor" else linear_cka(a - a.mean(0), b - b.mean(0))
    return float(value)


def dependence_matrix(embeddings: Mapping[str, np.ndarray], measure: str = "dcor") -> np.ndarray:
    """Symmetric (k, k) matrix of :func:`dependence` between every pair of ``embeddings`` (1 on the diagonal)."""
    names = list(embeddings)
    matrix = np.eye(len(names))
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            matrix[i, j] = matrix[j, i] = dependence(embeddings[names[i]], embeddings[names[j]], measure)
    return matrix


@dataclass(frozen=True)
class Triage:
    """What ``pipeline triage`` found.

    Attributes:
        teachers: teacher names, in the order given.
        probe_map: teacher -> probe valid mAP (None: no probe yet).
        names: row/column names of ``matrix``: the teachers, then :data:`STUDENT` when there is one.
        matrix: pairwise dependence on the valid split's clip-pooled embeddings.
        measure: ``dcor`` or ``cka``.
        clips: valid clips used.
        recommended: the teacher to use, or None.
        reason: one line saying why (or what is missing).
    """

    teachers: tuple[str, ...]
    probe_map: Mapping[str, Optional[float]]
    names: tuple[str, ...]
    matrix: np.ndarray
    measure: str
    clips: int
    recommended: Optional[str]
    reason: str

    def to_student(self, teacher: str) -> Optional[float]:
        """Dependence between ``teacher`` and the baseline student (None without one)."""
        if STUDENT not in self.names:
            return None
        return float(self.matrix[self.names.index(teacher), self.names.index(STUDENT)])


def recommend(teachers: Sequence[str], probe_map: Mapping[str, Optional[float]], names: Sequence[str],
              matrix: np.ndarray) -> tuple[Optional[str], str]:
    """Apply :data:`RULE`: the recommended teacher (or None) and a one-line reason."""
    scores = {t: float(v) for t, v in probe_map.items() if v is not None}
    probed = sorted((t for t in teachers if t in scores), key=lambda t: -scores[t])
    if not probed:
        return None, "no teacher has a probe yet: run `pipeline probe --teacher <name>` for each, then triage again"
    dep = {(a, b): float(matrix[names.index(a), names.index(b)]) for a in names for b in names}
    kept: list[str] = []
    for teacher in probed:
        if not any(dep[(teacher, better)] >= REDUNDANT for better in kept):
            kept.append(teacher)
    best = scores[kept[0]]
    close = [t for t in kept if best - scores[t] <= MAP_MARGIN]
    redundant = [t for t in probed if t not in kept]
    dropped = f"; {', '.join(redundant)} near copies of a better probe" if redundant else ""
    if STUDENT not in names or len(close) == 1:
        why = "the best probe" if STUDENT not in names else "the only probe within the margin of the best"
        return close[0], f"{close[0]}: {why} (valid mAP {best:.3f}){dropped}"
    choice = min(close, key=lambda t: dep[(t, STUDENT)])
    return choice, (f"{choice}: valid mAP {scores[choice]:.3f} (best {best:.3f}), least dependent on the "
                    f"baseline student ({dep[(choice, STUDENT)]:.2f}){dropped}")


def triage(embeddings: Mapping[str, np.ndarray], probe_map: Mapping[str, Optional[float]],
           student: Optional[np.ndarray] = None, measure: str = "dcor") -> Triage:
    """Dependence matrix and recommendation for teachers' clip-pooled ``embeddings`` (same clips, same order).

    Args:
        embeddings: teacher -> (n_clips, dim) pooled embeddings of the valid split.
        probe_map: teacher -> probe valid mAP (None: no probe).
        student: (n_clips, channels) pooled features of a baseline student on the same clips, or None.
        measure: ``dcor`` or ``cka``.
    """
    named = dict(embeddings)
    if student is not None:
        named[STUDENT] = student
    matrix = dependence_matrix(named, measure)
    teachers = tuple(embeddings)
    choice, reason = recommend(teachers, probe_map, list(named), matrix)
    clips = len(next(iter(embeddings.values()))) if embeddings else 0
    return Triage(teachers, dict(probe_map), tuple(named), matrix, measure, clips, choice, reason)


def _cell(value: Optional[float]) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def markdown(result: Triage) -> str:
    """The Markdown table (one row per teacher), the recommendation and the rule."""
    measure = "bias-corrected distance correlation" if result.measure == "dcor" else "bias-corrected linear CKA"
    head = ["teacher", "probe valid mAP", *[f"dep. {n}" for n in result.names]]
    lines = [f"# Teacher triage ({result.clips} valid clips; dependence: {measure} of clip-pooled embeddings)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, teacher in enumerate(result.teachers):
        probe = result.probe_map.get(teacher)
        cells = [teacher, _cell(probe) if probe is not None else "no probe: run `pipeline probe` first",
                 *[_cell(float(v)) for v in result.matrix[i]]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"**Recommendation:** {result.reason}", "", f"Rule: {RULE}", ""]
    return "\n".join(lines)


def heatmap(result: Triage, path: Path | str) -> Path:
    """A PNG heat map of :attr:`Triage.matrix` (values written in the cells)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = 1.2 + 0.9 * len(result.names)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(result.matrix, vmin=-0.1, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(result.names)), result.names, rotation=45, ha="right")
    ax.set_yticks(range(len(result.names)), result.names)
    for i in range(len(result.names)):
        for j in range(len(result.names)):
            ax.text(j, i, f"{result.matrix[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(image, ax=ax, label=result.measure)
    ax.set_title("dependence on the valid split")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
