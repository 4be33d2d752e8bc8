"""The training loop on a CUDA GPU: bf16 autocast, a frozen probe on the device, checkpoints, resume.

Skipped without a GPU (CI has none); run on a GPU machine with ``pytest tests/test_train_cuda.py``.
Data live in memory, so the test needs only torch (no stores, no audio files).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

SR = 16000
FREQS = (300.0, 700.0, 1500.0, 3100.0)


class _Memory:
    """A map-style dataset of tone clips with label-carrying teacher frames (ClipDataset's item layout)."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.labels = (rng.random((n, len(FREQS))) < 0.5).astype(np.float32)
        t = np.arange(2 * SR) / SR
        self.audio = np.stack([
            sum(0.2 * y * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f, y in zip(FREQS, row))
            + 0.05 * rng.standard_normal(len(t)) for row in self.labels]).astype(np.float32)
        w = rng.standard_normal((8, len(FREQS)))
        self.teacher = ((2 * self.labels - 1) @ w.T)[:, None].astype(np.float32)  # (n, 1, 8)

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Any:
        from pipeline.batch import ClipItem

        return ClipItem(self.audio[i], self.labels[i], np.ones(4, bool), i, [self.teacher[i]])

    def collate(self, items: list[Any]) -> Any:
        """One teacher, clip-level frames at 0.96 s summarising 1.92 s."""
        from pipeline.batch import collate_items

        return collate_items(items, [np.array([0.96])], [1.92])


def _trainer(run_dir: Path, **changes: Any):  # noqa: ANN202
    from pipeline.losses import EAsTObjective
    from pipeline.probe import build_probe
    from pipeline.train import Trainer
    from tests.stage2_fixtures import distill_config, small_student

    student = small_student(4, SR, seed=0)
    torch.manual_seed(1)
    probe = build_probe(8, 4, np.zeros(8, np.float32), np.ones(8, np.float32)).eval()
    config = distill_config(variant="east-kd", lam=0.3, device="cuda", amp=True, batch_size=8, **changes)
    return Trainer(student, EAsTObjective(variant="east-kd", lam=0.3), config, run_dir,
                   probes=[(0, probe)], device="cuda")


def _rows(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "history.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def test_amp_training_on_cuda_learns_in_bf16(tmp_path: Path) -> None:
    train, valid = _Memory(32, 0), _Memory(16, 1)
    trainer = _trainer(tmp_path / "run", epochs=6)
    dtypes = set()
    trainer.student.stage3.register_forward_hook(lambda _m, _i, out: dtypes.add(out.dtype))
    result = trainer.fit(train, valid, progress=False)
    assert torch.bfloat16 in dtypes  # autocast was on
    rows = _rows(tmp_path / "run")
    assert len(rows) == result.epochs_run == 6
    terms = ("train_total", "train_pred", "train_feat", "train_kd")
    assert all(math.isfinite(r[k]) for r in rows for k in terms)
    assert rows[-1]["train_pred"] < 0.8 * rows[0]["train_pred"]
    assert next(trainer.student.parameters()).device.type == "cuda"
    state = torch.load(tmp_path / "run" / "best.pt", map_location="cpu", weights_only=True)
    assert all(v.device.type == "cpu" and v.dtype != torch.bfloat16 for v in state.values())


def test_cuda_run_resumes_after_an_interruption(tmp_path: Path) -> None:
    train, valid = _Memory(16, 0), _Memory(8, 1)
    straight = _trainer(tmp_path / "straight", epochs=3)
    straight.fit(train, valid, progress=False)
    first = _trainer(tmp_path / "resumed", epochs=3)
    original = first._checkpoint

    def checkpoint(run: Any) -> None:
        original(run)
        if run.state.epoch == 1:
            raise KeyboardInterrupt

    first._checkpoint = checkpoint  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        first.fit(train, valid, progress=False)
    result = _trainer(tmp_path / "resumed", epochs=3).fit(train, valid, progress=False)
    assert result.epochs_run == 3 and [r["epoch"] for r in _rows(tmp_path / "resumed")] == [1, 2, 3]
    a = torch.load(tmp_path / "straight" / "last.pt", map_location="cpu", weights_only=True)["model"]
    b = torch.load(tmp_path / "resumed" / "last.pt", map_location="cpu", weights_only=True)["model"]
    for key in a:  # cuDNN may pick other kernels: equal up to float noise, not bits
        assert torch.allclose(a[key].float(), b[key].float(), rtol=1e-3, atol=1e-4), key
