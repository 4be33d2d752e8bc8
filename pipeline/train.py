"""The stage-two training loop, split as a run, an epoch and a step around one saved state.

- :meth:`Trainer.fit` is the *run*: it builds the loader, optimiser and schedule, resumes the
  :class:`TrainState` from ``last.pt``, and runs epochs until the epoch budget or early stopping.
- :meth:`Trainer._train_epoch` is one *epoch*: it streams batches of (audio, cached teacher
  frames, labels, mask), calls the step, and reads the summed losses back from the device once.
- :meth:`Trainer._step` is one *step*: the EAsT objective, backward, clipping, Adam. It never
  reads a value back from the device (``.item()``/``float()`` would wait for the GPU each step).
- After each epoch the student is scored on the validation split (macro mAP, the paper's
  model-selection metric); ``best.pt`` holds the best weights, ``last.pt`` the state and
  everything else needed to resume, ``history.csv`` one row per epoch.

Ctrl-C (SIGINT), SIGTERM (a scheduler's pre-emption, ``kill``, ``timeout``) or SIGHUP (a closed
terminal) during training finishes the running step, saves ``last.pt`` *mid-epoch* and raises
:class:`TrainingInterrupted`; the same command run again resumes from that step and ends with the
weights an uninterrupted run has (bit-exact on CPU).
"""
from __future__ import annotations

import csv
import logging
import math
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Iterator, Union

import numpy as np
import torch
from torch.optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from tqdm.auto import tqdm

from pipeline.config import DistillConfig
from pipeline.batch import Batch
from pipeline.data import ClipDataset, mixup, prefetch_to_device
from pipeline.distributed import agree, from_env, wrap
from pipeline.distributed import sampler as shard_sampler
from pipeline.errors import TrainingError, TrainingInterrupted
from pipeline.files import csv_text, write_atomic, write_rendered
from pipeline.losses import EAsTObjective
from pipeline.metrics import evaluate_predictions
from pipeline.sampling import unlabeled_sampler
from pipeline.students.base import StudentOutput

log = logging.getLogger(__name__)

HISTORY_FIELDS = ("epoch", "train_total", "train_pred", "train_feat", "train_kd", "valid_total",
                  "valid_map", "valid_auc", "lr", "clips_per_second", "seconds")
#: the loss terms summed over an epoch (``history.csv`` has ``train_<key>``)
LOSS_KEYS = ("total", "pred", "feat", "kd")

#: the learning-rate schedules ``distill.schedule`` names (onecycle, plateau)
Scheduler = Union[OneCycleLR, ReduceLROnPlateau]


@dataclass
class TrainResult:
    """Summary of a finished (or early-stopped) training run."""

    best_epoch: int
    best_valid_map: float
    epochs_run: int
    stopped_early: bool
    train_clips_per_second: float
    seconds: float


@dataclass
class TrainState:
    """Where a run stands: saved in ``last.pt`` with the weights, optimiser and schedule.

    Attributes:
        epoch: epochs finished.
        step: batches finished of the next epoch (0 at an epoch boundary; > 0 only after SIGTERM).
        best_map: best validation mAP so far (``-inf`` before the first epoch).
        best_epoch: the 1-based epoch of ``best_map`` (0 before the first).
        stale: epochs since the last improvement (early stopping counts these).
        sums: per-loss sums of the unfinished epoch, on the device (float64 scalars).
    """

    epoch: int = 0
    step: int = 0
    best_map: float = -math.inf
    best_epoch: int = 0
    stale: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)

    def stopped(self, patience: int) -> bool:
        """True when early stopping has ended the run (no improvement for ``patience`` epochs)."""
        return self.epoch > 0 and self.stale >= patience

    def record(self, epoch_map: float) -> bool:
        """Count one finished epoch with validation mAP ``epoch_map``; True when it is the new best."""
        self.epoch += 1
        self.step = 0
        improved = epoch_map > self.best_map  # a tie is no improvement
        if improved:
            self.best_map, self.best_epoch, self.stale = epoch_map, self.epoch, 0
        else:
            self.stale += 1
        return improved


