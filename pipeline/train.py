"""The stage-two training loop: device, mixed precision, checkpoint/resume, early stopping, history.

One epoch streams batches of (audio, cached teacher frames, labels, mask) from the loader,
computes the EAsT objective and steps Adam; after each epoch the student is scored on the
validation split (macro mAP, the paper's model-selection metric). ``best.pt`` holds the
best validation weights, ``last.pt`` everything needed to resume after an interruption,
``history.csv`` one row per epoch.
"""
from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.config import DistillConfig
from pipeline.errors import TrainingError

log = logging.getLogger(__name__)

HISTORY_FIELDS = ("epoch", "train_total", "train_pred", "train_feat", "train_kd", "valid_total",
                  "valid_map", "valid_auc", "lr", "clips_per_second", "seconds")


@dataclass
class TrainResult:
    """Summary of a finished (or early-stopped) training run."""

    best_epoch: int
    best_valid_map: float
    epochs_run: int
    stopped_early: bool
    train_clips_per_second: float
    seconds: float


def _loader(dataset, *, batch_size: int, shuffle: bool, drop_last: bool,  # noqa: ANN001, ANN202
            num_workers: int, seed: int, sampler=None):  # noqa: ANN001
    import torch
    from torch.utils.data import DataLoader

    from pipeline.data import collate

    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate,
        generator=generator,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
    )


