"""Distance correlation and the cosine-difference variant (docs/method.md, "Losses")."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.errors import TrainingError
from pipeline.losses import distance_correlation, feature_loss_cosine, feature_loss_dcor

torch.set_num_threads(1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference_dcor(x: np.ndarray, y: np.ndarray) -> float:
    """The formula of docs/method.md ("Losses") with explicit pairwise differences, float64."""

    def centered(z: np.ndarray) -> np.ndarray:
        d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1) + 1e-12)
        return d - d.mean(0, keepdims=True) - d.mean(1, keepdims=True) + d.mean()

    a, b = centered(x), centered(y)
    return float((a * b).mean() / np.sqrt((a * a).mean() * (b * b).mean() + 1e-9))


def _orthogonal(d: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=_gen(seed), dtype=torch.float64))
    return q


def test_matches_the_formula_with_explicit_differences() -> None:
    x = torch.randn(16, 40, generator=_gen(0), dtype=torch.float64)
    mix = torch.randn(10, 7, generator=_gen(1), dtype=torch.float64)
    y = torch.tanh(x[:, :10] @ mix) + 0.3 * torch.randn(16, 7, generator=_gen(2), dtype=torch.float64)
    reference = _reference_dcor(x.numpy(), y.numpy())
    assert float(distance_correlation(x, y)) == pytest.approx(reference, abs=1e-10)
    # float32 on realistic scales stays close to the float64 value
    assert float(distance_correlation(x.float(), y.float())) == pytest.approx(
        _reference_dcor(x.numpy(), y.numpy()), abs=1e-5)


def test_self_correlation_is_one_and_symmetric() -> None:
    x = torch.randn(16, 32, generator=_gen(3))
    y = torch.randn(16, 5, generator=_gen(4))
    assert float(distance_correlation(x, x)) == pytest.approx(1.0, abs=1e-6)
    assert float(distance_correlation(x, y)) == pytest.approx(float(distance_correlation(y, x)), abs=1e-6)


@pytest.mark.parametrize("side", ["x", "y"])
def test_invariant_to_rotation_scaling_translation(side: str) -> None:
    x = torch.randn(24, 12, generator=_gen(5), dtype=torch.float64)
    y = x[:, :6] ** 2 + 0.5 * torch.randn(24, 6, generator=_gen(6), dtype=torch.float64)
    base = float(distance_correlation(x, y))
    for transform in (
        lambda z: z @ _orthogonal(z.shape[1], 7),
        lambda z: 7.5 * z,
        lambda z: 0.2 * z,
        lambda z: z + torch.randn(1, z.shape[1], generator=_gen(8), dtype=torch.float64) * 100,
    ):
        pair = (transform(x), y) if side == "x" else (x, transform(y))
        value = distance_correlation(*pair)
        assert float(value) == pytest.approx(base, abs=1e-6)


def test_near_zero_for_independent_inputs_at_large_batch() -> None:
    x = torch.randn(2000, 4, generator=_gen(9), dtype=torch.float64)
    y = torch.randn(2000, 4, generator=_gen(10), dtype=torch.float64)
    assert float(distance_correlation(x, y)) < 0.02
    dependent = torch.cat([x[:, :2] ** 2, x[:, 2:] + 0.5 * y[:, 2:]], dim=1)  # nonlinear + noisy linear
    assert float(distance_correlation(x, dependent)) > 0.3


def test_v_statistic_bias_at_small_batch_is_large() -> None:
    """Documented property (feasibility study §2.3): at N=16, independent high-dimensional rows
    already score near 1, so 1 - dCor^2 only moves in a narrow band."""
    x = torch.randn(16, 512, generator=_gen(11))
    y = torch.randn(16, 200, generator=_gen(12))
    assert float(distance_correlation(x, y)) > 0.5


def test_gradients_are_finite_even_with_identical_rows() -> None:
    x = torch.randn(16, 8, generator=_gen(13))
    x[3] = x[4]
    x[5] = x[4]
    x = x.requires_grad_()
    y = torch.randn(16, 6, generator=_gen(14))
    y[0] = y[1]
    (1 - distance_correlation(x, y)).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    constant = torch.zeros(16, 8, requires_grad=True)  # every row identical: statistic 0, still finite
    value = distance_correlation(constant, y)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(constant.grad).all()


def test_feature_loss_is_mean_over_frames_of_one_minus_r() -> None:
    s = torch.relu(torch.randn(16, 5, 32, generator=_gen(15)))
    e = torch.randn(16, 5, 20, generator=_gen(16)) + 0.5 * s[..., :20]
    per_frame = [1 - float(distance_correlation(s[:, t], e[:, t])) for t in range(5)]
    assert float(feature_loss_dcor(s, e)) == pytest.approx(np.mean(per_frame), abs=1e-6)
    # dependence lowers the loss
    independent = torch.randn(16, 5, 20, generator=_gen(17))
    assert float(feature_loss_dcor(s, e)) < float(feature_loss_dcor(s, independent))
    with pytest.raises(TrainingError, match="paired rows"):
        distance_correlation(torch.zeros(4, 3), torch.zeros(5, 3))


@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (3.0, 2.24), (0.05, 0.0)])
def test_float16_stored_teacher_frames_change_the_loss_by_under_1e3(scale: float, shift: float) -> None:
    """Store requirement: frames kept as float16 give the float32 loss within 1e-3."""
    g = _gen(18)
    x = torch.randn(16, 6, 64, generator=g)
    s = torch.relu(x @ torch.randn(64, 256, generator=g) / 8)  # student-like: non-negative, 256-d
    e = (torch.tanh(x @ torch.randn(64, 200, generator=g) / 8) + 0.3 * torch.randn(16, 6, 200, generator=g))
    e = e * scale + shift  # teacher-like scales: z-scored, raw OpenL3-ish offset, small
    exact = float(feature_loss_dcor(s, e))
    stored = float(feature_loss_dcor(s, e.half().float()))
    assert abs(exact - stored) < 1e-3
    assert abs(float(feature_loss_cosine(s, e)) - float(feature_loss_cosine(s, e.half().float()))) < 1e-3


def test_cosine_difference() -> None:
    s = torch.randn(8, 3, 16, generator=_gen(19))
    assert float(feature_loss_cosine(s, 4.0 * s)) == pytest.approx(0.0, abs=1e-6)  # scale-free per row
    e = torch.randn(8, 3, 10, generator=_gen(20))
    sn = torch.nn.functional.normalize(s, dim=-1)
    en = torch.nn.functional.normalize(e, dim=-1)
    gaps = [(sn[:, t] @ sn[:, t].T - en[:, t] @ en[:, t].T).abs().mean().item() for t in range(3)]
    expected = np.mean(gaps)
    assert float(feature_loss_cosine(s, e)) == pytest.approx(expected, abs=1e-6)
    s.requires_grad_()
    feature_loss_cosine(s, e).backward()
    assert torch.isfinite(s.grad).all()
