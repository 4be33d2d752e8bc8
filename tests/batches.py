"""Test-only builders of :class:`~pipeline.batch.Batch` inputs for the objective and the trainer."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from pipeline.batch import Batch, TeacherFrames


def frames(values: torch.Tensor, times: Any, window: float) -> TeacherFrames:
    """One teacher's frames; ``times`` as given (a tensor stays one; arrays and lists become float64)."""
    if not isinstance(times, torch.Tensor):
        times = torch.as_tensor(np.asarray(times, dtype=np.float64))
    return TeacherFrames(values, times, float(window))


def make_batch(labels: torch.Tensor, known: torch.Tensor, teachers: Sequence[TeacherFrames] = (),
               audio: torch.Tensor | None = None, index: torch.Tensor | None = None) -> Batch:
    """A batch of ``labels``/``known`` (B, C), ``teachers`` (default: none), ``audio`` (default: (B, 1) zeros)
    and ``index`` (default: 0 .. B-1)."""
    n = int(labels.shape[0])
    audio = torch.zeros(n, 1) if audio is None else audio
    index = torch.arange(n) if index is None else index
    return Batch(audio, labels, known, index, list(teachers))
