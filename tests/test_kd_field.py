"""KD as the field runs it (issue 18, item 4): settings, no new defaults.

EfficientAT and PretrainedSED weight the teacher's soft targets 0.9 and the labels 0.1 at temperature 1,
on every clip; here that is ``lam: 0.9, kd_weight: 1.0, tau: 1, kd_entries: all`` with the mean of
several teachers' probe logits as the target. Each check compares the objective with a value computed
by hand in numpy.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config import DistillConfig
from pipeline.losses import EAsTObjective
from pipeline.students.base import StudentOutput
from pipeline.train import Trainer
from tests.batches import frames, make_batch

torch.set_num_threads(1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _binary_kl(zt: np.ndarray, zs: np.ndarray, tau: float) -> np.ndarray:
    """``tau^2 KL(sigma(zt/tau) || sigma(zs/tau))`` per entry, the textbook form."""
    pt, ps = _sigmoid(zt / tau), _sigmoid(zs / tau)
    return tau * tau * (pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps)))


def _bce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    p = _sigmoid(z)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def _case(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    known = rng.random((6, 5)) > 0.3
    known[4] = False  # an unlabeled clip
    return {"zs": rng.normal(size=(6, 5)) * 2, "probe_a": rng.normal(size=(6, 5)) * 2,
            "probe_b": rng.normal(size=(6, 5)) * 2, "y": (rng.random((6, 5)) > 0.5).astype(float), "known": known}


def _objective_terms(objective: EAsTObjective, c: dict[str, np.ndarray], teacher_logits: np.ndarray) -> dict:
    """The objective's terms with one feature stage and teacher frames (their weight is 0 at kd_weight 1)."""
    gen = torch.Generator().manual_seed(9)
    output = StudentOutput(torch.from_numpy(c["zs"]), [torch.randn(6, 4, 8, generator=gen, dtype=torch.float64)],
                           [0.5], [0.25])
    teacher = frames(torch.randn(6, 4, 3, generator=gen, dtype=torch.float64), 0.25 + 0.5 * np.arange(4), 0.5)
    batch = make_batch(torch.from_numpy(c["y"]), torch.from_numpy(c["known"]), [teacher])
    return objective(output, batch, teacher_logits=torch.from_numpy(teacher_logits))


def test_field_kd_is_point_one_bce_plus_point_nine_kd_on_every_entry_of_the_mean_probe() -> None:
    c = _case()
    target = (c["probe_a"] + c["probe_b"]) / 2  # the mean of two teachers' probe logits
    field = EAsTObjective("east-kd", lam=0.9, kd_weight=1.0, tau=1.0, kd_entries="all", stage_weights=(1,))
    got = _objective_terms(field, c, target)
    bce = _bce(c["zs"], c["y"])[c["known"]].mean()
    kd = _binary_kl(target, c["zs"], 1.0).mean()  # every (clip, class), labelled or not
    assert float(got["kd"]) == pytest.approx(kd, rel=1e-9)
    assert float(got["total"]) == pytest.approx(0.1 * bce + 0.9 * kd, rel=1e-9)
    # the paper's rule differs: KD on known labels, and every class of the unlabeled clip only
    paper = EAsTObjective("east-kd", lam=0.9, kd_weight=1.0, tau=1.0, stage_weights=(1,))
    rows = c["known"] | ~c["known"].any(axis=1, keepdims=True)
    assert float(_objective_terms(paper, c, target)["kd"]) == pytest.approx(
        _binary_kl(target, c["zs"], 1.0)[rows].mean(), rel=1e-9)


def test_kd_weight_point_nine_of_the_regulariser_with_the_feature_term() -> None:
    gen = torch.Generator().manual_seed(1)
    c = _case(1)
    features = [torch.randn(6, 4, 8, generator=gen, dtype=torch.float64)]
    output = StudentOutput(torch.from_numpy(c["zs"]), features, [0.5], [0.25])
    teacher = torch.randn(6, 4, 3, generator=gen, dtype=torch.float64)
    objective = EAsTObjective("east-kd", lam=0.3, kd_weight=0.9, tau=1.0, kd_entries="all", stage_weights=(1,),
                              dcor_estimator="u", dcor_pool="batch")
    batch = make_batch(torch.from_numpy(c["y"]), torch.from_numpy(c["known"]),
                       [frames(teacher, 0.25 + 0.5 * np.arange(4), 0.5)])
    got = objective(output, batch, teacher_logits=torch.from_numpy(c["probe_a"]))
    bce = _bce(c["zs"], c["y"])[c["known"]].mean()
    kd = _binary_kl(c["probe_a"], c["zs"], 1.0).mean()
    feat = float(got["feat"])
    assert float(got["total"]) == pytest.approx(0.7 * bce + 0.3 * (0.9 * kd + 0.1 * feat), rel=1e-9)


class _Linear(torch.nn.Module):
    """A stand-in student: logits from the mean of its input, no feature stages."""

    def __init__(self) -> None:
        super().__init__()
        self.head = torch.nn.Linear(1, 5, dtype=torch.float64)

    def forward(self, audio: torch.Tensor) -> StudentOutput:  # type: ignore[override]
        return StudentOutput(self.head(audio.mean(dim=1, keepdim=True)), [], [], [])


class _Probe(torch.nn.Module):
    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.logits = torch.from_numpy(logits)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.logits


def test_trainer_averages_the_probes_of_several_teachers(tmp_path) -> None:  # noqa: ANN001
    c = _case(2)
    student = _Linear()
    objective = EAsTObjective("east-kd", lam=0.9, kd_weight=1.0, tau=1.0, kd_entries="all", stage_weights=(1,))
    trainer = Trainer(student, objective, DistillConfig(amp=False), tmp_path,
                      probes=[(0, _Probe(c["probe_a"])), (1, _Probe(c["probe_b"]))])
    audio = torch.randn(6, 32, dtype=torch.float64)
    batch = make_batch(torch.from_numpy(c["y"]), torch.from_numpy(c["known"]),
                       [frames(torch.zeros(6, 1, 2), np.zeros(1), 0.0), frames(torch.zeros(6, 1, 3), np.zeros(1), 0.0)],
                       audio=audio)
    seen = trainer._kd_targets(batch)
    assert seen is not None
    np.testing.assert_allclose(seen.numpy(), (c["probe_a"] + c["probe_b"]) / 2)


def test_the_defaults_stay_the_papers() -> None:
    cfg = DistillConfig()
    assert (cfg.lam, cfg.kd_weight, cfg.tau, cfg.kd_entries, cfg.kd_teacher) == (0.3, 0.3, 2.0, "known", "")
