"""The field's feature losses beside distance correlation: bias-corrected linear CKA and cosine after a
learned projection (issue 18, item 2), each against a reference written here, and chosen per teacher."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.config import DistillConfig, TeacherRef
from pipeline.errors import ConfigError, TrainingError
from pipeline.losses import EAsTObjective, feature_loss_cka, feature_loss_projected_cosine, linear_cka
from pipeline.students.base import StudentOutput
from tests.batches import frames, make_batch

torch.set_num_threads(1)


def unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Song et al. (2012), eq. 5, as printed: kernels with their diagonals set to 0."""
    n = k.shape[0]
    k, l = k.copy(), l.copy()  # noqa: E741
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l, 0.0)
    one = np.ones(n)
    return float((np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
                  - 2.0 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3)))


def reference_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA with the unbiased HSIC (Nguyen et al. 2021, eq. 3 for one minibatch)."""
    k, l = x @ x.T, y @ y.T  # noqa: E741
    return unbiased_hsic(k, l) / math.sqrt(unbiased_hsic(k, k) * unbiased_hsic(l, l))


@pytest.mark.parametrize("n, d1, d2, coupling, seed", [(4, 1, 1, 1.0, 0), (5, 3, 2, 0.5, 1), (16, 8, 12, 1.0, 2),
                                                       (33, 20, 5, 0.2, 3), (64, 40, 40, 0.0, 4)])
def test_cka_equals_the_unbiased_hsic_formula(n: int, d1: int, d2: int, coupling: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d1))
    y = rng.normal(size=(n, d2)) + coupling * (x @ rng.normal(size=(d1, d2)))
    ours = float(linear_cka(torch.from_numpy(x), torch.from_numpy(y)))
    assert ours == pytest.approx(reference_cka(x, y), abs=1e-9)


def test_cka_hand_values_and_invariances() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(12, 6, generator=gen, dtype=torch.float64)
    assert float(linear_cka(x, x)) == pytest.approx(1.0, abs=1e-12)  # identical features
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))
    y = torch.randn(12, 4, generator=gen, dtype=torch.float64) + x[:, :4]
    base = float(linear_cka(x, y))
    assert float(linear_cka(x @ q, y)) == pytest.approx(base, abs=1e-12)  # orthogonal transform
    assert float(linear_cka(3.7 * x, 0.01 * y)) == pytest.approx(base, abs=1e-12)  # isotropic scaling
    assert float(linear_cka(x @ q * 2.0, x)) == pytest.approx(1.0, abs=1e-12)  # a rotated, scaled copy
    # tiny hand case: n = 4, 1-d, y = -x: K = L, so CKA = 1 whatever the sign
    t = torch.tensor([[1.0], [2.0], [4.0], [8.0]], dtype=torch.float64)
    assert float(linear_cka(t, -t)) == pytest.approx(1.0, abs=1e-12)


def test_cka_is_about_zero_for_independent_features_at_small_batches() -> None:
    gen = torch.Generator().manual_seed(1)
    draws = [float(linear_cka(torch.randn(16, 256, generator=gen, dtype=torch.float64),
                              torch.randn(16, 200, generator=gen, dtype=torch.float64))) for _ in range(30)]
    assert abs(float(np.mean(draws))) < 0.03
    with pytest.raises(TrainingError, match="at least 4 rows"):
        linear_cka(torch.randn(3, 2), torch.randn(3, 2))


def test_cka_loss_pools_and_gradients() -> None:
    gen = torch.Generator().manual_seed(2)
    s = torch.randn(8, 5, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    e = torch.randn(8, 5, 7, generator=gen, dtype=torch.float64, requires_grad=True)
    per_frame = np.mean([1 - reference_cka(s[:, t].detach().numpy(), e[:, t].detach().numpy()) for t in range(5)])
    assert float(feature_loss_cka(s, e, "frame").detach()) == pytest.approx(per_frame, abs=1e-9)
    pooled = 1 - reference_cka(s.detach().reshape(40, 6).numpy(), e.detach().reshape(40, 7).numpy())
    loss = feature_loss_cka(s, e, "batch")
    assert float(loss.detach()) == pytest.approx(pooled, abs=1e-9)
    loss.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0 and e.grad is None
    teacher = e.detach()[:, :2]
    assert torch.autograd.gradcheck(lambda a: feature_loss_cka(a, teacher, "frame"),
                                    (s.detach()[:, :2].clone().requires_grad_(),))


def test_projected_cosine_hand_values_and_gradients() -> None:
    projection = torch.nn.Linear(2, 2)
    with torch.no_grad():
        projection.weight.copy_(torch.eye(2))
        projection.bias.zero_()
    s = torch.tensor([[[1.0, 0.0]]] * 4)  # (N=4, T=1, C=2)
    e = torch.tensor([[[0.0, 1.0]], [[2.0, 0.0]], [[-1.0, 0.0]], [[1.0, 1.0]]])
    expected = (1.0 + 0.0 + 2.0 + (1 - 1 / math.sqrt(2))) / 4
    assert float(feature_loss_projected_cosine(s, e, projection).detach()) == pytest.approx(expected, abs=1e-6)
    # a projection into a larger teacher dimension; gradients reach the student and the head only
    head = torch.nn.Linear(3, 5)
    s = torch.randn(6, 4, 3, requires_grad=True)
    e = torch.randn(6, 4, 5, requires_grad=True)
    feature_loss_projected_cosine(s, e, head).backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0 and e.grad is None
    assert head.weight.grad is not None and torch.isfinite(head.weight.grad).all()
    zero = torch.zeros(2, 1, 3, requires_grad=True)  # a silent student: finite, not NaN
    loss = feature_loss_projected_cosine(zero, torch.randn(2, 1, 5), torch.nn.Linear(3, 5, bias=False))
    loss.backward()
    assert float(loss.detach()) == pytest.approx(1.0) and torch.isfinite(zero.grad).all()


def _output(gen: torch.Generator) -> StudentOutput:
    features = [torch.randn(8, 5, c, generator=gen, requires_grad=True) for c in (4, 6, 10)]
    return StudentOutput(torch.randn(8, 3, generator=gen), features, [0.96] * 3, [0.47] * 3)


def test_feature_loss_is_chosen_per_teacher() -> None:
    gen = torch.Generator().manual_seed(3)
    output = _output(gen)
    teachers = [torch.randn(8, 3, 7, generator=gen), torch.randn(8, 3, 9, generator=gen)]
    times = [torch.tensor([1.5, 2.5, 3.5])] * 2
    known = torch.ones(8, 3, dtype=torch.bool)
    both = make_batch(torch.zeros(8, 3), known, [frames(t, ts, 3.0) for t, ts in zip(teachers, times)])
    first = make_batch(torch.zeros(8, 3), known, [frames(teachers[0], times[0], 3.0)])
    mixed = EAsTObjective("east-final", feature_loss=["linear_cka", "cosine_projection"], teacher_weights=[1.0, 3.0])
    heads = mixed.build_projections([4, 6, 10], [7, 9])
    assert list(heads) == ["1_2"] and heads["1_2"].in_features == 10 and heads["1_2"].out_features == 9
    got = mixed(output, both)
    cka = EAsTObjective("east-final", feature_loss="linear_cka")(output, first)["feat"]
    cosine = mixed.feature_term(output, teachers[1], times[1], 3.0, slot=1)
    expected = (float(cka.detach()) + 3 * float(cosine.detach())) / 4
    assert float(got["feat"].detach()) == pytest.approx(expected, abs=1e-6)
    got["total"].backward()
    assert heads["1_2"].weight.grad is not None and output.features[2].grad is not None
    with pytest.raises(TrainingError, match="build_projections"):
        EAsTObjective("east-final", feature_loss="cosine_projection")(output, first)
    with pytest.raises(ConfigError, match="linear_cka"):
        EAsTObjective("east-final", feature_loss=["linear_cka", "mse"])


def test_params_choose_the_feature_loss_per_teacher() -> None:
    from pipeline.config import from_mapping

    cfg = from_mapping(DistillConfig, {"feature_loss": "distance_correlation", "teachers": [
        "musicnn", {"name": "musicnn@msd", "feature_loss": "cosine_projection"}]})
    assert cfg.teachers[1] == TeacherRef("musicnn@msd", 1.0, "cosine_projection")
    assert cfg.feature_losses() == ("distance_correlation", "cosine_projection")
    with pytest.raises(ConfigError, match="linear_cka"):
        from_mapping(DistillConfig, {"teachers": [{"name": "musicnn", "feature_loss": "mse"}]})
