"""The EAsT losses (docs/method.md, "Losses"): masked BCE, distance correlation, cosine-distance
difference, bias-corrected linear CKA, cosine after a learned projection, binary KD, and the
combined objective.

Every loss is computed in float32 (float64 inputs stay float64), whatever the autocast
state, and teacher-side tensors never receive gradients.

Departures from the official code, on purpose:
- :func:`masked_bce` and :func:`kd_loss` use the logits forms (``softplus``), which are
  exact and finite for any logit; the official code applies BCE to sigmoid probabilities
  (clamped logs) and adds 1e-9 inside the KD logs.
- :func:`distance_correlation` forms squared distances by a batched matrix product on
  batch-centered rows (distances are translation invariant) instead of broadcasting the
  differences, so memory stays O(N^2) for any dimension. The statistic is unchanged.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.alignment import MODES, align_frames
from pipeline.config import DCOR_ESTIMATORS, DCOR_POOLS, FEATURE_LOSSES, KD_ENTRIES, VARIANTS
from pipeline.batch import Batch, TeacherFrames
from pipeline.errors import ConfigError, TrainingError
from pipeline.students.base import StudentOutput
from pipeline.variants import VARIANTS as VARIANTS_TABLE, VariantSpec

__all__ = [
    "masked_bce",
    "distance_correlation",
    "feature_loss_dcor",
    "feature_loss_cosine",
    "linear_cka",
    "feature_loss_cka",
    "feature_loss_projected_cosine",
    "kd_loss",
    "kd_mask",
    "align_frames",
    "EAsTObjective",
    "VARIANTS",
    "FEATURE_LOSSES",
]


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float64 else x.float()


def _masked_mean(values: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``known`` entries (0 when none is known); masked values never leak."""
    known = known.bool()
    total = torch.where(known, values, torch.zeros_like(values)).sum()
    return total / known.sum().clamp_min(1).to(values.dtype)


