"""The two distance-correlation estimators of the feature term, checked against the `dcor` package.

The V-statistic (the paper's) saturates near 1 for high-dimensional independent rows at small N;
the bias-corrected U-statistic (Székely & Rizzo 2014) is about 0 for them at any N.
"""
from __future__ import annotations

import dcor
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, TrainingError
from pipeline.losses import EAsTObjective, distance_correlation, feature_loss_dcor


@settings(max_examples=15, deadline=None, derandomize=True)  # CI-stable examples
@given(n=st.integers(4, 40), d1=st.integers(1, 12), d2=st.integers(1, 12), seed=st.integers(0, 2**16),
       coupling=st.floats(0.0, 2.0))
def test_u_estimator_equals_dcor_package(n: int, d1: int, d2: int, seed: int, coupling: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1))
    y = rng.normal(size=(n, d2)) + coupling * np.tanh(x[:, :1])
    ours = float(distance_correlation(torch.from_numpy(x), torch.from_numpy(y), "u"))
    assert ours == pytest.approx(dcor.u_distance_correlation_sqr(x, y), abs=1e-6)  # our 1e-12 distance guard


@settings(max_examples=15, deadline=None, derandomize=True)  # CI-stable examples
@given(n=st.integers(2, 30), seed=st.integers(0, 2**16))
def test_v_estimator_equals_dcor_package(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, 5)), rng.normal(size=(n, 3))
    ours = float(distance_correlation(torch.from_numpy(x), torch.from_numpy(y), "v"))
    assert ours == pytest.approx(dcor.distance_correlation_sqr(x, y), abs=1e-4)  # our 1e-12/1e-9 guards


def _independent_draws(n: int, draws: int = 20) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(n)
    v, u = [], []
    for _ in range(draws):
        x = torch.randn(n, 256, generator=gen, dtype=torch.float64)
        y = torch.randn(n, 200, generator=gen, dtype=torch.float64)
        v.append(float(distance_correlation(x, y, "v")))
        u.append(float(distance_correlation(x, y, "u")))
    return float(np.mean(v)), float(np.mean(u))


@pytest.mark.parametrize("n", [16, 48])
def test_v_saturates_and_u_is_unbiased_for_independent_high_dimensional_rows(n: int) -> None:
    v, u = _independent_draws(n)
    assert v > 0.9  # the figures: 0.98 at N = 16, 0.95 at N = 48
    assert abs(u) < 0.05  # measured: -0.033 at N = 16, -0.008 at N = 48 (20 draws)


def test_u_sees_dependence_that_v_hides() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 256, generator=gen, dtype=torch.float64)
    noise = torch.randn(16, 200, generator=gen, dtype=torch.float64)
    y = noise.clone()
    y[:, :56] += 0.7 * x[:, :56]  # a partly dependent teacher
    v_gap = float(distance_correlation(x, y, "v") - distance_correlation(x, noise, "v"))
    u_gap = float(distance_correlation(x, y, "u") - distance_correlation(x, noise, "u"))
    assert u_gap > 5 * v_gap > 0


def test_batch_pool_is_one_estimate_over_all_aligned_frames() -> None:
    gen = torch.Generator().manual_seed(0)
    s, e = torch.randn(6, 5, 8, generator=gen), torch.randn(6, 5, 12, generator=gen)
    pooled = feature_loss_dcor(s, e, "u", "batch")
    assert float(pooled) == pytest.approx(1 - dcor.u_distance_correlation_sqr(
        s.reshape(30, 8).double().numpy(), e.reshape(30, 12).double().numpy()), abs=1e-5)
    per_frame = feature_loss_dcor(s, e, "u", "frame")
    expected = np.mean([1 - dcor.u_distance_correlation_sqr(s[:, t].double().numpy(), e[:, t].double().numpy())
                        for t in range(5)])
    assert float(per_frame) == pytest.approx(expected, abs=1e-5)


def test_u_loss_has_finite_gradients_and_teacher_gets_none() -> None:
    s = torch.randn(16, 3, 8, requires_grad=True)
    e = torch.randn(16, 3, 20, requires_grad=True)
    for pool in ("frame", "batch"):
        s.grad = None
        feature_loss_dcor(s, e, "u", pool).backward()
        assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
        assert e.grad is None


def test_bad_estimator_pool_and_too_few_rows_are_one_clear_error() -> None:
    with pytest.raises(ConfigError, match="dcor_estimator"):
        EAsTObjective("east-final", dcor_estimator="w")
    with pytest.raises(ConfigError, match="dcor_pool"):
        EAsTObjective("east-final", dcor_pool="clip")
    with pytest.raises(TrainingError, match="at least 4 rows"):
        distance_correlation(torch.randn(3, 4), torch.randn(3, 2), "u")
