"""The student contract: waveform in, logits plus time-stamped feature maps out.

A student is an ``nn.Module`` whose first layer is the log-mel front end
(:mod:`pipeline.students.frontend`), so it trains on the device and exports as a
waveform model. ``forward`` returns a :class:`StudentOutput` whose ``features[k]``
(the paper's ``output_{k+1}``, averaged over frequency) come with the center time of
every frame: frame ``t`` of stage ``k`` is centered at
``frame0_center_seconds[k] + t * frame_hop_seconds[k]`` seconds from the first input
sample. The times are exact arithmetic over the layers' time kernels, strides and
paddings (:class:`TimeOp`): the center of the nominal receptive span of frame ``t``.

Export: :meth:`Student.forward_tensors` returns plain tensors and holds no
data-dependent Python control flow, so it runs under ``torch.jit.trace`` and
``torch.onnx.export``; :meth:`Student.export_module` wraps a copy of the model that
returns logits or probabilities only and computes its STFT as a convolution.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
import torch
from torch import nn

from pipeline.config import to_mapping
from pipeline.errors import ConfigError
from pipeline.frame_axis import FrameAxis
from pipeline.registry import Registry
from pipeline.students.frontend import FrontEndConfig, LogMelFrontEnd


@dataclass(frozen=True)
class TimeOp:
    """One layer's effect on the time axis: a window of ``kernel`` frames every ``stride``,
    after ``padding`` frames of padding on each side (convolutions and max-pools alike)."""

    kernel: int
    stride: int = 1
    padding: int = 0

    def out_length(self, length: int) -> int:
        """Output frames for ``length`` input frames (floor mode, like ``nn.Conv2d``/``nn.MaxPool2d``)."""
        return max(0, (length + 2 * self.padding - self.kernel) // self.stride + 1)


def compose_time_ops(ops: Sequence[TimeOp]) -> tuple[float, int]:
    """Center of output frame ``t`` in input frames, as ``(offset, step)``: ``offset + step * t``.

    Output ``j`` of one op covers inputs ``j*stride - padding .. j*stride - padding + kernel - 1``,
    centered at ``j*stride - padding + (kernel - 1) / 2``; composing gives an affine map.
    """
    offset, step = 0.0, 1
    for op in ops:
        offset += step * (-op.padding + (op.kernel - 1) / 2.0)
        step *= op.stride
    return offset, step


def chain_length(ops: Sequence[TimeOp], length: int) -> int:
    """Frames left after applying ``ops`` to ``length`` frames."""
    for op in ops:
        length = op.out_length(length)
    return length


@dataclass
class StudentOutput:
    """What a student returns.

    Attributes:
        logits: (batch, n_classes) pre-sigmoid scores.
        features: per stage, (batch, frames_k, channels_k) feature maps averaged over frequency.
        frame_hop_seconds: per stage, seconds between frame centers.
        frame0_center_seconds: per stage, center time of frame 0 in seconds.
    """

    logits: torch.Tensor
    features: list[torch.Tensor]
    frame_hop_seconds: list[float]
    frame0_center_seconds: list[float]

    def frame_times(self, stage: int) -> np.ndarray:
        """Center times in seconds, float64 (frames,), of ``features[stage]`` (0-based)."""
        axis = FrameAxis(self.frame_hop_seconds[stage], self.frame0_center_seconds[stage])
        return axis.times(self.features[stage].shape[1])

    @property
    def probabilities(self) -> torch.Tensor:
        """(batch, n_classes) sigmoid of the logits."""
        return torch.sigmoid(self.logits)


class Student(nn.Module):
    """Base of every student.

    Subclasses set ``name`` and ``config_type`` (a frozen dataclass with the
    :class:`FrontEndConfig` fields), build their layers in ``__init__`` after calling
    ``super().__init__``, and implement :meth:`_forward_mel` and :meth:`_stage_time_ops`.

    Args:
        config: the student's config.
        n_classes: output classes.
    """

    name: ClassVar[str]
    config_type: ClassVar[type]

    def __init__(self, config: Any, n_classes: int) -> None:
        super().__init__()
        if not isinstance(n_classes, int) or n_classes < 1:
            raise ConfigError(f"{self.name}: n_classes must be a positive whole number, got {n_classes!r}")
        self.config = config
        self.n_classes = n_classes
        fields = {f.name for f in dataclasses.fields(FrontEndConfig)}
        self.frontend = LogMelFrontEnd(
            FrontEndConfig(**{k: v for k, v in dataclasses.asdict(config).items() if k in fields})
        )

    # ---- to implement --------------------------------------------------------------
    def _forward_mel(self, mel: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Log-mel (batch, n_mels, frames) -> (logits (batch, classes), maps (batch, C, F, T) per stage)."""
        raise NotImplementedError

    def _stage_time_ops(self) -> list[list[TimeOp]]:
        """Per stage, the time ops applied since the previous stage (the first from the log-mel)."""
        raise NotImplementedError

    # ---- time geometry -------------------------------------------------------------
    def _cumulative_ops(self) -> list[list[TimeOp]]:
        found: list[list[TimeOp]] | None = self.__dict__.get("_ops_cache")
        if found is not None:
            return found
        cached: list[list[TimeOp]] = []
        ops: list[TimeOp] = []
        for stage_ops in self._stage_time_ops():
            ops = ops + list(stage_ops)
            cached.append(ops)
        self.__dict__["_ops_cache"] = cached
        return cached

    @property
    def frame_hop_seconds(self) -> list[float]:
        """Per stage, seconds between feature-frame centers."""
        hop, sr = self.frontend.config.hop, self.frontend.config.sample_rate
        return [compose_time_ops(ops)[1] * hop / sr for ops in self._cumulative_ops()]

    @property
    def frame0_center_seconds(self) -> list[float]:
        """Per stage, center time of feature frame 0 in seconds."""
        sr = self.frontend.config.sample_rate
        center = self.frontend.frame_center_samples
        return [center(compose_time_ops(ops)[0]) / sr for ops in self._cumulative_ops()]

    def num_feature_frames(self, n_samples: int) -> list[int]:
        """Per stage, feature frames for an input of ``n_samples`` samples."""
        mel = self.frontend.num_frames(n_samples)
        return [chain_length(ops, mel) for ops in self._cumulative_ops()]

    @property
    def min_samples(self) -> int:
        """Fewest input samples for which every stage keeps at least one frame."""
        cached = self.__dict__.get("_min_samples_cache")
        if cached is None:
            last = self._cumulative_ops()[-1]
            frames = 1
            while chain_length(last, frames) < 1:
                frames += 1
            cached = max(self.frontend.min_samples, (frames - 1) * self.frontend.config.hop + 1)
            self.__dict__["_min_samples_cache"] = cached
        return cached

    @property
    def min_seconds(self) -> float:
        """:attr:`min_samples` in seconds."""
        return self.min_samples / self.frontend.config.sample_rate

    def check_input_length(self, n_samples: int) -> None:
        """Raise :class:`ConfigError` when ``n_samples`` is too short for the time pooling."""
        if n_samples < self.min_samples:
            sr = self.frontend.config.sample_rate
            raise ConfigError(
                f"{self.name} needs at least {self.min_seconds:.3f} s of audio "
                f"({self.min_samples} samples at {sr} Hz) for its time pooling to keep one frame, "
                f"got {n_samples} samples ({n_samples / sr:.3f} s); "
                "use longer clips or crops (distill.crop_seconds)"
            )

    # ---- forward -------------------------------------------------------------------
    def forward_tensors(self, waveform: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Export-friendly forward.

        Args:
            waveform: float32 (batch, samples) at the config's ``sample_rate``.

        Returns:
            ``(logits (batch, classes), features_1 (batch, T_1, C_1), ..., features_K)``.
        """
        mel = self.frontend(waveform)
        logits, maps = self._forward_mel(mel)
        return (logits, *[m.mean(dim=2).transpose(1, 2) for m in maps])

    def forward(self, waveform: torch.Tensor) -> StudentOutput:  # type: ignore[override]
        """Args:
            waveform: float32 (batch, samples) mono audio at the config's ``sample_rate``.

        Returns:
            :class:`StudentOutput` with logits and time-stamped, frequency-averaged features.

        Raises:
            ConfigError: a 1-D or too short input (the message names the minimum duration).
        """
        if waveform.dim() != 2:
            raise ConfigError(
                f"{self.name} takes (batch, samples) waveforms, got shape {tuple(waveform.shape)}"
            )
        if not torch.jit.is_tracing():
            self.check_input_length(int(waveform.shape[-1]))
        logits, *features = self.forward_tensors(waveform)
        return StudentOutput(logits, list(features), self.frame_hop_seconds, self.frame0_center_seconds)

    # ---- export and description --------------------------------------------------
    def export_module(self, probabilities: bool = True) -> nn.Module:
        """A copy in eval mode, STFT as a convolution, returning (batch, classes) only."""
        return _ExportWrapper(self, probabilities)

    def num_parameters(self) -> int:
        """Trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def describe(self) -> dict[str, Any]:
        """What a run records about its student."""
        return {
            "name": self.name,
            "config": to_mapping(self.config),
            "n_classes": self.n_classes,
            "parameters": self.num_parameters(),
            "frame_hop_seconds": self.frame_hop_seconds,
            "frame0_center_seconds": self.frame0_center_seconds,
            "min_seconds": self.min_seconds,
        }


class _ExportWrapper(nn.Module):
    """Waveform (batch, samples) -> logits or probabilities (batch, classes), export-ready."""

    def __init__(self, student: Student, probabilities: bool) -> None:
        super().__init__()
        self.student = copy.deepcopy(student).eval()
        self.student.frontend.set_stft("dft")
        self.probabilities = probabilities

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        logits = self.student.forward_tensors(waveform)[0]
        return torch.sigmoid(logits) if self.probabilities else logits


STUDENTS: Registry[type[Student]] = Registry("student")


def register_student(cls: type[Student]) -> type[Student]:
    """Class decorator adding a student to :data:`STUDENTS` under ``cls.name``."""
    return STUDENTS.register(cls.name)(cls)