class Trainer:
    """Trains ``student`` with ``objective`` on ``train_set``, selecting on ``valid_set``.

    Args:
        student: the model (waveform in, StudentOutput out).
        objective: ``pipeline.losses.EAsTObjective``.
        config: the ``distill`` settings.
        run_dir: where checkpoints, history and metrics go.
        teacher_times: centre times (s, relative to item start) of the items' teacher frames.
        teacher_window: seconds one teacher frame summarises.
        probe: frozen linear probe for KD (east-kd), or None.
        device: ``cpu`` or ``cuda``.
        fingerprint: digest of every setting of the run; ``last.pt`` is resumed only when
            it was written with the same one (other settings start the run over).
    """

    def __init__(self, student, objective, config: DistillConfig, run_dir: Path, *,  # noqa: ANN001
                 teacher_times: np.ndarray | None, teacher_window: float,
                 probe=None, device: str = "cpu",  # noqa: ANN001
                 fingerprint: str = "") -> None:
        import torch

        from pipeline.distributed import from_env, wrap

        self.torch = torch
        self.dist, device = from_env(device)
        self.student = student.to(device)
        self.model = wrap(self.student, self.dist, device)  # what the training step calls
        self.objective = objective
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = device
        self.probe = probe.to(device) if probe is not None else None
        self.teacher_times = None if teacher_times is None else torch.as_tensor(teacher_times, dtype=torch.float32)
        self.teacher_window = teacher_window
        self.amp = config.amp and device.startswith("cuda")
        self.fingerprint = fingerprint

    # ---- one batch ------------------------------------------------------------------
    def _losses(self, batch: dict[str, Any], *, train: bool) -> tuple[dict[str, Any], Any]:
        torch = self.torch
        audio = batch["audio"].to(self.device, non_blocking=True)
        labels = batch["labels"].to(self.device, non_blocking=True)
        known = batch["known"].to(self.device, non_blocking=True)
        teacher = batch["teacher"].to(self.device, non_blocking=True) if "teacher" in batch else None
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            output = (self.model if train else self.student)(audio)
        teacher_logits = None
        if self.probe is not None and teacher is not None:
            with torch.no_grad():
                teacher_logits = self.probe(teacher)
        losses = self.objective(
            output,
            labels,
            known,
            teacher=teacher,
            teacher_times=self.teacher_times,
            teacher_window=self.teacher_window,
            teacher_logits=teacher_logits,
        )
        return losses, output

    # ---- epochs ---------------------------------------------------------------------
    def fit(self, train_set, valid_set, *, progress: bool = True,  # noqa: ANN001
            on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
        """Train for ``config.epochs`` epochs (resuming from ``last.pt`` when present)."""
        torch = self.torch
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        from pipeline.distributed import agree, sampler

        shard = sampler(train_set, self.dist, seed=cfg.seed)
        loader = _loader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                         num_workers=cfg.num_workers, seed=cfg.seed, sampler=shard)
        if len(loader) == 0:
            raise TrainingError(
                f"{len(train_set)} training clips are fewer than one batch of {cfg.batch_size}; "
                "lower distill.batch_size or add clips"
            )
        optimiser = torch.optim.Adam(self.student.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = self._scheduler(optimiser, steps_per_epoch=len(loader))
        state = self._resume(optimiser, scheduler)
        start_epoch, best_map, best_epoch, stale = state
        generator = torch.Generator()
        started = time.perf_counter()
        clips_seen, train_seconds = 0, 0.0
        epochs_run = start_epoch
        stopped_early = start_epoch > 0 and stale >= cfg.patience  # a finished run is not trained on
        for epoch in range(start_epoch, start_epoch if stopped_early else cfg.epochs):
            train_set.set_epoch(epoch)
            # shuffling and mixup depend on (seed, epoch) only, so a resumed run repeats them exactly
            loader.generator.manual_seed(_epoch_seed(cfg.seed, epoch))
            if shard is not None:
                shard.set_epoch(epoch)
            generator.manual_seed(_epoch_seed(cfg.seed + 7, epoch))
            self.student.train()
            # summed on the device: reading a loss every step would wait for the GPU each time
            sums = {key: torch.zeros((), dtype=torch.float64, device=self.device)
                    for key in ("total", "pred", "feat", "kd")}
            epoch_start = time.perf_counter()
            bar = _bar(len(loader), f"epoch {epoch + 1}/{cfg.epochs}", progress)
            from pipeline.data import mixup, prefetch_to_device

            mix = (lambda b: mixup(b, cfg.mixup_alpha, generator)) if cfg.mixup_alpha > 0 else None
            # batches reach the device one step ahead, on a side stream (no copy on the step's path)
            for step, batch in enumerate(prefetch_to_device(loader, self.device, transform=mix), 1):
                losses, _ = self._losses(batch, train=True)
                optimiser.zero_grad(set_to_none=True)
                losses["total"].backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.student.parameters(), cfg.grad_clip)
                optimiser.step()
                if cfg.schedule == "onecycle":
                    scheduler.step()
                for key in sums:
                    if key in losses:
                        sums[key] += losses[key].detach()
                clips_seen += batch["audio"].shape[0]
                rate = step * cfg.batch_size / max(time.perf_counter() - epoch_start, 1e-9)
                bar.update(1)
                if progress and (step % 20 == 0 or step == len(loader)):
                    bar.set_postfix_str(f"loss {float(sums['total']) / step:.4f}, {rate:.1f} clips/s")
            bar.close()
            seconds = time.perf_counter() - epoch_start
            train_seconds += seconds
            epochs_run = epoch + 1
            if not self.dist.main:  # rank 0 validates and checkpoints; the others wait for its verdict
                if agree(self.dist, False):
                    stopped_early = True
                    break
                continue
            valid = self.validate(valid_set)
            if cfg.schedule == "plateau":
                scheduler.step(valid["total"])
            row = {
                "epoch": epoch + 1,
                **{f"train_{k}": float(v) / len(loader) for k, v in sums.items()},
                "valid_total": valid["total"],
                "valid_map": valid["map"],
                "valid_auc": valid["auc"],
                "lr": optimiser.param_groups[0]["lr"],
                "clips_per_second": len(loader) * cfg.batch_size / seconds,
                "seconds": seconds,
            }
            self._append_history(row)
            if on_epoch is not None:
                on_epoch(row)
            improved = valid["map"] > best_map
            if improved:
                best_map, best_epoch, stale = valid["map"], epoch + 1, 0
                torch.save(self.student.state_dict(), self.run_dir / "best.pt")
            else:
                stale += 1
            self._checkpoint(optimiser, scheduler, epoch + 1, best_map, best_epoch, stale)
            log.info("epoch %d: valid mAP %.4f (best %.4f @ %d)", epoch + 1, valid["map"], best_map, best_epoch)
            if agree(self.dist, stale >= cfg.patience):
                stopped_early = True
                break
        if self.dist.main and not (self.run_dir / "best.pt").is_file():
            torch.save(self.student.state_dict(), self.run_dir / "best.pt")
        return TrainResult(
            best_epoch=best_epoch,
            best_valid_map=best_map,
            epochs_run=epochs_run,
            stopped_early=stopped_early,
            train_clips_per_second=clips_seen / train_seconds if train_seconds else 0.0,
            seconds=time.perf_counter() - started,
        )

    def validate(self, dataset) -> dict[str, float]:  # noqa: ANN001
        """Mean total loss, macro mAP and ROC-AUC over ``dataset`` (whole clips)."""
        from pipeline.metrics import evaluate_predictions

        torch = self.torch
        self.student.eval()
        loader = _loader(dataset, batch_size=self.config.batch_size, shuffle=False, drop_last=False,
                         num_workers=0, seed=0)
        totals, probs, labels, known = [], [], [], []
        with torch.no_grad():
            for batch in loader:
                losses, output = self._losses(batch, train=False)
                totals.append(float(losses["total"]) * batch["audio"].shape[0])
                probs.append(torch.sigmoid(output.logits.float()).cpu().numpy())
                labels.append(batch["labels"].numpy())
                known.append(batch["known"].numpy())
        metrics = evaluate_predictions(np.concatenate(probs), np.concatenate(labels), np.concatenate(known))
        return {"total": sum(totals) / len(dataset), "map": metrics.mAP, "auc": metrics.roc_auc}

    # ---- plumbing -------------------------------------------------------------------
    def _scheduler(self, optimiser, *, steps_per_epoch: int):  # noqa: ANN001, ANN202
        torch = self.torch
        cfg = self.config
        if cfg.schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(
                optimiser, max_lr=cfg.lr, total_steps=max(cfg.epochs * steps_per_epoch, 1), pct_start=0.15
            )
        if cfg.schedule == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.2, patience=8)
        raise TrainingError(f"distill.schedule {cfg.schedule!r} is not one of onecycle, plateau")

    def _checkpoint(self, optimiser, scheduler, epoch: int, best_map: float,  # noqa: ANN001
                    best_epoch: int, stale: int) -> None:
        torch = self.torch
        state = {
            "model": self.student.state_dict(),
            "optimiser": optimiser.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": torch.tensor(epoch),
            "best_map": torch.tensor(best_map),
            "best_epoch": torch.tensor(best_epoch),
            "stale": torch.tensor(stale),
            "rng": torch.get_rng_state(),
            "cuda_rng": (torch.cuda.get_rng_state() if self.device.startswith("cuda")
                         else torch.zeros(0, dtype=torch.uint8)),
            "fingerprint": self.fingerprint,
        }
        tmp = self.run_dir / "last.pt.tmp"
        torch.save(state, tmp)
        tmp.replace(self.run_dir / "last.pt")

    def _resume(self, optimiser, scheduler) -> tuple[int, float, int, int]:  # noqa: ANN001
        torch = self.torch
        path = self.run_dir / "last.pt"
        state = torch.load(path, map_location=self.device, weights_only=True) if path.is_file() else None
        if state is not None and state.get("fingerprint", "") != self.fingerprint:
            log.warning("%s was trained with other settings; starting the run over", self.run_dir)
            state = None
        if state is not None and not (self.run_dir / "best.pt").is_file():
            log.warning("%s has last.pt but no best.pt (outputs removed?); starting the run over",
                        self.run_dir)
            state = None
        if state is not None and self.config.schedule == "onecycle" and (
            state["scheduler"].get("total_steps") != scheduler.total_steps
        ):
            log.warning("%s was scheduled for %s steps, now %d (epochs, batch size or clips changed); "
                        "starting the run over", self.run_dir, state["scheduler"].get("total_steps"),
                        scheduler.total_steps)
            state = None
        if state is None:
            if self.dist.main:
                path.unlink(missing_ok=True)
                (self.run_dir / "history.csv").unlink(missing_ok=True)
                (self.run_dir / "best.pt").unlink(missing_ok=True)
            return 0, -math.inf, 0, 0
        self.student.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"].cpu())
        if self.device.startswith("cuda") and state.get("cuda_rng") is not None and state["cuda_rng"].numel():
            torch.cuda.set_rng_state(state["cuda_rng"].cpu())
        if self.dist.main:
            self._truncate_history(int(state["epoch"]))
        log.info("resuming %s after epoch %d", self.run_dir, int(state["epoch"]))
        return int(state["epoch"]), float(state["best_map"]), int(state["best_epoch"]), int(state["stale"])

    def _truncate_history(self, epochs: int) -> None:
        """Drop history rows after the checkpointed epoch (written before an interruption)."""
        path = self.run_dir / "history.csv"
        if not path.is_file():
            return
        with open(path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(float(row["epoch"])) <= epochs]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
            writer.writeheader()
            writer.writerows({k: row.get(k, "") for k in HISTORY_FIELDS} for row in rows)

    def _append_history(self, row: dict[str, float]) -> None:
        path = self.run_dir / "history.csv"
        new = not path.is_file()
        with open(path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})


def _epoch_seed(seed: int, epoch: int) -> int:
    """A seed for ``epoch`` of a run seeded with ``seed`` (distinct across epochs and seeds)."""
    return (seed * 1_000_003 + epoch) % (2**63)


def _bar(total: int, desc: str, enabled: bool):  # noqa: ANN202
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, disable=not enabled)
