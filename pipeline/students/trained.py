"""A trained student: rebuilt from a run folder (``config.json`` + ``best.pt``) and scored on audio.

Used by evaluation, prediction, export and the ``run:`` teacher; the run folder itself is
written by :mod:`stages.distill`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import TrainingError
from pipeline.run_config import RunConfig
from pipeline.students import build_student
from pipeline.students.base import Student
from pipeline.windows import HOP_FRACTION, cut_windows, hop_samples, window_starts


@dataclass
class LoadedRun:
    """A student ready for inference.

    Attributes:
        path: the run folder.
        config: the run's ``config.json``.
        model: the student (eval mode, CPU; a :class:`~pipeline.students.base.Student`).
        classes: class names in label order.
        sample_rate: input rate in Hz.
        clip_seconds: the length it was trained on.
    """

    path: Path
    config: RunConfig
    model: Student
    classes: list[str]
    sample_rate: int
    clip_seconds: float


def load_run(run_dir: Path | str, *, checkpoint: str = "best.pt") -> LoadedRun:
    """Load a run written by ``pipeline distill``.

    Raises:
        TrainingError: the folder, its ``config.json`` or the checkpoint is missing.
    """
    path = Path(run_dir)
    config = RunConfig.read(path)
    weights = path / checkpoint
    if not weights.is_file():
        raise TrainingError(f"{weights} not found; the run has not finished an epoch yet")
    model = build_student(config.student, config.student_settings, n_classes=config.n_classes,
                          sample_rate=config.sample_rate)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    return LoadedRun(path, config, model, list(config.classes), int(config.sample_rate), float(config.clip_seconds))


@dataclass
class WindowScores:
    """Probabilities of each scoring window of one waveform (:mod:`pipeline.windows`).

    Attributes:
        starts: int64 (windows,) first sample of each window.
        length: window length in samples (the training length).
        probabilities: float32 (windows, n_classes).
    """

    starts: np.ndarray
    length: int
    probabilities: np.ndarray

    @property
    def clip(self) -> np.ndarray:
        """float32 (n_classes,): the mean over windows, what ``pipeline predict`` prints."""
        return self.probabilities.mean(axis=0)


def score_windows(run: LoadedRun, audio: np.ndarray, *, hop_fraction: float = HOP_FRACTION,
                  batch_size: int = 16) -> WindowScores:
    """Probabilities of every scoring window of one waveform of any length (:mod:`pipeline.windows`).

    Args:
        run: a loaded run.
        audio: float32 (samples,) at ``run.sample_rate``.
        hop_fraction: hop between windows as a fraction of the training length.
        batch_size: windows per forward pass (bounds memory, not the result).

    Returns:
        :class:`WindowScores`.
    """
    length = int(round(run.clip_seconds * run.sample_rate))
    starts = window_starts(len(audio), length, hop_samples(length, hop_fraction))
    windows = cut_windows(audio, starts, length)
    probs = []
    with torch.no_grad():
        for i in range(0, len(windows), batch_size):
            logits = run.model(torch.from_numpy(windows[i : i + batch_size])).logits
            probs.append(torch.sigmoid(logits.float()).numpy())
    return WindowScores(starts, length, np.concatenate(probs))


def predict_audio(run: LoadedRun, audio: np.ndarray, *, hop_fraction: float = HOP_FRACTION,
                  batch_size: int = 16) -> np.ndarray:
    """Clip-level probabilities for one waveform of any length.

    Audio up to the training length is zero-padded to it and scored once; longer audio is
    scored in sliding windows of the training length (hop ``hop_fraction`` of it) whose
    probabilities are averaged (:mod:`pipeline.windows`).

    Args:
        run: a loaded run.
        audio: float32 (samples,) at ``run.sample_rate``.

    Returns:
        float32 (n_classes,) probabilities.
    """
    return score_windows(run, audio, hop_fraction=hop_fraction, batch_size=batch_size).clip