@dataclass
class _Run:
    """The objects one call of :meth:`Trainer.fit` works with."""

    train_set: ClipDataset  # set_epoch() fixes its random crops per epoch
    loader: DataLoader
    shard: DistributedSampler | None  # under torchrun, else None
    optimiser: torch.optim.Optimizer
    scheduler: Scheduler
    mixup: torch.Generator  # partners of mixup, reseeded every epoch
    state: TrainState
    clips_seen: int = 0
    train_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    stop_signal: int = 0  # the signal (SIGINT, SIGTERM, SIGHUP) that asked training to stop; 0 = none

    @property
    def stop_requested(self) -> bool:
        """True once a stop signal arrived: the step loop checkpoints and stops."""
        return self.stop_signal != 0


#: Signals that stop training politely: finish the step, save ``last.pt``, exit ``128 + signal``.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _ignore_interrupts(worker_id: int) -> None:  # noqa: ARG001
    """DataLoader workers leave Ctrl-C (sent to the whole process group) to the training process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _loader(dataset: ClipDataset, *, batch_size: int, shuffle: bool, drop_last: bool,
            num_workers: int, seed: int, sampler: Sampler[int] | None = None,
            generator: torch.Generator | None = None) -> DataLoader:
    generator = generator if generator is not None else torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=dataset.collate,
        generator=generator,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=_ignore_interrupts if num_workers > 0 else None,
    )


class Trainer:
    """Trains ``student`` with ``objective`` on ``train_set``, selecting on ``valid_set``.

    Args:
        student: the model (waveform in, StudentOutput out).
        objective: ``pipeline.losses.EAsTObjective``.
        config: the ``distill`` settings.
        run_dir: where checkpoints, history and metrics go.
        probes: ``(teacher slot, probe)`` pairs whose logits are averaged for KD (None: no KD).
        device: ``cpu`` or ``cuda``.
        fingerprint: digest of every setting of the run; ``last.pt`` is resumed only when
            it was written with the same one (other settings start the run over).
    """

    def __init__(self, student: torch.nn.Module, objective: EAsTObjective, config: DistillConfig, run_dir: Path, *,
                 probes: list[tuple[int, torch.nn.Module]] | None = None, device: str = "cpu",
                 fingerprint: str = "") -> None:
        self.dist, device = from_env(device)
        self.student = student.to(device)
        self.model = wrap(self.student, self.dist, device)  # what the training step calls
        self.objective = objective
        self.heads = _objective_heads(objective, device, self.dist.active)
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = device
        self.probes = [(slot, model.to(device)) for slot, model in (probes or [])]
        self.amp = config.amp and device.startswith("cuda")
        self.fingerprint = fingerprint

    # ---- the run --------------------------------------------------------------------
    def fit(self, train_set: ClipDataset, valid_set: ClipDataset, *, progress: bool = True,
            on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
        """Train for ``config.epochs`` epochs (resuming from ``last.pt`` when present).

        Raises:
            TrainingError: fewer training clips than one batch.
            TrainingInterrupted: SIGINT, SIGTERM or SIGHUP arrived; ``last.pt`` was saved at the step reached.
        """
        run = self._start(train_set)
        state, cfg = run.state, self.config
        stopped_early = state.stopped(cfg.patience)  # a finished run is not trained on
        with self._checkpoint_on_signals(run):
            while not stopped_early and state.epoch < cfg.epochs:
                stopped_early = self._run_epoch(run, valid_set, progress=progress, on_epoch=on_epoch)
                if run.stop_requested and not stopped_early and state.epoch < cfg.epochs:
                    raise self._interrupted(run, f"after epoch {state.epoch}")
        if self.dist.main and not (self.run_dir / "best.pt").is_file():
            self._save_best()
        return TrainResult(
            best_epoch=state.best_epoch,
            best_valid_map=state.best_map,
            epochs_run=state.epoch,
            stopped_early=stopped_early,
            train_clips_per_second=run.clips_seen / run.train_seconds if run.train_seconds else 0.0,
            seconds=time.perf_counter() - run.started,
        )

    def _start(self, train_set: ClipDataset) -> _Run:
        """Seed, build the loader, optimiser and schedule, and resume the state from ``last.pt``."""
        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        shard = shard_sampler(train_set, self.dist, seed=cfg.seed)
        generator = torch.Generator()  # reseeded per epoch; the unlabeled-subset sampler draws from it too
        subset = unlabeled_sampler(getattr(train_set, "clips", None), cfg.unlabeled_per_epoch, generator,
                                   distributed=self.dist.active)
        loader = _loader(train_set, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                         num_workers=cfg.num_workers, seed=cfg.seed, sampler=shard if shard is not None else subset,
                         generator=generator)
        if len(loader) == 0:
            raise TrainingError(
                f"{len(train_set)} training clips are fewer than one batch of {cfg.batch_size}; "
                "lower distill.batch_size or add clips"
            )
        optimiser = torch.optim.Adam(self._trained_parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        scheduler = self._scheduler(optimiser, steps_per_epoch=len(loader))
        run = _Run(train_set, loader, shard, optimiser, scheduler, torch.Generator(), TrainState())
        self._resume(run)
        return run

    # ---- one epoch ------------------------------------------------------------------
    def _run_epoch(self, run: _Run, valid_set: ClipDataset, *, progress: bool,
                   on_epoch: Callable[[dict[str, float]], None] | None) -> bool:
        """Train one epoch, then (rank 0) validate, record and checkpoint; True to stop early."""
        sums, seconds = self._train_epoch(run, progress=progress)
        if not self.dist.main:  # rank 0 validates and checkpoints; the others wait for its verdict
            run.state.epoch, run.state.step = run.state.epoch + 1, 0
            return agree(self.dist, False)
        valid = self.validate(valid_set)
        if isinstance(run.scheduler, ReduceLROnPlateau):
            run.scheduler.step(valid["total"])
        n_batches = len(run.loader)
        row = {
            "epoch": run.state.epoch + 1,
            **{f"train_{key}": value / n_batches for key, value in sums.items()},
            "valid_total": valid["total"],
            "valid_map": valid["map"],
            "valid_auc": valid["auc"],
            "lr": run.optimiser.param_groups[0]["lr"],
            "clips_per_second": n_batches * self.config.batch_size / seconds,
            "seconds": seconds,
        }
        self._append_history(row)
        if on_epoch is not None:
            on_epoch(row)
        state = run.state
        if state.record(self._selection_score(valid)):
            self._save_best()
        self._checkpoint(run)
        log.info("epoch %d: valid mAP %.4f (best %.4f @ %d)", state.epoch, valid["map"], state.best_map,
                 state.best_epoch)
        return agree(self.dist, state.stale >= self.config.patience)

    def _train_epoch(self, run: _Run, *, progress: bool) -> tuple[dict[str, float], float]:
        """One pass over the training loader (from ``state.step`` after a mid-epoch resume).

        Returns:
            The per-loss sums over the epoch's batches (read from the device once, here) and
            the seconds this process spent on them.
        """
        cfg, state = self.config, run.state
        epoch = state.epoch  # 0-based index of the epoch being trained
        run.train_set.set_epoch(epoch)
        # shuffling and mixup depend on (seed, epoch) only, so a resumed run repeats them exactly
        assert run.loader.generator is not None
        run.loader.generator.manual_seed(_epoch_seed(cfg.seed, epoch))
        if run.shard is not None:
            run.shard.set_epoch(epoch)
        if state.step == 0:  # a mid-epoch resume restored these from last.pt
            run.mixup.manual_seed(_epoch_seed(cfg.seed + 7, epoch))
            state.sums = {key: torch.zeros((), dtype=torch.float64, device=self.device) for key in LOSS_KEYS}
        self.student.train()
        start = time.perf_counter()
        bar = _bar(len(run.loader), f"epoch {epoch + 1}/{cfg.epochs}", progress)
        bar.update(state.step)
        batches = iter(run.loader)
        for _ in range(state.step):  # the loader order is fixed by the seed: skip what was trained
            next(batches)
        for batch in prefetch_to_device(batches, self.device):  # on CUDA: copied one step ahead
            self._step(run, batch)
            bar.update(1)
            if progress:  # the rate needs no value from the device
                bar.set_postfix_str(f"{state.step * cfg.batch_size / max(time.perf_counter() - start, 1e-9):.1f} "
                                    "clips/s")
            if run.stop_requested:
                self._checkpoint(run)
                bar.close()
                raise self._interrupted(run, f"in epoch {epoch + 1}, step {state.step}")
        bar.close()
        seconds = time.perf_counter() - start
        run.train_seconds += seconds
        sums = {key: float(value) for key, value in state.sums.items()}  # the one read-back per epoch
        return sums, seconds

    # ---- one step -------------------------------------------------------------------
    def _step(self, run: _Run, batch: Batch) -> None:
        """Objective, backward, clip, Adam; the losses are added to ``state.sums`` on the device."""
        cfg = self.config
        if cfg.mixup_alpha > 0:
            batch = mixup(batch, cfg.mixup_alpha, run.mixup)
        losses, _ = self._losses(batch, train=True)
        run.optimiser.zero_grad(set_to_none=True)
        losses["total"].backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self._trained_parameters(), cfg.grad_clip)
        run.optimiser.step()
        if isinstance(run.scheduler, OneCycleLR):
            run.scheduler.step()
        for key, total in run.state.sums.items():
            if key in losses:
                total += losses[key].detach()
        run.state.step += 1
        run.clips_seen += len(batch)

    def _losses(self, batch: Batch, *, train: bool) -> tuple[dict[str, torch.Tensor], StudentOutput]:
        batch = batch.to(self.device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            output = (self.model if train else self.student)(batch.audio)
        return self.objective(output, batch, self._kd_targets(batch)), output

    def _kd_targets(self, batch: Batch) -> torch.Tensor | None:
        """(B, C) KD targets: the mean of the probes' logits on their teachers' frames; None without probes."""
        if not self.probes or not batch.teachers:
            return None
        with torch.no_grad():
            logits = [probe(batch.teachers[slot].frames) for slot, probe in self.probes]
        return logits[0] if len(logits) == 1 else torch.stack(logits).mean(dim=0)

    def validate(self, dataset: ClipDataset) -> dict[str, float]:
        """Mean total loss, macro mAP and ROC-AUC over ``dataset`` (whole clips)."""
        self.student.eval()
        loader = _loader(dataset, batch_size=self.config.batch_size, shuffle=False, drop_last=False,
                         num_workers=0, seed=0)
        totals, probs, labels, known = [], [], [], []
        with torch.no_grad():
            for batch in loader:
                losses, output = self._losses(batch, train=False)
                totals.append(losses["total"].detach().double() * len(batch))
                probs.append(torch.sigmoid(output.logits.float()))
                labels.append(batch.labels.numpy())
                known.append(batch.known.numpy())
        metrics = evaluate_predictions(torch.cat(probs).cpu().numpy(), np.concatenate(labels), np.concatenate(known))
        return {"total": float(torch.stack(totals).sum()) / len(dataset), "map": metrics.mAP, "auc": metrics.roc_auc}

    def _trained_parameters(self) -> list[torch.nn.Parameter]:
        """What Adam trains and the norm clips: the student's weights and the objective's projection heads."""
        return [*self.student.parameters(), *self.heads.parameters()]

    def _selection_score(self, valid: dict[str, float]) -> float:
        """Validation mAP; minus the validation loss for a variant selected on it (``pretrain`` reads no label)."""
        return -valid["total"] if self.objective.spec.selected_by == "valid_loss" else valid["map"]

    # ---- state: save, resume, interrupt ---------------------------------------------
    def _scheduler(self, optimiser: torch.optim.Optimizer, *, steps_per_epoch: int) -> Scheduler:
        cfg = self.config
        if cfg.schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(
                optimiser, max_lr=cfg.lr, total_steps=max(cfg.epochs * steps_per_epoch, 1), pct_start=0.15
            )
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.2, patience=8)

    def _checkpoint(self, run: _Run) -> None:
        """Write ``last.pt`` atomically: weights, optimiser, schedule, RNGs and the :class:`TrainState`."""
        if not self.dist.main:
            return
        state = run.state
        checkpoint = {
            "model": self.student.state_dict(),
            "optimiser": run.optimiser.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "epoch": torch.tensor(state.epoch),
            "step": torch.tensor(state.step),
            "best_map": torch.tensor(state.best_map),
            "best_epoch": torch.tensor(state.best_epoch),
            "stale": torch.tensor(state.stale),
            "sums": {key: value.detach().cpu() for key, value in state.sums.items()} if state.step else {},
            "rng": torch.get_rng_state(),
            "mixup_rng": run.mixup.get_state(),
            "cuda_rng": (torch.cuda.get_rng_state() if self.device.startswith("cuda")
                         else torch.zeros(0, dtype=torch.uint8)),
            "fingerprint": self.fingerprint,
            "heads": self.heads.state_dict(),  # cosine_projection's heads: trained, never exported
        }
        path = self.run_dir / "last.pt"
        kept = ("the previous last.pt is kept: the same command resumes from it" if path.is_file()
                else "no checkpoint was kept")
        write_rendered(path, lambda handle: torch.save(checkpoint, handle), what="the checkpoint", kept=kept,
                       todo="free space (or fix the folder) and run the same command again")

    def _save_best(self) -> None:
        """Write ``best.pt`` (the student's weights) atomically."""
        weights = self.student.state_dict()
        write_rendered(self.run_dir / "best.pt", lambda handle: torch.save(weights, handle),
                       what="the best weights")

    def _usable_checkpoint(self, scheduler: Scheduler) -> dict[str, Any] | None:
        """``last.pt`` when it belongs to this run's settings and outputs, else None (with the reason logged)."""
        path = self.run_dir / "last.pt"
        if not path.is_file():
            return None
        saved = torch.load(path, map_location=self.device, weights_only=True)
        reason = ""
        if saved.get("fingerprint", "") != self.fingerprint:
            reason = "was trained with other settings"
        elif not (self.run_dir / "best.pt").is_file():
            reason = "has last.pt but no best.pt (outputs removed?)"
        elif isinstance(scheduler, OneCycleLR) and saved["scheduler"].get("total_steps") != scheduler.total_steps:
            reason = (f"was scheduled for {saved['scheduler'].get('total_steps')} steps, now "
                      f"{scheduler.total_steps} (epochs, batch size or clips changed)")
        if reason:
            log.warning("%s %s; starting the run over", self.run_dir, reason)
            return None
        return saved

    def _resume(self, run: _Run) -> None:
        """Load ``run``'s weights, optimiser, schedule, RNGs and state from ``last.pt``, or start clean."""
        saved = self._usable_checkpoint(run.scheduler)
        if saved is None:
            if self.dist.main:
                for name in ("last.pt", "history.csv", "best.pt"):
                    (self.run_dir / name).unlink(missing_ok=True)
            return
        self.student.load_state_dict(saved["model"])
        self.heads.load_state_dict(saved.get("heads", {}))
        run.optimiser.load_state_dict(saved["optimiser"])
        run.scheduler.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["rng"].cpu())
        if "mixup_rng" in saved:
            run.mixup.set_state(saved["mixup_rng"].cpu())
        if self.device.startswith("cuda") and saved.get("cuda_rng") is not None and saved["cuda_rng"].numel():
            torch.cuda.set_rng_state(saved["cuda_rng"].cpu())
        run.state = TrainState(
            epoch=int(saved["epoch"]), step=int(saved.get("step", 0)), best_map=float(saved["best_map"]),
            best_epoch=int(saved["best_epoch"]), stale=int(saved["stale"]),
            sums={key: value.to(self.device) for key, value in saved.get("sums", {}).items()},
        )
        if self.dist.main:
            self._truncate_history(run.state.epoch)
        log.info("resuming %s after epoch %d, step %d", self.run_dir, run.state.epoch, run.state.step)

    def _interrupted(self, run: _Run, where: str) -> TrainingInterrupted:
        """The error that ends a run stopped by a signal, after ``last.pt`` was saved ``where``."""
        name = signal.Signals(run.stop_signal).name
        return TrainingInterrupted(
            f"stopped by {name} {where}; {self.run_dir / 'last.pt'} holds the state: run the same command "
            "again to resume", signum=run.stop_signal)

    @contextmanager
    def _checkpoint_on_signals(self, run: _Run) -> Iterator[None]:
        """While training, Ctrl-C, SIGTERM or SIGHUP asks the step loop to checkpoint and stop (main thread only).

        The first signal is acknowledged on stderr at once (the step may take a while); a second
        Ctrl-C aborts without saving.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
            if run.stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            run.stop_signal = run.stop_signal or signum
            print(f"received {signal.Signals(signum).name}: saving {self.run_dir / 'last.pt'} after this step "
                  "(Ctrl-C again aborts without saving)", file=sys.stderr, flush=True)

        previous = {sig: signal.signal(sig, request_stop) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # ---- history --------------------------------------------------------------------
    def _truncate_history(self, epochs: int) -> None:
        """Drop history rows after the checkpointed epoch (written before an interruption)."""
        path = self.run_dir / "history.csv"
        if not path.is_file():
            return
        with open(path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(float(row["epoch"])) <= epochs]
        self._write_history(rows)

    def _append_history(self, row: dict[str, float]) -> None:
        path = self.run_dir / "history.csv"
        rows: list[dict[str, Any]] = []
        if path.is_file():
            with open(path, newline="") as handle:
                rows = list(csv.DictReader(handle))
        self._write_history(rows + [row])

    def _write_history(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite ``history.csv`` atomically with ``rows`` (one per epoch, :data:`HISTORY_FIELDS`)."""
        body = [list(HISTORY_FIELDS)] + [[row.get(k, "") for k in HISTORY_FIELDS] for row in rows]
        write_atomic(self.run_dir / "history.csv", csv_text(body), what="the training history")


def _objective_heads(objective: EAsTObjective, device: str, distributed: bool) -> torch.nn.ModuleDict:
    """The objective's learned heads (``EAsTObjective.heads``) on ``device``; empty when it has none.

    Raises:
        TrainingError: heads under torchrun (DDP would not average their gradients across processes).
    """
    heads = getattr(objective, "heads", None)
    if heads is None:
        return torch.nn.ModuleDict()
    if distributed and len(heads):
        raise TrainingError("feature_loss cosine_projection is not supported under torchrun yet (its projection "
                            "would not be averaged across processes); train on one device")
    return heads.to(device)


def _epoch_seed(seed: int, epoch: int) -> int:
    """A seed for ``epoch`` of a run seeded with ``seed`` (distinct across epochs and seeds)."""
    return (seed * 1_000_003 + epoch) % (2**63)


def _bar(total: int, desc: str, enabled: bool) -> tqdm:
    return tqdm(total=total, desc=desc, unit="batch", leave=False, disable=not enabled)
