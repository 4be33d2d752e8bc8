"""The teacher's linear probe: it learns a linear task, saves as plain tensors, and is the KD teacher."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.errors import TrainingError
from pipeline.losses import kd_loss
from pipeline.metrics import evaluate_predictions
from pipeline.probe import ProbeFit, build_probe, fit_probe, load_probe, save_probe
from tests import stage2_fixtures
from tests.stage2_fixtures import TinyPipeline

tiny_pipeline = stage2_fixtures.tiny_pipeline  # the session's real pipeline (built once)


def _linear_task(n: int, dim: int = 24, classes: int = 5, seed: int = 0):  # noqa: ANN202
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((dim, classes))
    x = rng.standard_normal((n, dim)).astype(np.float32)
    scores = x @ w + 0.3 * rng.standard_normal((n, classes))
    y = (scores > np.quantile(scores, 0.6, axis=0)).astype(np.float32)
    known = rng.random((n, classes)) > 0.2
    return x, y, known


def test_probe_learns_a_linear_task_and_picks_settings_on_validation() -> None:
    torch.manual_seed(0)
    x, y, k = _linear_task(600)
    mean, std = np.zeros(24, np.float32), np.ones(24, np.float32)
    probe, fit = fit_probe(x[:300], y[:300], k[:300], x[300:450], y[300:450], k[300:450], mean=mean, std=std,
                           lr=0.05, steps=120, weight_decays=(1e-4, 1e-2), seed=0)
    assert fit.weight_decay in (1e-4, 1e-2) and 20 <= fit.steps <= 120 and fit.steps % 20 == 0
    with torch.no_grad():
        probs = torch.sigmoid(probe(torch.from_numpy(x[450:]))).numpy()
    test = evaluate_predictions(probs, y[450:], k[450:])
    assert test.mAP > 0.9 and fit.valid_map > 0.9
    # (B, T, D) input is pooled over time first: repeated frames give the pooled logits
    frames = torch.from_numpy(np.repeat(x[450:460, None], 3, axis=1))
    with torch.no_grad():
        pooled = probe(torch.from_numpy(x[450:460])).numpy()
        np.testing.assert_allclose(probe(frames).numpy(), pooled, rtol=1e-5, atol=1e-5)  # a float32 mean of 3 copies


def test_probe_with_shuffled_labels_stays_near_chance() -> None:
    x, y, k = _linear_task(600, seed=1)
    rng = np.random.default_rng(2)
    y_shuffled = y[rng.permutation(len(y))]
    mean, std = np.zeros(24, np.float32), np.ones(24, np.float32)
    probe, _fit = fit_probe(x[:300], y_shuffled[:300], k[:300], x[300:450], y_shuffled[300:450], k[300:450],
                            mean=mean, std=std, lr=0.05, steps=60, weight_decays=(1e-2,), seed=0)
    with torch.no_grad():
        probs = torch.sigmoid(probe(torch.from_numpy(x[450:]))).numpy()
    chance = evaluate_predictions(probs, y_shuffled[450:], k[450:]).mAP
    assert chance < 0.6  # positives are 40 %: a probe on noise does not invent signal


def test_saved_probe_loads_with_weights_only_and_reproduces_logits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    mean = rng.standard_normal(10).astype(np.float32)
    std = rng.uniform(0.5, 2.0, 10).astype(np.float32)
    torch.manual_seed(0)
    probe = build_probe(10, 3, mean, std)
    save_probe(probe, tmp_path / "p" / "probe.pt", teacher="fake", fit=ProbeFit(0.01, 40, 0.7))
    state = torch.load(tmp_path / "p" / "probe.pt", weights_only=True)  # tensors only, no pickled objects
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert float(state["meta.weight_decay"]) == pytest.approx(0.01) and int(state["meta.steps"]) == 40
    loaded = load_probe(tmp_path / "p" / "probe.pt")
    x = torch.from_numpy(rng.standard_normal((7, 4, 10)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(loaded(x), probe(x))
        np.testing.assert_allclose(loaded.normalise(x).numpy(), ((x.numpy() - mean) / std), rtol=1e-6)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    with pytest.raises(TrainingError, match="pipeline probe"):
        load_probe(tmp_path / "missing.pt")


def test_kd_against_the_probe_itself_is_zero_and_grows_with_disagreement() -> None:
    torch.manual_seed(0)
    probe = build_probe(12, 4, np.zeros(12, np.float32), np.ones(12, np.float32))
    x = torch.randn(9, 3, 12)
    known = torch.rand(9, 4) > 0.3
    with torch.no_grad():
        logits = probe(x)
    assert float(kd_loss(logits, logits, known, tau=2.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(kd_loss(logits + 1.0, logits, known, tau=2.0)) > 1e-3


def test_trainer_kd_logits_equal_the_probe_on_the_pooled_embeddings(tiny_pipeline: TinyPipeline) -> None:
    """What east-kd distils on a whole clip is what the probe stage was trained and scored on."""
    from pipeline.data import ClipDataset, frame_statistics, pooled_embeddings
    from pipeline.audio_source import AudioSource
    from pipeline.manifests import load_split

    train = load_split(tiny_pipeline.manifests, "train")
    valid = load_split(tiny_pipeline.manifests, "valid")
    probe = load_probe(tiny_pipeline.runs / "probe-musicnn" / "probe.pt")
    mean, std = frame_statistics(tiny_pipeline.store, train)
    np.testing.assert_allclose(probe.mean.numpy(), mean, rtol=1e-6)
    np.testing.assert_allclose(probe.std.numpy(), std, rtol=1e-6)
    audio = AudioSource(tiny_pipeline.audio_root, 16000, None)
    ds = ClipDataset(valid, audio, clip_seconds=valid[0].duration, teacher_store=tiny_pipeline.store,
                     teacher_norm=(mean, std))
    from pipeline.stores import open_store

    store = open_store(tiny_pipeline.store)
    assert ds.frames[0] == store.entry(valid[0].id).n_frames  # whole clips: every frame
    batch = ds.collate([ds[i] for i in range(len(ds))])
    pooled = (pooled_embeddings(tiny_pipeline.store, valid) - mean) / std
    with torch.no_grad():
        from_loader = probe(batch.teachers[0].frames)  # what Trainer._kd_targets feeds kd_loss
        from_stage = probe(torch.from_numpy(pooled))
    np.testing.assert_allclose(from_loader.numpy(), from_stage.numpy(), atol=1e-4)
    assert float(kd_loss(from_stage, from_loader, batch.known)) < 1e-7
    metrics = json.loads((tiny_pipeline.runs / "probe-musicnn" / "metrics.json").read_text())
    probs = torch.sigmoid(from_stage).numpy()
    labels, known = batch.labels.numpy(), batch.known.numpy()
    assert evaluate_predictions(probs, labels, known).mAP == pytest.approx(metrics["valid_map"], abs=1e-6)
