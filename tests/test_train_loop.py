"""The training loop: learning, EAsT mechanics, history, best checkpoint, early stopping, resume."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pipeline.data import ClipDataset

from pipeline.audio_source import AudioSource
from pipeline.errors import TrainingError
from pipeline.losses import EAsTObjective
from pipeline.train import HISTORY_FIELDS, Trainer
from tests.stage2_fixtures import distill_config, make_fake_data, small_student

SR = 16000
FREQS = (300.0, 700.0, 1500.0, 3100.0)  # one tone per class
HIDDEN_FREQ = 2200.0  # a tone no label asks for, but the teacher encodes
HOP = 1.92  # the teacher's grid matches Mobile-FCN's last stage (0.95 s + k * 1.92 s)


def _task(root: Path, n: int, seed: int = 0):  # noqa: ANN202
    """Tone clips labelled by the tones they hold; the teacher encodes the labels and a hidden tone."""
    rng = np.random.default_rng(seed)
    hidden = rng.random(n) < 0.5
    w_labels = rng.standard_normal((8, len(FREQS)))
    w_hidden = 2.0 * rng.standard_normal(8)

    def audio_fn(i: int, y: np.ndarray, samples: int, r: np.random.Generator) -> np.ndarray:
        t = np.arange(samples) / SR
        x = 0.05 * r.standard_normal(samples)
        for freq, on in zip(FREQS, y):
            if on:
                x += 0.2 * np.sin(2 * np.pi * freq * t + r.uniform(0, 2 * np.pi))
        if hidden[i]:
            x += 0.2 * np.sin(2 * np.pi * HIDDEN_FREQ * t)
        return x.astype(np.float32)

    def teacher_fn(i: int, y: np.ndarray, frames: int, r: np.random.Generator) -> np.ndarray:
        mean = w_labels @ (2.0 * y - 1.0) + w_hidden * (2.0 * hidden[i] - 1.0)
        return mean[None] + 0.3 * r.standard_normal((frames, 8))

    return make_fake_data(root, [4.0] * n, sample_rate=SR, dim=8, hop=HOP, frame0=HOP / 2, window=HOP,
                          audio_fn=audio_fn, teacher_fn=teacher_fn, seed=seed)


def _sets(data, n_train: int, crop: float = 2.0):  # noqa: ANN001, ANN202
    audio = AudioSource(data.audio_root, SR, data.cache)
    train = ClipDataset(data.clips[:n_train], audio, clip_seconds=crop, teacher_store=data.store,
                        random_crop=True, seed=0)
    valid = ClipDataset(data.clips[n_train:], audio, clip_seconds=crop, teacher_store=data.store)
    return train, valid


def _trainer(run_dir: Path, *, variant: str = "baseline", lam: float = 0.0,
             seed: int = 0, fingerprint: str = "", **cfg: Any) -> Trainer:
    student = small_student(4, SR, seed=seed)
    objective = EAsTObjective(variant=variant, lam=lam)
    config = distill_config(variant=variant, lam=lam, seed=seed, **cfg)
    return Trainer(student, objective, config, run_dir, fingerprint=fingerprint)


def _history(run_dir: Path) -> tuple[list[str], list[dict[str, float]]]:
    with open(run_dir / "history.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = [{k: float(v) for k, v in row.items()} for row in reader]
        return list(reader.fieldnames or []), rows


def _recalibrate(student, batch) -> None:  # noqa: ANN001
    """Re-estimate BatchNorm statistics on ``batch`` (15 steps are too few for the running means)."""
    for module in student.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
    student.train()
    with torch.no_grad():
        student(batch.audio)
    student.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Baseline and EAsT-Final (lambda 0.9) trained on the same 48 clips, 5 epochs of 3 steps."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("train")
    data = _task(root / "data", 80)
    train, valid = _sets(data, 48)
    held = valid.collate([valid[i] for i in range(len(valid))])
    runs: dict[str, Any] = {"train": train, "valid": valid, "held": held}
    for variant, lam in (("baseline", 0.0), ("east-final", 0.9)):
        trainer = _trainer(root / variant, variant=variant, lam=lam, epochs=5, batch_size=16)
        runs[variant] = (trainer, trainer.fit(train, valid, progress=False))
    return runs


def _dcor(trained: dict[str, Any], student) -> float:  # noqa: ANN001
    """Squared distance correlation of the student's last stage with the teacher on the held-out clips."""
    train = trained["train"]
    _recalibrate(student, train.collate([train[i] for i in range(len(train))]))
    objective = EAsTObjective(variant="east-final")
    with torch.no_grad():
        output = student(trained["held"].audio)
        teacher, times = trained["held"].teachers[0].frames, trained["train"].teacher_times()
        loss = objective.feature_term(output, teacher, times, HOP)
    return 1.0 - float(loss)


