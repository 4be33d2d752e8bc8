"""Mobile-FCN, the paper's MagnaTagATune student (docs/method.md, "Students"): Choi's FCN with
depthwise-separable blocks.

| layer | block | channels | max-pool (F, T) |
|---|---|---|---|
| 1 | conv 3x3 | 1 -> 64 | (2, 4) |
| 2 | conv 3x3 | 64 -> 128 | (2, 3) |
| 3 | depthwise-separable | 128 -> 128 | (2, 2) |
| 4 | depthwise-separable | 128 -> 128 | (n_mels / 32, 2) -> ``output_1`` |
| 5 | depthwise-separable | 128 -> 128 | (4, 2) |
| 6 | depthwise-separable | 128 -> 256 | none -> ``output_2`` |
| 7, 8 | depthwise-separable | 256 -> 256 | none -> ``output_3`` |

Dropout (0.5) after ``output_1``, after ``output_2`` and before the head (mean over
frequency and time -> Linear). Default PyTorch initialisation. 314,098 parameters with
50 classes.

Time: a feature frame of ``output_1`` spans 48 mel frames (0.96 s at 16 kHz / hop 320),
``output_2``/``output_3`` 96 (1.92 s). A clip needs 96 mel frames (1.9 s at 16 kHz) to
keep one frame of ``output_3``; 5-s clips give 2.

Departure: the official code has layer 4 pool (3, 2) for 96 mels and (4, 2) for 128 mels;
here its frequency pool is ``n_mels / 32``, which is the same for those two and extends
to any multiple of 32 (the frequency axis always ends at 1 band).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from pipeline.errors import ConfigError
from pipeline.students.base import Student, TimeOp, register_student
from pipeline.students.frontend import FrontEndConfig


@dataclass(frozen=True)
class MobileFCNConfig(FrontEndConfig):
    """Mobile-FCN settings (``params.yaml: students.mobile_fcn``).

    Attributes:
        dropout: dropout probability (paper 0.5).
        sample_rate, n_mels, n_fft, hop, win, fmin, fmax, fmin_aug_range, fmax_aug_range,
        freqm, timem, preemphasis, norm_mean, norm_std: the log-mel front end
            (:class:`~pipeline.students.frontend.FrontEndConfig`); paper: MTT at 16 kHz,
            96 mels, fmax 8 kHz, no augmentation.
    """

    dropout: float = 0.5
    sample_rate: int = 16000
    n_mels: int = 96


class ConvBlock(nn.Module):
    """3x3 conv (no bias) -> BN -> ReLU -> max-pool."""

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.pool = nn.MaxPool2d(pool) if pool != (1, 1) else nn.Identity()
        self.time_pool = pool[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.bn(self.conv(x))))

    def time_ops(self) -> list[TimeOp]:
        ops = [TimeOp(3, 1, 1)]
        return ops + ([TimeOp(self.time_pool, self.time_pool, 0)] if self.time_pool > 1 else [])


class SeparableBlock(ConvBlock):
    """3x3 depthwise conv -> BN -> ReLU -> 1x1 pointwise conv -> BN -> ReLU -> max-pool."""

    def __init__(self, c_in: int, c_out: int, pool: tuple[int, int]) -> None:
        nn.Module.__init__(self)
        self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)
        self.bn1 = nn.BatchNorm2d(c_in)
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.pool = nn.MaxPool2d(pool) if pool != (1, 1) else nn.Identity()
        self.time_pool = pool[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.depthwise(x)))
        return self.pool(torch.relu(self.bn2(self.pointwise(y))))


@register_student
class MobileFCN(Student):
    """Mobile-FCN on the log-mel of a waveform (batch, samples) -> :class:`StudentOutput`."""

    name = "mobile_fcn"
    config_type = MobileFCNConfig

    def __init__(self, config: MobileFCNConfig | None = None, n_classes: int = 50) -> None:
        config = config or MobileFCNConfig()
        super().__init__(config, n_classes)
        if config.n_mels < 32 or config.n_mels % 32:
            raise ConfigError(
                f"mobile_fcn needs n_mels a multiple of 32 (its frequency pooling is 2*2*2*(n_mels/32)*4), "
                f"got {config.n_mels}; the paper uses 96 (MTT) or 128"
            )
        if not 0.0 <= config.dropout < 1.0:
            raise ConfigError(f"mobile_fcn dropout must be in [0, 1), got {config.dropout}")
        self.stage1 = nn.Sequential(
            ConvBlock(1, 64, (2, 4)),
            ConvBlock(64, 128, (2, 3)),
            SeparableBlock(128, 128, (2, 2)),
            SeparableBlock(128, 128, (config.n_mels // 32, 2)),
        )
        self.stage2 = nn.Sequential(
            nn.Dropout(config.dropout), SeparableBlock(128, 128, (4, 2)), SeparableBlock(128, 256, (1, 1))
        )
        self.stage3 = nn.Sequential(
            nn.Dropout(config.dropout), SeparableBlock(256, 256, (1, 1)), SeparableBlock(256, 256, (1, 1))
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(256, n_classes)

    def _stage_time_ops(self) -> list[list[TimeOp]]:
        return [
            [op for block in stage if isinstance(block, ConvBlock) for op in block.time_ops()]
            for stage in (self.stage1, self.stage2, self.stage3)
        ]

    def _forward_mel(self, mel: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        out1 = self.stage1(mel.unsqueeze(1))
        out2 = self.stage2(out1)
        out3 = self.stage3(out2)
        return self.head(self.dropout(out3).mean(dim=(2, 3))), [out1, out2, out3]
