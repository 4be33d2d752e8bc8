"""The students' log-mel front end, as an ``nn.Module`` inside the model (docs/method.md, "Students").

Because the front end lives in the model it runs on the training device, and an exported
student takes a waveform. Steps, in order (as in the official featurizer):

1. pre-emphasis as a valid convolution ``y[n] = x[n+1] - 0.97 x[n]`` (one sample shorter);
2. STFT with a *symmetric* Hann window of ``win`` samples zero-padded to ``n_fft``,
   ``center=True`` with reflect padding; power ``|X|^2``;
3. Kaldi-style triangular mel banks on the mel scale ``1127 ln(1 + f / 700)``
   (``torchaudio.compliance.kaldi.get_mel_banks`` semantics, written here in numpy),
   zero-padded by one column to ``n_fft // 2 + 1`` bins;
4. ``log(mel + 1e-5)``;
5. training only: one frequency mask and one time mask per example (SpecAugment), masked
   cells set to 0 in the log domain, before normalisation (as the official code);
6. normalisation ``(x - mean) / std`` with the paper's constants (-3.7, 3.1).

Time stamps: mel frame ``m`` is centered at input sample ``m * hop + 0.5`` (the STFT frame
is centered on pre-emphasised sample ``m * hop``, which sits between the filter's two taps
``x[m*hop]`` and ``x[m*hop + 1]``).

Departures from the official code, on purpose:
- the fmax range augmentation is gated on ``fmax_aug_range`` (the official code gates it
  on ``fmin_aug_range``); the random range is drawn once per batch, not per clip;
- SpecAugment masks are drawn per example inside the batch (the official code draws them
  per clip in the data loader, which is the same thing);
- the front end runs in float32 even under autocast;
- ``stft="dft"`` computes the same STFT as a strided convolution with a windowed DFT basis:
  it needs no complex numbers, so it exports to ONNX; ``torch.onnx.export`` switches to it
  by itself, and :meth:`Student.export_module` sets it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ConfigError

LOG_EPSILON = 1e-5


def mel_scale(freq_hz: np.ndarray | float) -> np.ndarray:
    """Kaldi/HTK mel scale ``1127 ln(1 + f / 700)``."""
    return 1127.0 * np.log1p(np.asarray(freq_hz, dtype=np.float64) / 700.0)


def kaldi_mel_banks(
    n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float
) -> np.ndarray:
    """Triangular mel filters as ``torchaudio.compliance.kaldi.get_mel_banks`` builds them.

    Filter ``i`` rises linearly in mel from ``mel(fmin) + i * d`` to a peak of 1 at
    ``mel(fmin) + (i + 1) * d`` and falls to 0 at ``mel(fmin) + (i + 2) * d``, with
    ``d = (mel(fmax) - mel(fmin)) / (n_mels + 1)``; FFT bin ``j`` sits at ``j * sr / n_fft`` Hz.
    Only the ``n_fft // 2`` bins below Nyquist are weighted (Kaldi's convention); the
    Nyquist bin gets a zero column. No VTLN warping (warp factor 1.0), no area normalisation.

    Args:
        n_mels: number of filters.
        n_fft: FFT size (the padded window length).
        sample_rate: Hz.
        fmin: lower edge in Hz, ``0 <= fmin < sample_rate / 2``.
        fmax: upper edge in Hz; ``<= 0`` means ``sample_rate / 2 + fmax`` (Kaldi's convention).

    Returns:
        float32 (n_mels, n_fft // 2 + 1) filter matrix.

    Raises:
        ConfigError: an empty or out-of-range frequency band.
    """
    nyquist = 0.5 * sample_rate
    if fmax <= 0.0:
        fmax = fmax + nyquist
    if not (0.0 <= fmin < nyquist and 0.0 < fmax <= nyquist and fmin < fmax):
        raise ConfigError(
            f"mel band fmin={fmin!r} Hz, fmax={fmax!r} Hz is invalid at sample rate {sample_rate} Hz; "
            f"need 0 <= fmin < fmax <= {nyquist:g}"
        )
    mel_low, mel_high = float(mel_scale(fmin)), float(mel_scale(fmax))
    delta = (mel_high - mel_low) / (n_mels + 1)
    index = np.arange(n_mels, dtype=np.float64)[:, None]
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    bin_mel = mel_scale(sample_rate / n_fft * np.arange(n_fft // 2, dtype=np.float64))[None, :]
    up = (bin_mel - left) / (center - left)
    down = (right - bin_mel) / (right - center)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.pad(banks, ((0, 0), (0, 1))).astype(np.float32)


@dataclass(frozen=True)
class FrontEndConfig:
    """Settings of :class:`LogMelFrontEnd` (every student config carries these fields).

    Attributes:
        sample_rate: input rate in Hz.
        n_mels: mel bands.
        n_fft: FFT size in samples.
        hop: STFT hop in samples.
        win: symmetric Hann window length in samples (``<= n_fft``).
        fmin: lowest mel edge in Hz.
        fmax: highest mel edge in Hz; ``None`` is ``sample_rate / 2``.
        fmin_aug_range: training only: fmin += randint(0, range) per batch (paper OpenMIC: 20).
        fmax_aug_range: training only: fmax -= randint(0, range) per batch (paper OpenMIC: 2000).
        freqm: training only: frequency-mask width bound in bands, 0 = off (paper OpenMIC: 48).
        timem: training only: time-mask width bound in frames, 0 = off (paper OpenMIC: 192).
        preemphasis: pre-emphasis coefficient.
        norm_mean, norm_std: ``(log_mel - norm_mean) / norm_std``.
    """

    sample_rate: int
    n_mels: int
    n_fft: int = 1024
    hop: int = 320
    win: int = 800
    fmin: float = 0.0
    fmax: float | None = None
    fmin_aug_range: int = 0
    fmax_aug_range: int = 0
    freqm: int = 0
    timem: int = 0
    preemphasis: float = 0.97
    norm_mean: float = -3.7
    norm_std: float = 3.1


class LogMelFrontEnd(nn.Module):
    """Waveform (batch, samples) -> normalised log-mel (batch, n_mels, frames).

    ``frames = 1 + (samples - 1) // hop``; frame ``m`` is centered at sample ``m * hop + 0.5``.

    Args:
        config: the front-end settings.
        stft: ``"fft"`` (``torch.stft``; fast, training default) or ``"dft"`` (strided
            convolution with a DFT basis; exportable to ONNX, same values to float32 precision).
    """
    mel_banks: torch.Tensor
    window: torch.Tensor
    emphasis: torch.Tensor

    def __init__(self, config: FrontEndConfig, stft: str = "fft") -> None:
        super().__init__()
        c = config
        for key in ("sample_rate", "n_mels", "n_fft", "hop", "win"):
            value = getattr(c, key)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"front end {key} must be a positive whole number, got {value!r}")
        if c.win > c.n_fft:
            raise ConfigError(f"front end win={c.win} is longer than n_fft={c.n_fft}; use win <= n_fft")
        if c.norm_std <= 0:
            raise ConfigError(f"front end norm_std must be > 0, got {c.norm_std!r}")
        if min(c.freqm, c.timem, c.fmin_aug_range, c.fmax_aug_range) < 0:
            raise ConfigError("front end freqm, timem, fmin_aug_range and fmax_aug_range must be >= 0")
        self.config = c
        self.fmax = float(c.fmax) if c.fmax is not None else c.sample_rate / 2.0
        banks = kaldi_mel_banks(c.n_mels, c.n_fft, c.sample_rate, float(c.fmin), self.fmax)
        if c.fmax_aug_range and self.fmax - c.fmax_aug_range <= c.fmin + c.fmin_aug_range:
            raise ConfigError(
                f"fmax_aug_range={c.fmax_aug_range} leaves no band above fmin={c.fmin} + {c.fmin_aug_range}"
            )
        self.register_buffer("mel_banks", torch.from_numpy(banks), persistent=False)
        self.register_buffer("window", torch.hann_window(c.win, periodic=False), persistent=False)
        self.register_buffer(
            "emphasis", torch.tensor([[[-c.preemphasis, 1.0]]], dtype=torch.float32), persistent=False
        )
        self.stft_mode = ""
        self.set_stft(stft)

    # ---- STFT implementation -------------------------------------------------------
    def set_stft(self, mode: str) -> None:
        """Switch between ``"fft"`` (torch.stft) and ``"dft"`` (exportable convolution)."""
        if mode not in ("fft", "dft"):
            raise ConfigError(f"unknown stft mode {mode!r}; choose 'fft' or 'dft'")
        self.stft_mode = mode

    def _dft_basis(self) -> torch.Tensor:
        """(2 * (n_fft // 2 + 1), 1, win) windowed cosine and minus-sine rows (built once, not saved).

        Only the ``win`` taps under the Hann window: the ``n_fft - win`` zero taps of the padded
        window would multiply zeros (a fifth of the work and of an exported file's size at 800/1024).
        """
        basis = getattr(self, "_dft_cache", None)
        if basis is None or basis.device != self.mel_banks.device:
            c = self.config
            pad = (c.n_fft - c.win) // 2
            window = np.hanning(c.win)  # symmetric Hann, as periodic=False
            n_bins = c.n_fft // 2 + 1
            taps = pad + np.arange(c.win)  # positions of the window inside the n_fft frame
            phase = 2.0 * math.pi * np.outer(np.arange(n_bins), taps) / c.n_fft
            rows = np.concatenate([np.cos(phase), -np.sin(phase)]) * window[None, :]
            basis = torch.from_numpy(rows.astype(np.float32))[:, None, :].to(self.mel_banks.device)
            self._dft_cache = basis
        return basis

    def _power(self, y: torch.Tensor) -> torch.Tensor:
        """Power spectrogram (batch, n_fft // 2 + 1, frames) of pre-emphasised audio."""
        c = self.config
        # ONNX has no complex tensors: an export always takes the convolution path
        if self.stft_mode == "fft" and not torch.onnx.is_in_onnx_export():
            spec = torch.stft(
                y, n_fft=c.n_fft, hop_length=c.hop, win_length=c.win, window=self.window,
                center=True, pad_mode="reflect", return_complex=True,
            )
            return spec.real.square() + spec.imag.square()
        padded = F.pad(y[:, None, :], (c.n_fft // 2, c.n_fft // 2), mode="reflect")
        pad, rest = (c.n_fft - c.win) // 2, c.n_fft - c.win - (c.n_fft - c.win) // 2
        padded = padded[:, :, pad : (-rest if rest else None)]  # the taps the window covers
        if padded.is_cuda:  # TF32 convolutions would cost the log of weak bins ~0.1
            with torch.backends.cudnn.flags(
                enabled=torch.backends.cudnn.enabled, benchmark=torch.backends.cudnn.benchmark,
                deterministic=torch.backends.cudnn.deterministic, allow_tf32=False,
            ):
                parts = F.conv1d(padded, self._dft_basis(), stride=c.hop)
        else:
            parts = F.conv1d(padded, self._dft_basis(), stride=c.hop)
        n_bins = c.n_fft // 2 + 1
        return parts[:, :n_bins].square() + parts[:, n_bins:].square()

    # ---- geometry ------------------------------------------------------------------
    def num_frames(self, n_samples: int) -> int:
        """Mel frames for ``n_samples`` input samples."""
        return 1 + (n_samples - 1) // self.config.hop

    @property
    def min_samples(self) -> int:
        """Shortest input the reflect-padded STFT accepts (padding must be shorter than the signal)."""
        return self.config.n_fft // 2 + 2

    def frame_center_samples(self, m: float) -> float:
        """Input-sample position of the center of mel frame ``m``."""
        return m * self.config.hop + 0.5

    # ---- forward -------------------------------------------------------------------
    def _augmented_banks(self) -> torch.Tensor:
        """Mel banks with a randomly narrowed band (training-time range augmentation)."""
        c = self.config
        fmin = float(c.fmin) + (np.random.randint(0, c.fmin_aug_range) if c.fmin_aug_range > 0 else 0)
        fmax = self.fmax - (np.random.randint(0, c.fmax_aug_range) if c.fmax_aug_range > 0 else 0)
        banks = kaldi_mel_banks(c.n_mels, c.n_fft, c.sample_rate, fmin, fmax)
        return torch.from_numpy(banks).to(self.mel_banks.device)

    @staticmethod
    def _mask(x: torch.Tensor, width_bound: int, axis: int) -> torch.Tensor:
        """Zero one random band of ``x`` (batch, F, T) along ``axis`` per example (torchaudio draws)."""
        size = x.shape[axis]
        shape = [x.shape[0], 1, 1]
        width = torch.rand(shape, device=x.device) * width_bound
        start = (torch.rand(shape, device=x.device) * (size - width)).floor()
        end = start + width.floor()
        index_shape = [1, 1, 1]
        index_shape[axis] = size
        index = torch.arange(size, device=x.device, dtype=x.dtype).reshape(index_shape)
        masked = (index >= start) & (index < end)
        return x.masked_fill(masked, 0.0)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Args:
            waveform: float (batch, samples) at ``sample_rate``.

        Returns:
            float32 (batch, n_mels, 1 + (samples - 1) // hop) normalised log-mel.
        """
        c = self.config
        with torch.no_grad(), torch.autocast(device_type=waveform.device.type, enabled=False):
            x = waveform.float()
            y = F.conv1d(x[:, None, :], self.emphasis).squeeze(1)
            power = self._power(y)
            banks = self.mel_banks
            if self.training and (c.fmin_aug_range > 0 or c.fmax_aug_range > 0):
                banks = self._augmented_banks()
            mel = torch.matmul(banks, power)
            logmel = torch.log(mel + LOG_EPSILON)
            if self.training and c.freqm > 0:
                logmel = self._mask(logmel, c.freqm, axis=1)
            if self.training and c.timem > 0:
                logmel = self._mask(logmel, c.timem, axis=2)
            return (logmel - c.norm_mean) / c.norm_std