def test_losses_fall_on_a_tiny_task(trained: dict[str, Any]) -> None:
    _fields, base = _history(trained["baseline"][0].run_dir)
    assert base[-1]["train_pred"] < 0.75 * base[0]["train_pred"]
    _fields, east = _history(trained["east-final"][0].run_dir)
    assert east[-1]["train_feat"] < 0.85 * east[0]["train_feat"]
    assert east[-1]["train_total"] < 0.85 * east[0]["train_total"]
    for row in east:  # total = (1 - lam) pred + lam feat
        expected = 0.1 * row["train_pred"] + 0.9 * row["train_feat"]
        assert row["train_total"] == pytest.approx(expected, rel=1e-5)


def test_east_final_raises_distance_correlation_above_the_baseline(trained: dict[str, Any]) -> None:
    untrained = _dcor(trained, small_student(4, SR, seed=0))
    baseline = _dcor(trained, trained["baseline"][0].student)
    east = _dcor(trained, trained["east-final"][0].student)
    assert east > baseline + 0.05, (untrained, baseline, east)
    assert east > untrained + 0.1


def test_history_has_one_row_per_epoch_with_every_column(trained: dict[str, Any]) -> None:
    trainer, result = trained["baseline"]
    fields, rows = _history(trainer.run_dir)
    assert fields == list(HISTORY_FIELDS)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5] and result.epochs_run == 5
    for row in rows:
        assert 0.0 <= row["valid_map"] <= 1.0 and 0.0 <= row["valid_auc"] <= 1.0
        assert row["lr"] > 0 and row["clips_per_second"] > 0 and row["seconds"] > 0
        assert math.isfinite(row["train_feat"])  # a baseline still logs how teacher-like it is
        assert math.isnan(row["train_kd"])  # no probe given
    assert result.best_valid_map == max(r["valid_map"] for r in rows)


def test_best_pt_holds_the_best_validation_epoch(trained: dict[str, Any]) -> None:
    trainer, result = trained["east-final"]
    _fields, rows = _history(trainer.run_dir)
    maps = [r["valid_map"] for r in rows]
    assert result.best_epoch == int(np.argmax(maps)) + 1
    student = small_student(4, SR)
    student.load_state_dict(torch.load(trainer.run_dir / "best.pt", weights_only=True))
    check = Trainer(student, trainer.objective, trainer.config, trainer.run_dir / "check")
    assert check.validate(trained["valid"])["map"] == pytest.approx(max(maps), abs=1e-9)


class _Scripted(Trainer):
    """A trainer whose validation mAP follows a script (to test selection and stopping exactly)."""

    def __init__(self, *args: Any, script: list[float], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.script = list(script)
        self.snapshots: list[dict[str, torch.Tensor]] = []

    def validate(self, dataset) -> dict[str, float]:  # noqa: ANN001
        self.snapshots.append({k: v.clone() for k, v in self.student.state_dict().items()})
        return {"total": 1.0, "map": self.script[len(self.snapshots) - 1], "auc": 0.5}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    """Eight training and eight validation clips (one batch per epoch)."""
    torch.set_num_threads(1)
    data = _task(tmp_path_factory.mktemp("small"), 16, seed=1)
    return _sets(data, 8)


def test_best_checkpoint_and_early_stopping_follow_validation(small: tuple, tmp_path: Path) -> None:
    train, valid = small
    student = small_student(4, SR)
    trainer = _Scripted(student, EAsTObjective(variant="baseline", lam=0.0),
                        distill_config(epochs=10, patience=3), tmp_path / "run",
                        script=[0.30, 0.50, 0.45, 0.50, 0.49, 0.90, 0.90])
    result = trainer.fit(train, valid, progress=False)
    # 0.50 at epoch 2 is not beaten by epochs 3-5 (a tie is no improvement): stop after epoch 5
    assert (result.epochs_run, result.stopped_early, result.best_epoch) == (5, True, 2)
    assert result.best_valid_map == 0.50
    _fields, rows = _history(tmp_path / "run")
    assert [r["valid_map"] for r in rows] == [0.30, 0.50, 0.45, 0.50, 0.49]
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    for key, value in trainer.snapshots[1].items():
        assert torch.equal(best[key], value), key
    assert any(not torch.equal(best[k], v) for k, v in trainer.snapshots[-1].items())


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)
    return state["model"] if "model" in state else state


def _interrupt_after_checkpoint(trainer: Trainer, epoch: int) -> None:
    original = trainer._checkpoint

    def checkpoint(run: Any) -> None:
        original(run)
        if run.state.epoch == epoch:
            raise KeyboardInterrupt

    trainer._checkpoint = checkpoint  # type: ignore[method-assign]


