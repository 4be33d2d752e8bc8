"""The PaSST-S network and its mel front end, in torch, with the released checkpoint's key layout.

Written from the description of ``hear21passt`` 0.0.26 (``models/preprocess.py``
``AugmentMelSTFT`` in eval mode, ``models/passt.py`` ``PaSST``, ``wrapper.py``
``mode="embed_only"``) so that the release checkpoint
``passt-s-f128-p16-s10-ap.476-swa.pt`` loads with ``strict=True`` and the outputs equal
the original's (checked in ``tests/test_teacher_passt_reference.py``).

Front end (:class:`PasstMel`), input ``(batch, samples)`` at 32 kHz:
pre-emphasis ``y[n] = x[n + 1] - 0.97 x[n]`` (one sample shorter), ``torch.stft``
(n_fft 1024, hop 320, symmetric Hann window of 800, centered with reflect padding),
power, 128 Kaldi-style triangular mel filters on 0..15000 Hz, ``log(x + 1e-5)``,
``(x + 4.5) / 5``. Output ``(batch, 128, frames)`` with ``frames = 1 + (samples - 1) // 320``.

Network (:class:`PaSST`): 16x16 patches with stride 10 (12 frequency rows), separate
frequency and time positional embeddings (time cut to the input length, 99 positions =
998 mel frames at most), CLS and distillation tokens, pre-norm transformer blocks,
final LayerNorm. The teacher's embedding is ``(cls + dist) / 2`` after that LayerNorm,
before the classifier head's own LayerNorm ("embed_only").

Nothing here downloads anything; weights come in through ``load_state_dict``.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import TeacherError
from pipeline.teachers.weights import describe_mismatch

SAMPLE_RATE = 32000
N_MELS = 128
N_FFT = 1024
WIN_LENGTH = 800
HOP_LENGTH = 320
F_MIN = 0.0
F_MAX = 15000.0  # hear21passt: sr // 2 - fmax_aug_range // 2 with fmax_aug_range 2000
PREEMPHASIS = 0.97
LOG_OFFSET = 1e-5
MAX_TIME_FRAMES = 998  # mel frames the time positional embedding was trained for (10 s)


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, f_min: float, f_max: float) -> np.ndarray:
    """Kaldi-style triangular mel filters (no VTLN warping), as PaSST's front end uses them.

    Mel scale ``1127 ln(1 + f / 700)``; ``n_mels + 2`` equally spaced mel points between
    ``f_min`` and ``f_max``; filter ``m`` rises from point ``m`` to ``m + 1`` and falls to
    ``m + 2``, evaluated on the mel value of FFT bin frequencies ``k * sr / n_fft``
    (``k < n_fft / 2``); the Nyquist bin gets a zero column. Computed in float32 in the
    same order as Kaldi's recipe in torchaudio, so the filters agree to the last bit.

    Args:
        n_mels: number of filters.
        n_fft: FFT size.
        sample_rate: Hz.
        f_min: lowest edge in Hz.
        f_max: highest edge in Hz (<= 0 counts back from Nyquist, as in Kaldi).

    Returns:
        float32 (n_mels, n_fft // 2 + 1) filter matrix (unnormalised, peak 1).
    """
    if f_max <= 0.0:
        f_max += sample_rate / 2
    mel_low = 1127.0 * math.log(1.0 + f_min / 700.0)
    mel_high = 1127.0 * math.log(1.0 + f_max / 700.0)
    delta = (mel_high - mel_low) / (n_mels + 1)
    index = torch.arange(n_mels, dtype=torch.float32).unsqueeze(1)
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    freqs = (sample_rate / n_fft) * torch.arange(n_fft // 2, dtype=torch.float32)
    bin_mel = (1127.0 * (1.0 + freqs / 700.0).log()).unsqueeze(0)
    up = (bin_mel - left) / (center - left)
    down = (right - bin_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return np.pad(banks.numpy(), ((0, 0), (0, 1))).astype(np.float32)


class PasstMel(nn.Module):
    """PaSST's log-mel front end (eval mode: no frequency-range jitter, no masking).

    Input float32 (batch, samples) at 32 kHz; output (batch, 128, 1 + (samples - 1) // 320).
    """
    window: torch.Tensor
    mel_banks: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(WIN_LENGTH, periodic=False), persistent=False)
        banks = kaldi_mel_banks(N_MELS, N_FFT, SAMPLE_RATE, F_MIN, F_MAX)
        self.register_buffer("mel_banks", torch.from_numpy(banks), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        emphasised = audio[:, 1:] - PREEMPHASIS * audio[:, :-1]
        spec = torch.stft(
            emphasised, N_FFT, hop_length=HOP_LENGTH, win_length=WIN_LENGTH, window=self.window,
            center=True, pad_mode="reflect", normalized=False, return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (batch, 513, frames)
        with torch.autocast(device_type=audio.device.type, enabled=False):
            mel = torch.matmul(self.mel_banks, power.float())
        return (torch.log(mel + LOG_OFFSET) + 4.5) / 5.0


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=patch, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class PaSST(nn.Module):
    """PaSST-S (``passt_s_swa_p16_128_ap476``): a DeiT-style ViT over mel patches.

    Args:
        embed_dim: token size (768).
        depth: transformer blocks (12).
        num_heads: attention heads (12).
        mlp_ratio: MLP hidden size / embed_dim (4).
        num_classes: classifier outputs (527 AudioSet classes; kept for strict loading).
        n_mels: mel bins of the input (128).
        max_time_frames: mel frames of the longest input (998).
        patch: patch side (16).
        stride: patch stride in both axes (10).
    """

    def __init__(
        self,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        num_classes: int = 527,
        n_mels: int = N_MELS,
        max_time_frames: int = MAX_TIME_FRAMES,
        patch: int = 16,
        stride: int = 10,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch, self.stride = patch, stride
        freq_positions, time_positions = n_mels // stride, max_time_frames // stride
        self.patch_embed = _PatchEmbed(embed_dim, patch, stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, embed_dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, freq_positions, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, 1, time_positions))
        self.blocks = nn.Sequential(*[_Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, num_classes))
        self.head_dist = nn.Linear(embed_dim, num_classes)
        for param in (self.cls_token, self.dist_token, self.new_pos_embed,
                      self.freq_new_pos_embed, self.time_new_pos_embed):
            nn.init.trunc_normal_(param, std=0.02)

    @property
    def max_time_patches(self) -> int:
        """Time positions of the positional embedding (99 for 998 mel frames)."""
        return int(self.time_new_pos_embed.shape[-1])

    def tokens(self, mel: torch.Tensor) -> torch.Tensor:
        """Transformer output tokens.

        Args:
            mel: (batch, n_mels, frames) log-mel from :class:`PasstMel`.

        Returns:
            (batch, 2 + patches, embed_dim) after the final LayerNorm; token 0 is CLS,
            token 1 the distillation token.
        """
        x = self.patch_embed(mel.unsqueeze(1))  # (batch, dim, freq, time)
        if x.shape[-1] > self.max_time_patches:
            raise TeacherError(
                f"PaSST input of {mel.shape[-1]} mel frames gives {x.shape[-1]} time patches, more than "
                f"the {self.max_time_patches} its positional embedding has; use windows of at most ~9.9 s"
            )
        x = x + self.time_new_pos_embed[..., : x.shape[-1]] + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)  # (batch, freq * time, dim), frequency-major
        batch = x.shape[0]
        cls = self.cls_token.expand(batch, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(batch, -1, -1) + self.new_pos_embed[:, 1:]
        x = self.blocks(torch.cat((cls, dist, x), dim=1))
        return self.norm(x)

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """The "embed_only" feature: (batch, embed_dim) mean of CLS and distillation tokens."""
        x = self.tokens(mel)
        return (x[:, 0] + x[:, 1]) / 2

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (batch, classes), embedding (batch, embed_dim)) like the original ``PaSST.forward``."""
        features = self.embed(mel)
        return self.head(features), features


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a PaSST checkpoint: a plain state dict or one under ``model``/``state_dict``.

    Only tensors are unpickled (``weights_only=True``).

    Raises:
        TeacherError: the file is not a readable torch checkpoint of tensors.
    """
    try:
        data: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise TeacherError(f"cannot read PaSST checkpoint {str(path)!r}: {exc}") from None
    for key in ("model", "state_dict"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(torch.is_tensor(v) for v in data.values()):
        raise TeacherError(f"{str(path)!r} is not a PaSST state dict (expected a mapping of tensors)")
    return dict(data)


def load_weights(net: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming missing/unexpected keys."""
    problem = describe_mismatch(net.state_dict(), state)
    if problem:
        raise TeacherError(
            f"{str(path)!r} does not match the PaSST architecture ({problem}); "
            "pass the passt-s-f128-p16-s10-ap.476-swa.pt release checkpoint"
        )
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)


def count_parameters(net: nn.Module) -> int:
    """Number of parameters (the full PaSST-S has ~86 M)."""
    return sum(math.prod(p.shape) for p in net.parameters())
