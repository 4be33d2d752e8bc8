"""Masked BCE, binary KD, time alignment and the combined EAsT objective (docs/method.md, "Losses")."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.alignment import align_frames
from pipeline.errors import ConfigError, TrainingError
from pipeline.losses import EAsTObjective, feature_loss_dcor, kd_loss, masked_bce
from pipeline.students.base import StudentOutput
from tests.batches import frames, make_batch

torch.set_num_threads(1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---- masked BCE ---------------------------------------------------------------------------------
def test_masked_bce_is_bce_over_known_entries() -> None:
    logits = torch.randn(6, 5, generator=_gen(0)) * 3
    targets = (torch.rand(6, 5, generator=_gen(1)) > 0.5).float()
    known = torch.rand(6, 5, generator=_gen(2)) > 0.3
    p = torch.sigmoid(logits.double())
    manual = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))[known].mean()
    assert float(masked_bce(logits, targets, known)) == pytest.approx(float(manual), rel=1e-6)


def test_masked_entries_change_nothing() -> None:
    logits = torch.randn(4, 6, generator=_gen(3))
    targets = (torch.rand(4, 6, generator=_gen(4)) > 0.5).float()
    known = torch.rand(4, 6, generator=_gen(5)) > 0.4
    teacher = torch.randn(4, 6, generator=_gen(6))
    changed = logits.clone()
    changed[~known] = torch.tensor([1e4, -1e4, math.inf])[torch.arange(int((~known).sum())) % 3]
    changed_targets = targets.clone()
    changed_targets[~known] = 1 - changed_targets[~known]
    reference = float(masked_bce(logits, targets, known))
    assert float(masked_bce(changed, changed_targets, known)) == pytest.approx(reference)
    assert float(kd_loss(changed, teacher, known)) == pytest.approx(float(kd_loss(logits, teacher, known)))
    # and no gradient reaches them
    leaf = changed.clone().requires_grad_()
    (masked_bce(leaf, changed_targets, known) + kd_loss(leaf, teacher, known)).backward()
    assert torch.all(leaf.grad[~known] == 0) and torch.isfinite(leaf.grad).all()


def test_masked_bce_without_known_entries_is_zero() -> None:
    assert float(masked_bce(torch.randn(2, 3), torch.ones(2, 3), torch.zeros(2, 3, dtype=torch.bool))) == 0.0


# ---- KD ----------------------------------------------------------------------------------------------
def test_kd_is_zero_for_equal_logits_and_positive_otherwise() -> None:
    z = torch.randn(8, 20, generator=_gen(7)) * 4
    known = torch.ones(8, 20, dtype=torch.bool)
    assert float(kd_loss(z, z.clone(), known)) == 0.0
    assert float(kd_loss(z + 0.1, z, known)) > 0
    assert float(kd_loss(z, z + torch.randn(8, 20, generator=_gen(8)), known)) > 0


def test_kd_matches_the_official_binary_kl_and_stays_finite() -> None:
    zs = torch.randn(5, 7, generator=_gen(9), dtype=torch.float64) * 2
    zt = torch.randn(5, 7, generator=_gen(10), dtype=torch.float64) * 2
    known = torch.rand(5, 7, generator=_gen(11)) > 0.2
    tau = 2.0
    pt, ps = torch.sigmoid(zt / tau), torch.sigmoid(zs / tau)
    official = pt * (zt - zs) / tau + torch.log((1 - pt + 1e-9) / (1 - ps + 1e-9))
    expected = float(tau**2 * official[known].mean())
    assert float(kd_loss(zs, zt, known, tau)) == pytest.approx(expected, rel=1e-6)
    huge = kd_loss(torch.full((2, 2), 500.0), torch.full((2, 2), -500.0), torch.ones(2, 2, dtype=torch.bool))
    assert torch.isfinite(huge) and float(huge) > 0


# ---- alignment ----------------------------------------------------------------------------------------
def _times(n: int, hop: float, t0: float) -> np.ndarray:
    return t0 + hop * np.arange(n)


# (student frames, student hop, student t0, teacher frames, teacher hop, teacher t0, window, compared frames)
PAPER_ROWS = {
    "openmic-vggish": (62, 0.16, 0.07, 10, 0.96, 0.48, 0.96, 60),
    "openmic-openl3": (62, 0.16, 0.07, 11, 0.96, 0.0, 1.0, 62),
    "openmic-passt": (62, 0.16, 0.07, 11, 0.96, 0.0, 0.96, 62),
    "mtt-vggish": (15, 1.92, 0.95, 30, 0.96, 0.48, 0.96, 30),
    "mtt-openl3": (15, 1.92, 0.95, 31, 0.96, 0.0, 1.0, 30),
}


@pytest.mark.parametrize("row", sorted(PAPER_ROWS))
def test_repeat_mode_reproduces_the_paper_table(row: str) -> None:
    ts, hs, s0, tt, ht, t0, window, expected = PAPER_ROWS[row]
    s = torch.randn(2, ts, 4, generator=_gen(12))
    e = torch.randn(2, tt, 3, generator=_gen(13))
    sa, ea = align_frames(s, _times(ts, hs, s0), e, _times(tt, ht, t0), window, mode="repeat")
    assert sa.shape[1] == ea.shape[1] == expected
    # repeat_interleave then truncate from the start
    s_factor = 2 if hs > ht else 1
    t_factor = 6 if ht > hs else 1
    assert torch.equal(sa, torch.repeat_interleave(s, s_factor, 1)[:, :expected])
    assert torch.equal(ea, torch.repeat_interleave(e, t_factor, 1)[:, :expected])


def test_repeat_mode_clip_level_rows() -> None:
    s = torch.randn(2, 62, 4, generator=_gen(14))
    e = torch.randn(2, 1, 3, generator=_gen(15))
    times = _times(62, 0.16, 0.07)
    sa, ea = align_frames(s, times, e, [5.0], 0.0, mode="repeat", student_expand=1, teacher_expand=60)
    assert sa.shape[1] == ea.shape[1] == 60  # the paper's OpenMIC/PANNs row
    sa, ea = align_frames(s, times, e, [5.0], 0.0, mode="window")  # broadcast to every student frame
    assert sa.shape[1] == ea.shape[1] == 62 and torch.equal(ea[:, 17], e[:, 0])
    sa, ea = align_frames(s, times, e, [5.0], 0.0, clip_level="mean")
    assert sa.shape[1] == 1 and torch.allclose(sa[:, 0], s.mean(1))


def test_repeat_mode_rejects_non_integer_hop_ratios() -> None:
    with pytest.raises(ConfigError, match="window"):
        align_frames(torch.zeros(1, 10, 2), _times(10, 0.16, 0.0), torch.zeros(1, 5, 2), _times(5, 0.5, 0.0),
                     0.5, mode="repeat")


def test_window_mode_averages_student_frames_inside_each_teacher_window() -> None:
    s = torch.randn(3, 62, 4, generator=_gen(16))
    st = _times(62, 0.16, 0.07)
    tt = _times(12, 0.96, 0.0)  # the last frame (10.56 s) lies beyond the student's 9.83 s
    e = torch.randn(3, 12, 5, generator=_gen(17))
    sa, ea = align_frames(s, st, e, tt, 1.0, mode="window")
    assert sa.shape == (3, 11, 4) and torch.equal(ea, e[:, :11])
    assert torch.allclose(sa[:, 0], s[:, 0:3].mean(1))  # [-0.5, 0.5): 0.07, 0.23, 0.39
    inside = [t for t in range(62) if 9.1 <= st[t] < 10.1]
    assert inside == [57, 58, 59, 60, 61]
    assert torch.allclose(sa[:, 10], s[:, inside].mean(1))
    # float32 time stamps on window edges behave like the float64 ones
    st32, tt32 = torch.tensor(st, dtype=torch.float32), torch.tensor(tt, dtype=torch.float32)
    sa32, _ = align_frames(s, st32, e, tt32, 1.0)
    assert torch.allclose(sa32, sa)


def test_window_mode_with_overlapping_teacher_windows() -> None:
    """musicnn-like: 3-s windows every 1 s over a 5-s crop; student frames of 0.96 s at 0.47 s."""
    s = torch.arange(5.0).reshape(1, 5, 1)
    sa, ea = align_frames(s, _times(5, 0.96, 0.47), torch.zeros(1, 3, 2), _times(3, 1.0, 1.5), 3.0)
    # windows [0, 3), [1, 4), [2, 5) hold student centers
    # {0.47, 1.43, 2.39}, {1.43, 2.39, 3.35}, {2.39, 3.35, 4.31}
    assert sa[0, :, 0].tolist() == pytest.approx([1.0, 2.0, 3.0])


def test_nearest_mode_repeats_the_teacher_at_the_student_rate() -> None:
    s = torch.randn(2, 15, 4, generator=_gen(18))
    e = torch.randn(2, 30, 3, generator=_gen(19))
    sa, ea = align_frames(s, _times(15, 1.92, 0.95), e, _times(30, 0.96, 0.48), 0.96, mode="nearest")
    assert torch.equal(sa, s) and torch.equal(ea, e[:, 0::2])
    with pytest.raises(TrainingError, match="no student frame"):
        align_frames(s, _times(15, 1.92, 0.95), e, _times(30, 0.96, 100.0), 0.96, mode="nearest")


def test_alignment_errors() -> None:
    with pytest.raises(ConfigError, match="unknown alignment"):
        align_frames(torch.zeros(1, 2, 2), [0, 1], torch.zeros(1, 2, 2), [0, 1], 1.0, mode="interp")
    with pytest.raises(TrainingError, match="time stamps"):
        align_frames(torch.zeros(1, 2, 2), [0, 1, 2], torch.zeros(1, 2, 2), [0, 1], 1.0)


# ---- the combined objective ---------------------------------------------------------------------
def _batch(seed: int = 20, requires_grad: bool = True) -> dict:
    g = _gen(seed)
    features = [torch.randn(16, 5, c, generator=g).requires_grad_(requires_grad) for c in (8, 12, 16)]
    output = StudentOutput(
        logits=torch.randn(16, 4, generator=g).requires_grad_(requires_grad),
        features=features,
        frame_hop_seconds=[0.96, 0.96, 0.96],
        frame0_center_seconds=[0.47, 0.47, 0.47],
    )
    b = {
        "output": output,
        "targets": (torch.rand(16, 4, generator=g) > 0.5).float(),
        "known": torch.rand(16, 4, generator=g) > 0.2,
        "teacher": torch.randn(16, 3, 10, generator=g).half(),
        "teacher_times": torch.tensor([1.5, 2.5, 3.5]),
        "teacher_window": 3.0,
        "teacher_logits": torch.randn(16, 4, generator=g),
    }
    b["batch"] = make_batch(b["targets"], b["known"], [frames(b["teacher"], b["teacher_times"], 3.0)])
    b["no_teacher"] = make_batch(b["targets"], b["known"])
    return b


def test_objective_variants_combine_the_terms() -> None:
    b = _batch(requires_grad=False)
    args = (b["output"], b["batch"], b["teacher_logits"])
    base = EAsTObjective("baseline")(*args)
    final = EAsTObjective("east-final", lam=0.6)(*args)
    kd = EAsTObjective("east-kd", lam=0.6, kd_weight=0.3, tau=2.0)(*args)
    assert float(base["total"]) == float(base["pred"])
    assert torch.isfinite(base["feat"]) and not base["feat"].requires_grad  # logged, not trained
    expected = 0.4 * float(final["pred"]) + 0.6 * float(final["feat"])
    assert float(final["total"]) == pytest.approx(expected, rel=1e-6)
    assert float(kd["total"]) == pytest.approx(
        0.4 * float(kd["pred"]) + 0.6 * (0.3 * float(kd["kd"]) + 0.7 * float(kd["feat"])), rel=1e-6)
    # the feature term is the distance-correlation loss of the last stage after window alignment
    s, e = align_frames(b["output"].features[2], b["output"].frame_times(2), b["teacher"].float(),
                        b["teacher_times"], 3.0)
    assert float(final["feat"]) == pytest.approx(float(feature_loss_dcor(s, e)), abs=1e-6)
    no_teacher = EAsTObjective("baseline")(b["output"], b["no_teacher"])
    assert math.isnan(float(no_teacher["feat"]))  # not computable without a teacher


def test_objective_gradients_reach_the_regularised_stage_only() -> None:
    b = _batch()
    out = EAsTObjective("east-final", lam=0.5)(b["output"], b["batch"])
    out["total"].backward()
    features = b["output"].features
    assert features[0].grad is None and features[1].grad is None
    assert features[2].grad is not None and torch.isfinite(features[2].grad).all()


def test_stage_weights_are_normalised() -> None:
    b = _batch(requires_grad=False)
    args = (b["output"], b["batch"])
    per_stage = [
        float(EAsTObjective("east-final", stage_weights=w)(*args)["feat"])
        for w in ((1, 0, 0), (0, 1, 0), (0, 0, 1))
    ]
    all_stages = EAsTObjective("east-final", stage_weights=(2, 2, 2))(*args)
    assert float(all_stages["feat"]) == pytest.approx(np.mean(per_stage), abs=1e-6)


def test_objective_errors_say_what_is_missing() -> None:
    b = _batch()
    with pytest.raises(TrainingError, match="teacher frames"):
        EAsTObjective("east-final")(b["output"], b["no_teacher"])
    with pytest.raises(TrainingError, match="probe"):
        EAsTObjective("east-kd")(b["output"], b["batch"])
    for kwargs, match in (
        ({"variant": "east"}, "baseline, east-final, east-kd"),
        ({"lam": 1.5}, "lam"),
        ({"feature_loss": "mse"}, "distance_correlation"),
        ({"stage_weights": (0, 0, 0)}, "positive"),
    ):
        with pytest.raises(ConfigError, match=match):
            EAsTObjective(**kwargs)


def test_feature_loss_falls_and_dependence_rises_when_trained() -> None:
    """Mechanics: a linear student trained on L_feat alone becomes more teacher-like."""
    g = _gen(21)
    inputs = torch.randn(16, 4, 24, generator=g)
    teacher = torch.tanh(inputs[..., :6] @ torch.randn(6, 10, generator=g))
    weight = (torch.randn(24, 8, generator=g) * 0.1).requires_grad_()
    optimiser = torch.optim.Adam([weight], lr=0.05)
    objective = EAsTObjective("east-final", lam=1.0, stage_weights=(1,))
    times = 0.5 + np.arange(4)
    losses = []
    for _ in range(60):
        output = StudentOutput(torch.zeros(16, 2), [inputs @ weight], [1.0], [0.5])
        loss = objective(output, make_batch(torch.zeros(16, 2), torch.ones(16, 2, dtype=torch.bool),
                                            [frames(teacher, times, 1.0)]))["total"]
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.05


def test_alignment_plans_are_built_once_per_geometry() -> None:
    from pipeline import alignment

    alignment._PLANS.clear()
    s, e = torch.randn(2, 5, 3), torch.randn(2, 3, 4)
    for _ in range(3):
        align_frames(s, _times(5, 0.96, 0.47), e, torch.tensor([1.5, 2.5, 3.5]), 3.0)
    assert len(alignment._PLANS) == 1
    align_frames(s, _times(5, 0.96, 0.47), e, torch.tensor([1.5, 2.5, 3.5]), 3.0, mode="nearest")
    assert len(alignment._PLANS) == 2