@pytest.mark.parametrize("mixup_alpha", [0.0, 0.4])
def test_resume_after_interruption_matches_an_uninterrupted_run(small: tuple, tmp_path: Path,
                                                                mixup_alpha: float) -> None:
    train, valid = small
    kw = dict(variant="east-final", lam=0.5, epochs=3, mixup_alpha=mixup_alpha)
    straight = _trainer(tmp_path / "straight", **kw)
    straight.fit(train, valid, progress=False)

    first = _trainer(tmp_path / "resumed", **kw)
    _interrupt_after_checkpoint(first, 1)
    with pytest.raises(KeyboardInterrupt):
        first.fit(train, valid, progress=False)
    assert len(_history(tmp_path / "resumed")[1]) == 1
    second = _trainer(tmp_path / "resumed", seed=0, **kw)  # a new process: fresh model, same seed
    result = second.fit(train, valid, progress=False)
    assert result.epochs_run == 3

    a, b = _weights(tmp_path / "straight" / "last.pt"), _weights(tmp_path / "resumed" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:  # bit-exact on CPU
        assert torch.equal(a[key], b[key]), key
    _f, rows_a = _history(tmp_path / "straight")
    _f, rows_b = _history(tmp_path / "resumed")
    timing = {"clips_per_second", "seconds"}
    strip = [[{k: (v if v == v else "nan") for k, v in r.items() if k not in timing} for r in rows]
             for rows in (rows_a, rows_b)]
    assert strip[0] == strip[1] and len(rows_b) == 3


def test_interruption_before_the_checkpoint_leaves_no_duplicate_history_row(small: tuple,
                                                                            tmp_path: Path) -> None:
    train, valid = small
    trainer = _trainer(tmp_path / "run", epochs=3)

    def stop(row: dict[str, float]) -> None:
        if row["epoch"] == 2:  # the row is written, the epoch-2 checkpoint is not
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        trainer.fit(train, valid, progress=False, on_epoch=stop)
    result = _trainer(tmp_path / "run", epochs=3).fit(train, valid, progress=False)
    _fields, rows = _history(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2, 3] and result.epochs_run == 3


def test_finished_run_is_not_trained_again(small: tuple, tmp_path: Path) -> None:
    train, valid = small
    _trainer(tmp_path / "run", epochs=2).fit(train, valid, progress=False)
    before = _weights(tmp_path / "run" / "last.pt")
    again = _trainer(tmp_path / "run", epochs=2).fit(train, valid, progress=False)
    assert again.epochs_run == 2 and len(_history(tmp_path / "run")[1]) == 2
    after = _weights(tmp_path / "run" / "last.pt")
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_more_epochs_continue_a_plateau_run_and_restart_a_onecycle_one(small: tuple, tmp_path: Path) -> None:
    train, valid = small
    _trainer(tmp_path / "plateau", epochs=1, schedule="plateau").fit(train, valid, progress=False)
    one = _weights(tmp_path / "plateau" / "last.pt")
    more = _trainer(tmp_path / "plateau", epochs=2, schedule="plateau")
    result = more.fit(train, valid, progress=False)
    assert result.epochs_run == 2 and [r["epoch"] for r in _history(tmp_path / "plateau")[1]] == [1, 2]
    two = _weights(tmp_path / "plateau" / "last.pt")
    assert any(not torch.equal(one[k], two[k]) for k in one)  # it trained on from epoch 1

    # a one-cycle schedule is shaped by the epoch count: more epochs cannot continue it
    _trainer(tmp_path / "onecycle", epochs=1).fit(train, valid, progress=False)
    result = _trainer(tmp_path / "onecycle", epochs=2).fit(train, valid, progress=False)
    _trainer(tmp_path / "straight", epochs=2).fit(train, valid, progress=False)
    assert result.epochs_run == 2 and len(_history(tmp_path / "onecycle")[1]) == 2
    a, b = _weights(tmp_path / "onecycle" / "last.pt"), _weights(tmp_path / "straight" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # started over: same as a fresh 2-epoch run


def test_changed_settings_start_a_fresh_run(small: tuple, tmp_path: Path) -> None:
    train, valid = small
    kw = dict(variant="east-final", epochs=2)
    _trainer(tmp_path / "run", lam=0.3, fingerprint="lam=0.3", **kw).fit(train, valid, progress=False)
    changed = _trainer(tmp_path / "run", lam=0.6, fingerprint="lam=0.6", **kw)
    result = changed.fit(train, valid, progress=False)
    assert result.epochs_run == 2 and (tmp_path / "run" / "best.pt").is_file()
    _fields, rows = _history(tmp_path / "run")
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        expected = 0.4 * row["train_pred"] + 0.6 * row["train_feat"]
        assert row["train_total"] == pytest.approx(expected, rel=1e-5)


def test_a_finished_run_whose_best_pt_was_removed_is_trained_again(small: tuple, tmp_path: Path) -> None:
    """`dvc repro` deletes a stage's outputs (best.pt), not last.pt: the best weights must not be guessed."""
    train, valid = small
    first = _trainer(tmp_path / "run", epochs=2).fit(train, valid, progress=False)
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    (tmp_path / "run" / "best.pt").unlink()
    again = _trainer(tmp_path / "run", epochs=2).fit(train, valid, progress=False)
    assert again.epochs_run == 2 and again.best_epoch == first.best_epoch
    assert len(_history(tmp_path / "run")[1]) == 2
    rebuilt = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert all(torch.equal(best[k], rebuilt[k]) for k in best)


def test_fewer_clips_than_a_batch_is_a_training_error(small: tuple, tmp_path: Path) -> None:
    train, valid = small
    with pytest.raises(TrainingError, match="fewer than one batch of 16"):
        _trainer(tmp_path / "run", batch_size=16).fit(train, valid, progress=False)
