"""PANNs CNN14 (32 kHz) in torch, with the state-dict layout of ``Cnn14_mAP=0.431.pth``.

Written from the description of ``panns_inference`` 0.1.1 ``models.Cnn14`` and
torchlibrosa 0.1.0 ``Spectrogram``/``LogmelFilterBank`` (eval mode), so that the PANNs
release checkpoint loads with ``strict=True`` and the outputs equal the original's
(checked in ``tests/test_teacher_panns_reference.py``).

Input ``(batch, samples)`` at 32 kHz:

1. STFT as two frozen ``Conv1d`` banks (``spectrogram_extractor.stft.conv_real/imag``:
   periodic Hann 1024 x DFT rows, hop 320) over the reflect-padded signal (512 each side);
   power ``re^2 + im^2`` -> ``(batch, 1, frames, 513)``, ``frames = 1 + samples // 320``.
2. ``logmel_extractor.melW`` (librosa Slaney mel filters, 64 bands, 50..14000 Hz), then
   ``10 log10(max(x, 1e-10))`` (ref 1, no top_db).
3. ``bn0`` over the 64 mel bins; six conv blocks (3x3 conv-BN-ReLU twice, 2x2 average
   pooling, none after the last) 64 -> 2048 channels.
4. Mean over frequency, then max + mean over time; ``fc1`` + ReLU -> the 2048-d
   ``embedding``; ``fc_audioset`` + sigmoid -> 527 clip-wise probabilities.

The STFT kernels and mel filters are stored in the checkpoint and loaded from it; the
values built here are the same (used only when no checkpoint overrides them).
At least 32 STFT frames (9920 samples, 0.31 s) are needed for five 2x poolings.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import TeacherError
from pipeline.teachers.weights import describe_mismatch

SAMPLE_RATE = 32000
N_FFT = 1024
HOP_LENGTH = 320
N_MELS = 64
F_MIN = 50.0
F_MAX = 14000.0
AMIN = 1e-10
MIN_SAMPLES = 31 * HOP_LENGTH  # 32 STFT frames: the shortest input five 2x poolings accept


class _Stft(nn.Module):
    """Frozen DFT filter banks: ``conv_real``/``conv_imag`` of shape (n_fft // 2 + 1, 1, n_fft)."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.n_fft = n_fft
        bins = n_fft // 2 + 1
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        n = np.arange(n_fft)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic Hann
        phase = 2 * np.pi * np.outer(np.arange(bins), n) / n_fft
        with torch.no_grad():
            self.conv_real.weight.copy_(torch.from_numpy(np.cos(phase) * window)[:, None, :])
            self.conv_imag.weight.copy_(torch.from_numpy(-np.sin(phase) * window)[:, None, :])
        for param in self.parameters():
            param.requires_grad = False

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> power spectrogram (batch, 1, frames, bins)."""
        x = F.pad(audio[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        power = self.conv_real(x).square() + self.conv_imag(x).square()
        return power.transpose(1, 2)[:, None]


class _Spectrogram(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stft = _Stft(N_FFT, HOP_LENGTH)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.stft(audio)


class _LogMel(nn.Module):
    """``melW`` (bins, mels) filters and ``10 log10(max(x, 1e-10))``."""

    def __init__(self) -> None:
        super().__init__()
        import librosa

        filters = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=F_MIN, fmax=F_MAX)
        self.melW = nn.Parameter(torch.from_numpy(filters.T.astype(np.float32)), requires_grad=False)

    def forward(self, power: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(torch.clamp(torch.matmul(power, self.melW), min=AMIN))


class _ConvBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.bn2 = nn.BatchNorm2d(channels_out)

    def forward(self, x: torch.Tensor, pool: bool) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, 2) if pool else x


class Cnn14(nn.Module):
    """CNN14 with its log-mel front end.

    Args:
        widths: channels of the six conv blocks (the paper's model: 64 .. 2048);
            the embedding has ``widths[-1]`` dimensions.
        num_classes: AudioSet classes of ``fc_audioset`` (527; kept for strict loading).
    """

    def __init__(
        self, widths: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048), num_classes: int = 527
    ) -> None:
        super().__init__()
        self.spectrogram_extractor = _Spectrogram()
        self.logmel_extractor = _LogMel()
        self.bn0 = nn.BatchNorm2d(N_MELS)
        channels = (1, *widths)
        for index in range(len(widths)):
            setattr(self, f"conv_block{index + 1}", _ConvBlock(channels[index], channels[index + 1]))
        self.n_blocks = len(widths)
        self.fc1 = nn.Linear(widths[-1], widths[-1])
        self.fc_audioset = nn.Linear(widths[-1], num_classes)

    def pooled(self, audio: torch.Tensor) -> torch.Tensor:
        """(batch, samples) at 32 kHz -> (batch, widths[-1]) max+mean pooled conv features."""
        if audio.shape[-1] < MIN_SAMPLES:
            raise TeacherError(
                f"CNN14 needs at least {MIN_SAMPLES} samples (0.31 s at 32 kHz), got {audio.shape[-1]}"
            )
        x = self.logmel_extractor(self.spectrogram_extractor(audio))  # (batch, 1, frames, mels)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for index in range(1, self.n_blocks + 1):
            x = getattr(self, f"conv_block{index}")(x, pool=index < self.n_blocks)
        x = x.mean(dim=3)  # over frequency -> (batch, channels, time)
        return x.amax(dim=2) + x.mean(dim=2)

    def embed(self, audio: torch.Tensor) -> torch.Tensor:
        """The 2048-d ``embedding`` output: ``relu(fc1(pooled))``, (batch, widths[-1])."""
        return F.relu(self.fc1(self.pooled(audio)))

    def forward(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{'clipwise_output', 'embedding'}`` like the original ``Cnn14.forward`` in eval mode."""
        embedding = self.embed(audio)
        return {"clipwise_output": torch.sigmoid(self.fc_audioset(embedding)), "embedding": embedding}


def _numpy_globals() -> list[Any]:
    """numpy objects a PANNs checkpoint's sampler state pickles (arrays, dtypes, scalars)."""
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed numpy.core
    multiarray = core.multiarray
    allowed: list[Any] = [np.ndarray, np.dtype]
    for name in ("_reconstruct", "scalar"):
        obj = getattr(multiarray, name)
        allowed += [obj, (obj, f"numpy.core.multiarray.{name}"), (obj, f"numpy._core.multiarray.{name}")]
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    return allowed


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a PANNs checkpoint (``{'model': state_dict, ...}`` or a bare state dict).

    Unpickling is restricted to tensors and plain numpy arrays (the release files also
    hold the training sampler's state); nothing else is executed.

    Raises:
        TeacherError: the file is not a readable checkpoint holding a CNN14 state dict.
    """
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise TeacherError(
            f"cannot read PANNs checkpoint {str(path)!r} "
            f"(incomplete download? the release file is ~327 MB): {exc}"
        ) from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise TeacherError(f"{str(path)!r} holds no CNN14 state dict (expected {{'model': state_dict}})")
    return {k.removeprefix("module."): v for k, v in data.items()}


def load_weights(net: nn.Module, state: dict[str, torch.Tensor], path: Path | str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming missing/unexpected keys."""
    problem = describe_mismatch(net.state_dict(), state)
    if problem:
        raise TeacherError(
            f"{str(path)!r} does not match the CNN14 architecture ({problem}); "
            "pass the Cnn14_mAP=0.431.pth release checkpoint (32 kHz CNN14)"
        )
    net.load_state_dict(
        {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}, strict=True
    )
