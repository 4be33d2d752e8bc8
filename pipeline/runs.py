"""Run folders on disk: where runs go, JSON writing, and rebuilding a student from ``config.json`` + ``best.pt``."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.config import Params
from pipeline.errors import TrainingError
from pipeline.files import json_text, write_atomic
from pipeline.windows import HOP_FRACTION, cut_windows, hop_samples, window_starts


def write_json(path: Path | str, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically, creating the folder (dataclass values allowed).

    Raises:
        FileFault: the file system refused the write (one line; the old file, if any, is unchanged).
    """
    write_atomic(path, json_text(data, indent=2, default=lambda o: asdict(o)))


def probe_dir(params: Params, teacher: str) -> Path:
    """Run folder of the linear probe of ``teacher``: ``<probe.runs_root>/probe-<teacher>``."""
    from pipeline.teachers.names import teacher_slug

    return Path(params.probe.runs_root) / f"probe-{teacher_slug(teacher)}"


@dataclass
class LoadedRun:
    """A student ready for inference.

    Attributes:
        path: the run folder.
        config: the run's ``config.json``.
        model: the student (eval mode, CPU).
        classes: class names in label order.
        sample_rate: input rate in Hz.
        clip_seconds: the length it was trained on.
    """

    path: Path
    config: dict[str, Any]
    model: Any
    classes: list[str]
    sample_rate: int
    clip_seconds: float


def load_run(run_dir: Path | str, *, checkpoint: str = "best.pt") -> LoadedRun:
    """Load a run written by ``pipeline distill``.

    Raises:
        TrainingError: the folder, its ``config.json`` or the checkpoint is missing.
    """
    import torch

    from pipeline.students import build_student

    path = Path(run_dir)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise TrainingError(f"{path} is not a training run (no config.json); pass a folder made by `pipeline distill`")
    config = json.loads(config_file.read_text())
    weights = path / checkpoint
    if not weights.is_file():
        raise TrainingError(f"{weights} not found; the run has not finished an epoch yet")
    model = build_student(config["student"], config["student_settings"], n_classes=config["n_classes"],
                          sample_rate=config["sample_rate"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    return LoadedRun(path, config, model, list(config["classes"]), int(config["sample_rate"]),
                     float(config["clip_seconds"]))


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
    import torch

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