def masked_bce(logits: torch.Tensor, targets: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over the known (clip, class) entries only.

    Args:
        logits: (B, C) pre-sigmoid scores.
        targets: (B, C) targets in [0, 1] (soft targets from mixup allowed).
        known: (B, C) bool, False where the label is unknown.

    Returns:
        Scalar mean BCE over known entries (0 if none).
    """
    logits = _f32(logits)
    loss = F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype), reduction="none")
    return _masked_mean(loss, known)


def _distance_matrices(x: torch.Tensor) -> torch.Tensor:
    """(..., N, D) -> (..., N, N) of ``sqrt(||x_i - x_j||^2 + 1e-12)`` (diagonal exactly 1e-6)."""
    x = x - x.mean(dim=-2, keepdim=True)
    sq = (x * x).sum(dim=-1)
    d2 = sq.unsqueeze(-1) + sq.unsqueeze(-2) - 2.0 * torch.matmul(x, x.transpose(-1, -2))
    n = x.shape[-2]
    off_diagonal = 1.0 - torch.eye(n, dtype=x.dtype, device=x.device)
    return torch.sqrt(d2.clamp_min(0.0) * off_diagonal + 1e-12)


def _double_center(a: torch.Tensor) -> torch.Tensor:
    rows, cols = a.mean(dim=-1, keepdim=True), a.mean(dim=-2, keepdim=True)
    return a - rows - cols + a.mean(dim=(-2, -1), keepdim=True)


def _u_center(a: torch.Tensor) -> torch.Tensor:
    """U-centered distance matrices (Székely & Rizzo 2014, Def. 1); the diagonal is 0.

    ``A~_ij = a_ij - r_i/(n-2) - c_j/(n-2) + s/((n-1)(n-2))`` for ``i != j`` with ``r``, ``c``
    the row and column sums and ``s`` the total (the diagonal of ``a`` taken as 0).
    """
    n = a.shape[-1]
    off_diagonal = 1.0 - torch.eye(n, dtype=a.dtype, device=a.device)
    a = a * off_diagonal
    rows, cols = a.sum(dim=-1, keepdim=True), a.sum(dim=-2, keepdim=True)
    total = a.sum(dim=(-2, -1), keepdim=True)
    return (a - rows / (n - 2) - cols / (n - 2) + total / ((n - 1) * (n - 2))) * off_diagonal


def distance_correlation(x: torch.Tensor, y: torch.Tensor, estimator: str = "v") -> torch.Tensor:
    """Squared sample distance correlation of paired rows (docs/method.md, "Losses").

    ``estimator="v"`` (the paper's, default): ``a_ij = sqrt(||x_i - x_j||^2 + 1e-12)``, likewise
    ``b``; ``A``, ``B`` double-centered; ``R = mean(A*B) / sqrt(mean(A*A) * mean(B*B) + 1e-9)``,
    in [0, 1]. It is biased upward for small N and high dimension: independent 256-d against
    200-d Gaussian rows give about 0.98 at N = 16 and 0.78 at N = 256.

    ``estimator="u"``: the bias-corrected distance correlation of Székely & Rizzo (2014),
    "Partial distance correlation with methods for dissimilarities", Ann. Statist. 42(6): the
    U-centered matrices with the inner product ``sum_{i != j} A~_ij B~_ij / (n (n - 3))``. Its
    expectation is 0 for independent inputs at any N; it lies in [-1, 1] and equals
    ``dcor.u_distance_correlation_sqr`` (tests/test_dcor_estimators.py). Needs N >= 4.

    Both are invariant to rotation, scaling and translation of either side.

    Args:
        x: (..., N, D1); leading dimensions are batched.
        y: (..., N, D2) with the same N.
        estimator: ``"v"`` or ``"u"``.

    Returns:
        (...) dCor^2 per batch element (a scalar for 2-D inputs).

    Raises:
        TrainingError: unpaired shapes, or N < 4 with ``"u"``.
        ConfigError: an unknown estimator.
    """
    if x.shape[:-1] != y.shape[:-1]:
        raise TrainingError(
            f"distance correlation needs paired rows, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if estimator not in DCOR_ESTIMATORS:
        raise ConfigError(f"unknown dcor estimator {estimator!r}; choose one of {', '.join(DCOR_ESTIMATORS)}")
    x, y = _f32(x), _f32(y)
    y = y.to(x.dtype)
    if estimator == "v":
        a = _double_center(_distance_matrices(x))
        b = _double_center(_distance_matrices(y))
        xy = (a * b).mean(dim=(-2, -1))
        xx = (a * a).mean(dim=(-2, -1))
        yy = (b * b).mean(dim=(-2, -1))
        return xy / torch.sqrt(xx * yy + 1e-9)
    n = x.shape[-2]
    if n < 4:
        raise TrainingError(f"the bias-corrected distance correlation needs at least 4 rows, got {n}; "
                            "raise distill.batch_size or use distill.dcor_pool: batch")
    a = _u_center(_distance_matrices(x))
    b = _u_center(_distance_matrices(y))
    xy = (a * b).sum(dim=(-2, -1))  # the common 1 / (n (n - 3)) cancels in the ratio
    xx = (a * a).sum(dim=(-2, -1))
    yy = (b * b).sum(dim=(-2, -1))
    return xy / torch.sqrt((xx * yy).clamp_min(1e-18))  # a floor against 0/0, no bias for tiny N


def feature_loss_dcor(s: torch.Tensor, e: torch.Tensor, estimator: str = "v", pool: str = "frame") -> torch.Tensor:
    """``1 - dCor^2`` between aligned student and teacher frames.

    ``pool="frame"`` (the paper): one estimate per aligned frame across the batch (N rows),
    averaged over frames. ``pool="batch"``: one estimate over all ``N x T`` aligned frames of
    the batch, which gives the estimator more rows (less bias, smaller variance).

    Args:
        s: (N, T, C) aligned student frames.
        e: (N, T, D) aligned teacher frames (no gradient flows into them).
        estimator: ``"v"`` (paper) or ``"u"`` (bias-corrected), see :func:`distance_correlation`.
        pool: ``"frame"`` or ``"batch"``.

    Returns:
        Scalar loss: in [0, 1] for ``"v"``, in [0, 2] for ``"u"``.
    """
    e = e.detach()
    if pool == "batch":
        r = distance_correlation(s.reshape(-1, s.shape[-1]), e.reshape(-1, e.shape[-1]), estimator)
        return 1.0 - r
    if pool != "frame":
        raise ConfigError(f"unknown dcor pool {pool!r}; choose one of {', '.join(DCOR_POOLS)}")
    r = distance_correlation(s.transpose(0, 1), e.transpose(0, 1), estimator)  # (T,)
    return (1.0 - r).mean()


def feature_loss_cosine(s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """Cosine-distance difference (docs/method.md, "Losses"): ``mean_{t,i,j} |cos(s_ti, s_tj) - cos(e_ti, e_tj)|``.

    Args:
        s: (N, T, C) aligned student frames.
        e: (N, T, D) aligned teacher frames.

    Returns:
        Scalar loss in [0, 2].
    """
    s = F.normalize(_f32(s), dim=-1).transpose(0, 1)
    e = F.normalize(_f32(e.detach()), dim=-1).transpose(0, 1).to(s.dtype)
    gram_s = torch.matmul(s, s.transpose(-1, -2))
    gram_e = torch.matmul(e, e.transpose(-1, -2))
    return (gram_s - gram_e).abs().mean()


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Minibatch linear CKA with the unbiased HSIC estimator (Song et al. 2012; Nguyen et al. 2021).

    With linear kernels ``K = X X^T`` and ``L = Y Y^T`` (diagonals set to 0),
    ``HSIC_1(K, L) = [tr(K L) + 1'K1 1'L1 / ((n-1)(n-2)) - 2/(n-2) 1'K L 1] / (n (n-3))``, and
    ``CKA = HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L))``. ``HSIC_1`` equals the inner product of
    the U-centered kernels (Székely & Rizzo 2014), which is how it is computed here; its
    expectation is 0 for independent rows at any N. CKA is 1 for identical features and invariant
    to orthogonal transforms and isotropic scaling of either side (not to general linear maps).

    Args:
        x: (..., N, D1); leading dimensions are batched.
        y: (..., N, D2) with the same N.

    Returns:
        (...) CKA per batch element, in about [-1, 1].

    Raises:
        TrainingError: unpaired shapes or N < 4.
    """
    if x.shape[:-1] != y.shape[:-1]:
        raise TrainingError(f"linear CKA needs paired rows, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    n = x.shape[-2]
    if n < 4:
        raise TrainingError(f"the bias-corrected linear CKA needs at least 4 rows, got {n}; "
                            "raise distill.batch_size or use distill.dcor_pool: batch")
    x = _f32(x)
    y = _f32(y).to(x.dtype)
    k = _u_center(torch.matmul(x, x.transpose(-1, -2)))
    l = _u_center(torch.matmul(y, y.transpose(-1, -2)))  # noqa: E741 - the literature's name
    kl = (k * l).sum(dim=(-2, -1))  # the common 1 / (n (n - 3)) cancels in the ratio
    kk = (k * k).sum(dim=(-2, -1))
    ll = (l * l).sum(dim=(-2, -1))
    return kl / torch.sqrt((kk * ll).clamp_min(1e-18))


def feature_loss_cka(s: torch.Tensor, e: torch.Tensor, pool: str = "frame") -> torch.Tensor:
    """``1 - CKA`` (:func:`linear_cka`) between aligned student and teacher frames.

    Args:
        s: (N, T, C) aligned student frames.
        e: (N, T, D) aligned teacher frames (no gradient flows into them).
        pool: ``frame`` (one CKA per aligned frame across the batch, averaged) or ``batch`` (one
            over all N x T rows), as ``distill.dcor_pool``.

    Returns:
        Scalar loss in about [0, 2].
    """
    e = e.detach()
    if pool == "batch":
        return 1.0 - linear_cka(s.reshape(-1, s.shape[-1]), e.reshape(-1, e.shape[-1]))
    if pool != "frame":
        raise ConfigError(f"unknown dcor pool {pool!r}; choose one of {', '.join(DCOR_POOLS)}")
    return (1.0 - linear_cka(s.transpose(0, 1), e.transpose(0, 1))).mean()


def feature_loss_projected_cosine(s: torch.Tensor, e: torch.Tensor, projection: torch.nn.Module) -> torch.Tensor:
    """``mean_{n,t} (1 - cos(P s_nt, e_nt))``: cosine after a learned projection (S-SONDO, ICASSP 2026).

    Args:
        s: (N, T, C) aligned student frames.
        e: (N, T, D) aligned teacher frames (no gradient flows into them).
        projection: maps C to D (a ``Linear(C, D)``, trained with the student, not exported).

    Returns:
        Scalar loss in [0, 2].
    """
    projected = projection(_f32(s))
    return (1.0 - F.cosine_similarity(projected, _f32(e.detach()).to(projected.dtype), dim=-1, eps=1e-8)).mean()


def kd_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, known: torch.Tensor, tau: float = 2.0
) -> torch.Tensor:
    """Binary label distillation: ``tau^2 * mean_known KL(sigma(z_t/tau) || sigma(z_s/tau))``.

    With ``s = z_s / tau`` and ``t = z_t / tau`` the binary KL is
    ``softplus(s) - softplus(t) - sigma(t) (s - t)``: exact, finite, and 0 for equal logits.

    Args:
        student_logits: (B, C).
        teacher_logits: (B, C) from the frozen probe (no gradient).
        known: (B, C) bool; unknown entries are excluded (as the official code).
        tau: temperature > 0.

    Returns:
        Scalar loss >= 0.
    """
    s = _f32(student_logits) / tau
    t = _f32(teacher_logits.detach()).to(s.dtype) / tau
    kl = F.softplus(s) - F.softplus(t) - torch.sigmoid(t) * (s - t)
    return tau * tau * _masked_mean(kl, known)


def kd_mask(known: torch.Tensor) -> torch.Tensor:
    """The entries KD is computed on: known labels, and every class of an unlabeled row.

    A labelled row keeps the paper's rule (KD on its known entries only); a row with no known
    entry (an unlabeled clip, see :func:`pipeline.manifests.is_unlabeled`) learns the probe's
    soft targets on every class, so unlabeled audio enters KD but never the label loss.

    Args:
        known: (B, C) bool mask of known labels.

    Returns:
        (B, C) bool mask.
    """
    known = known.bool()
    return known | ~known.any(dim=-1, keepdim=True)


#: feature losses that take ``(s, e, **options)``; ``cosine_projection`` also needs its learned head
FEATURE_FUNCTIONS = {"distance_correlation": feature_loss_dcor, "cosine_difference": feature_loss_cosine,
                     "linear_cka": feature_loss_cka, "cosine_projection": feature_loss_projected_cosine}


class EAsTObjective:
    """``L = (1 - lam) L_pred + lam L_reg`` (docs/method.md, "Losses").

    ``L_reg = L_feat`` (east-final) or ``kd_weight L_KD + (1 - kd_weight) L_feat`` (east-kd);
    ``baseline`` trains on ``L_pred`` only. ``pretrain`` trains on the teacher terms alone and never
    reads labels or their mask: ``L = kd_weight L_KD + (1 - kd_weight) L_feat`` when probe logits are
    given (KD on every class of every clip), else ``L_feat``. ``L_feat = sum_k w_k L_k / sum_k w_k``
    over the student's feature stages, each aligned to the teacher frames by time stamps.

    Terms that do not enter ``total`` are still computed without gradient when their
    inputs are given (so a baseline run logs how teacher-like its features are), and are
    NaN when they cannot be computed.

    Args:
        variant: ``baseline``, ``east-final``, ``east-kd`` or ``pretrain``.
        lam: regulariser weight in [0, 1] (unused by pretrain).
        kd_weight: share of KD in ``L_reg`` for east-kd and pretrain (paper 0.3).
        tau: KD temperature.
        feature_loss: one of :data:`FEATURE_LOSSES`, or one per teacher (a sequence).
        stage_weights: weight per student feature stage (paper EAsT-Final: (0, 0, 1)).
        alignment: ``window``, ``repeat`` or ``nearest`` (:func:`~pipeline.alignment.align_frames`).
        student_expand, teacher_expand: ``repeat`` factors (``None``: from the hop ratio).
        clip_level: ``broadcast`` or ``mean`` for clip-level teachers.
        dcor_estimator: ``v`` (paper) or ``u`` (bias-corrected), :func:`distance_correlation`.
        dcor_pool: ``frame`` (paper) or ``batch``, :func:`feature_loss_dcor` (and :func:`feature_loss_cka`).
        kd_entries: ``known`` (:func:`kd_mask`) or ``all`` (every class of every clip).
        teacher_weights: one weight per teacher in the feature term (None: equal).

    Attributes:
        heads: the learned projections of ``cosine_projection`` teachers (``"<teacher>_<stage>"`` ->
            ``Linear(C, D)``), built by :meth:`build_projections`; trained with the student, saved in
            ``last.pt``, never part of the exported student.
    """

    def __init__(
        self,
        variant: str = "east-final",
        lam: float = 0.3,
        kd_weight: float = 0.3,
        tau: float = 2.0,
        feature_loss: str | Sequence[str] = "distance_correlation",
        stage_weights: Sequence[float] = (0.0, 0.0, 1.0),
        alignment: str = "window",
        student_expand: int | None = None,
        teacher_expand: int | None = None,
        clip_level: str = "broadcast",
        dcor_estimator: str = "v",
        dcor_pool: str = "frame",
        kd_entries: str = "known",
        teacher_weights: Sequence[float] | None = None,
    ) -> None:
        losses = [feature_loss] if isinstance(feature_loss, str) else list(feature_loss)
        _check_settings(variant, losses, alignment, dcor_estimator, dcor_pool, kd_entries)
        _check_weights(lam, kd_weight, tau)
        weights = [float(w) for w in stage_weights]
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"stage_weights must be >= 0 with a positive sum, got {tuple(stage_weights)}")
        self.variant = variant
        self.spec = VARIANTS_TABLE[variant]
        self.lam = float(lam)
        self.kd_weight = float(kd_weight)
        self.tau = float(tau)
        self.feature_losses = losses
        self.feature_loss = losses[0]
        self.stage_weights = [w / sum(weights) for w in weights]
        self.alignment = alignment
        self.student_expand = student_expand
        self.teacher_expand = teacher_expand
        self.clip_level = clip_level
        self.dcor = {"estimator": dcor_estimator, "pool": dcor_pool}
        self.kd_entries = kd_entries
        self.teacher_weights = None if teacher_weights is None else [float(w) for w in teacher_weights]
        self.heads = torch.nn.ModuleDict()

    def loss_of(self, teacher: int) -> str:
        """The feature loss of teacher slot ``teacher`` (one setting for all: that one)."""
        return self.feature_losses[teacher] if len(self.feature_losses) > 1 else self.feature_losses[0]

    def build_projections(self, student_channels: Sequence[int], teacher_dims: Sequence[int]) -> torch.nn.ModuleDict:
        """Create a ``Linear(C_stage, D_teacher)`` head per ``cosine_projection`` teacher and weighted stage.

        Args:
            student_channels: channels of each student feature stage.
            teacher_dims: frame dimension of each teacher, in slot order.

        Returns:
            :attr:`heads` (empty when no teacher uses ``cosine_projection``); initialised from the
            global torch RNG, so seed it first.
        """
        for k, dim in enumerate(teacher_dims):
            if self.loss_of(k) != "cosine_projection":
                continue
            for stage, weight in enumerate(self.stage_weights):
                if weight > 0:
                    self.heads[f"{k}_{stage}"] = torch.nn.Linear(int(student_channels[stage]), int(dim))
        return self.heads

    def _stage_loss(self, teacher: int, stage: int, s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        name = self.loss_of(teacher)
        if name == "cosine_projection":
            key = f"{teacher}_{stage}"
            if key not in self.heads:
                raise TrainingError(f"teacher {teacher} uses cosine_projection but has no projection for stage "
                                    f"{stage}; call build_projections with the student's and teachers' sizes first")
            return feature_loss_projected_cosine(s, e, self.heads[key])
        if name == "distance_correlation":
            return feature_loss_dcor(s, e, **self.dcor)
        if name == "linear_cka":
            return feature_loss_cka(s, e, pool=self.dcor["pool"])
        return feature_loss_cosine(s, e)

    def feature_term(
        self, output: StudentOutput, teacher: torch.Tensor, teacher_times: torch.Tensor | np.ndarray,
        teacher_window: float, slot: int = 0
    ) -> torch.Tensor:
        """``L_feat`` of a :class:`~pipeline.students.base.StudentOutput` against teacher ``slot``'s frames."""
        if len(output.features) != len(self.stage_weights):
            raise ConfigError(
                f"stage_weights has {len(self.stage_weights)} entries but the student has "
                f"{len(output.features)} feature stages"
            )
        total: torch.Tensor | None = None
        for stage, weight in enumerate(self.stage_weights):
            if weight <= 0:
                continue
            s, e = align_frames(
                _f32(output.features[stage]), output.frame_times(stage),
                _f32(teacher.detach()), teacher_times, teacher_window, mode=self.alignment,
                student_expand=self.student_expand, teacher_expand=self.teacher_expand,
                clip_level=self.clip_level,
            )
            term = weight * self._stage_loss(slot, stage, s, e)
            total = term if total is None else total + term
        assert total is not None
        return total

    def teachers_term(self, output: StudentOutput, teachers: Sequence[TeacherFrames]) -> torch.Tensor:
        """``L_feat`` over the batch's teachers: ``sum_k w_k L_feat,k / sum_k w_k`` (one teacher: its term)."""
        terms = [self.feature_term(output, t.frames, t.times, t.window, slot=k) for k, t in enumerate(teachers)]
        if len(terms) == 1:
            return terms[0]
        w = [1.0] * len(terms) if self.teacher_weights is None else list(self.teacher_weights)
        return sum(wk * term for wk, term in zip(w, terms)) / sum(w)  # type: ignore[return-value]

    def __call__(self, output: StudentOutput, batch: Batch, teacher_logits: torch.Tensor | None = None
                 ) -> dict[str, torch.Tensor]:
        """Loss terms of one batch.

        Args:
            output: the student's :class:`~pipeline.students.base.StudentOutput` for ``batch.audio``.
            batch: the :class:`~pipeline.batch.Batch`: ``labels`` (B, C) in [0, 1] and ``known`` (B, C)
                (never read by a variant without a label term), and ``teachers``: one
                :class:`~pipeline.batch.TeacherFrames` per teacher (frames (B, Tt, D) of any float dtype,
                their center times in seconds on the student's time origin, the window one frame
                summarises, <= 0 for a clip-level teacher); empty for a baseline.
            teacher_logits: (B, C) probe logits for KD (the mean over teachers' probes), or None.

        Returns:
            ``{"total", "pred", "feat", "kd"}`` scalar tensors; only ``total`` is to be
            back-propagated.

        Raises:
            TrainingError: a teacher variant called without the teacher inputs it needs.
        """
        logits, spec = output.logits, self.spec
        nan = torch.full((), math.nan, device=logits.device, dtype=_f32(logits).dtype)
        pred = masked_bce(logits, batch.labels, batch.known) if spec.label_term else nan
        needs_kd = teacher_logits is not None and spec.uses_kd(self.kd_weight)
        _check_inputs(spec, bool(batch.teachers), teacher_logits is not None)
        feat, kd = nan, nan
        if batch.teachers:
            with torch.set_grad_enabled(spec.feature_term and torch.is_grad_enabled()):
                feat = self.teachers_term(output, batch.teachers)
        if teacher_logits is not None:
            every = spec.kd_every_entry or self.kd_entries == "all"
            entries = torch.ones_like(logits, dtype=torch.bool) if every else kd_mask(batch.known)
            with torch.set_grad_enabled(needs_kd and torch.is_grad_enabled()):
                kd = kd_loss(logits, teacher_logits, entries, self.tau)
        return {"total": self._combine(pred, feat, kd, needs_kd), "pred": pred, "feat": feat, "kd": kd}

    def _combine(self, pred: torch.Tensor, feat: torch.Tensor, kd: torch.Tensor, with_kd: bool) -> torch.Tensor:
        """``total`` of the variant from its terms (:mod:`pipeline.variants`)."""
        if not self.spec.uses_teacher:
            return pred
        reg = self.kd_weight * kd + (1.0 - self.kd_weight) * feat if with_kd else feat
        if not self.spec.label_term:
            return reg
        return (1.0 - self.lam) * pred + self.lam * reg


def _check_settings(variant: str, losses: Sequence[str], alignment: str, estimator: str, pool: str,
                    kd_entries: str) -> None:
    """Refuse unknown choices with one :class:`ConfigError` naming the valid ones."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    bad = [name for name in losses if name not in FEATURE_FUNCTIONS]
    if bad or not losses:
        raise ConfigError(f"unknown feature_loss {bad[0] if bad else ''!r}; choose one of {', '.join(FEATURE_LOSSES)}")
    if alignment not in MODES:
        raise ConfigError(f"unknown alignment {alignment!r}; choose one of {', '.join(MODES)}")
    if estimator not in DCOR_ESTIMATORS or pool not in DCOR_POOLS:
        raise ConfigError(f"dcor_estimator must be one of {', '.join(DCOR_ESTIMATORS)} and dcor_pool one of "
                          f"{', '.join(DCOR_POOLS)}; got {estimator!r}, {pool!r}")
    if kd_entries not in KD_ENTRIES:
        raise ConfigError(f"kd_entries must be one of {', '.join(KD_ENTRIES)}, got {kd_entries!r}")


def _check_weights(lam: float, kd_weight: float, tau: float) -> None:
    if not 0.0 <= lam <= 1.0:
        raise ConfigError(f"lam must be in [0, 1], got {lam}")
    if not 0.0 <= kd_weight <= 1.0:
        raise ConfigError(f"kd_weight must be in [0, 1], got {kd_weight}")
    if not tau > 0:
        raise ConfigError(f"tau must be > 0, got {tau}")


def _check_inputs(spec: VariantSpec, has_teacher: bool, has_logits: bool) -> None:
    """A teacher variant called without the teacher inputs it needs is a :class:`TrainingError`."""
    if spec.feature_term and not has_teacher:
        raise TrainingError(f"variant {spec.name!r} needs teacher frames and their times; none were given")
    if spec.kd == "always" and not has_logits:
        raise TrainingError(f"variant {spec.name!r} needs teacher probe logits; none were given (run `pipeline probe`)")
