"""What the stage-two loader hands to training: one typed item per clip, one typed batch per step.

:class:`~pipeline.data.ClipDataset` builds a :class:`ClipItem` per clip and collates them into a
:class:`Batch` (:meth:`~pipeline.data.ClipDataset.collate`); the trainer moves the batch to the
device and mixes it (:func:`pipeline.data.mixup`), and the objective (:mod:`pipeline.losses`)
reads it as it is. Teachers are always a list, in the run's teacher order (one teacher: a list
of one), each with the times and window their frames are aligned by.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class ClipItem:
    """One clip's training example (numpy, as a loader worker returns it).

    Attributes:
        audio: float32 (samples,) at the student's rate.
        labels: float32 (n_classes,) in [0, 1].
        known: bool (n_classes,) which labels are known.
        index: the clip's position in the dataset.
        teachers: per teacher, float32 (frames_k, dim_k) z-scored frames centered inside the crop.
    """

    audio: np.ndarray
    labels: np.ndarray
    known: np.ndarray
    index: int
    teachers: list[np.ndarray] = field(default_factory=list)


@dataclass
class TeacherFrames:
    """One teacher's frames of a batch, with what aligns them to the student's frames.

    Attributes:
        frames: (batch, frames, dim) teacher frames (any float dtype).
        times: float32 (frames,) center times in seconds, relative to each item's start.
        window: seconds one frame summarises; <= 0 for a clip-level teacher.
    """

    frames: torch.Tensor
    times: torch.Tensor
    window: float

    def to(self, device: str | torch.device, non_blocking: bool = False) -> "TeacherFrames":
        """The same frames on ``device`` (times stay where they are: they index, not compute)."""
        return dataclasses.replace(self, frames=self.frames.to(device, non_blocking=non_blocking))


@dataclass
class Batch:
    """A training or validation batch.

    Attributes:
        audio: float32 (batch, samples).
        labels: float32 (batch, n_classes) in [0, 1] (mixed by mixup).
        known: bool (batch, n_classes).
        index: int64 (batch,) positions in the dataset.
        teachers: one :class:`TeacherFrames` per teacher (empty for a run without teacher).
    """

    audio: torch.Tensor
    labels: torch.Tensor
    known: torch.Tensor
    index: torch.Tensor
    teachers: list[TeacherFrames] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.audio.shape[0])

    def to(self, device: str | torch.device, non_blocking: bool = False) -> "Batch":
        """The batch with every tensor on ``device``."""
        return Batch(self.audio.to(device, non_blocking=non_blocking),
                     self.labels.to(device, non_blocking=non_blocking),
                     self.known.to(device, non_blocking=non_blocking),
                     self.index.to(device, non_blocking=non_blocking),
                     [t.to(device, non_blocking=non_blocking) for t in self.teachers])

    def pin_memory(self) -> "Batch":
        """Page-locked host copies (``DataLoader(pin_memory=True)`` calls this)."""
        return Batch(self.audio.pin_memory(), self.labels.pin_memory(), self.known.pin_memory(),
                     self.index.pin_memory(),
                     [dataclasses.replace(t, frames=t.frames.pin_memory()) for t in self.teachers])

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor the batch holds on its device (for stream bookkeeping)."""
        return [self.audio, self.labels, self.known, self.index, *(t.frames for t in self.teachers)]


def collate_items(items: list[ClipItem], times: list[np.ndarray], windows: list[float]) -> Batch:
    """Stack items into a :class:`Batch`.

    Args:
        items: the batch's items, each with one frame array per teacher.
        times: per teacher, (frames,) center times in seconds relative to the item start.
        windows: per teacher, seconds one frame summarises.
    """
    def stack(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays))

    teachers = [TeacherFrames(stack([item.teachers[k] for item in items]), torch.as_tensor(t, dtype=torch.float32),
                              float(w))
                for k, (t, w) in enumerate(zip(times, windows))]
    return Batch(stack([i.audio for i in items]), stack([i.labels for i in items]), stack([i.known for i in items]),
                 torch.as_tensor([i.index for i in items], dtype=torch.int64), teachers)
