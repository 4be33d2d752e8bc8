"""CP-ResNet, the paper's OpenMIC student (docs/method.md, "Students"; Koutini et al.'s
receptive-field-regularised ResNet).

Stem conv 5x5 stride 2 -> three stages of four BasicBlocks (base, 2x base, 4x base
channels); max-pool 2x2 after blocks 1, 2 and 4 of stage 1; kernel sizes from ``rho``;
head: mean over frequency and time -> Linear. ``rho=7, base_channels=128`` with 20 classes
has exactly 5,534,612 parameters (``rho=3``: 3,830,676).

Features (``output_1..3``) all run at 16 mel frames per frame: 0.16 s at 32 kHz / hop 320
(frame 0 centered at mel frame 7). Initialisation is the official Fixup-style pass.

Departure: the Fixup depth ``L`` is the number of blocks in *this* model (12). The
official code counts blocks in a module-global variable, so a second model built in the
same process got a smaller init scale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.errors import ConfigError
from pipeline.students.base import Student, TimeOp, register_student
from pipeline.students.frontend import FrontEndConfig


@dataclass(frozen=True)
class CPResNetConfig(FrontEndConfig):
    """CP-ResNet settings (``params.yaml: students.cp_resnet``).

    Attributes:
        rho: receptive-field parameter; 7 in every EAsT config (3 in the early baseline).
        base_channels: channels of stage 1 (stage 2: 2x, stage 3: 4x).
        sample_rate, n_mels, n_fft, hop, win, fmin, fmax, fmin_aug_range, fmax_aug_range,
        freqm, timem, preemphasis, norm_mean, norm_std: the log-mel front end
            (:class:`~pipeline.students.frontend.FrontEndConfig`); paper: OpenMIC at 32 kHz,
            128 mels, fmax 16 kHz.
    """

    rho: int = 7
    base_channels: int = 128
    sample_rate: int = 32000
    n_mels: int = 128


def _k(big: bool) -> int:
    return 3 if big else 1


def stage_kernels(rho: int) -> list[list[tuple[int, int]]]:
    """(k1, k2) per block per stage, as the official receptive-field schedule derives them.

    Larger ``rho`` turns 1x1 kernels of the late blocks into 3x3; smaller ``rho`` turns the
    early 3x3 kernels into 1x1.
    """
    e = rho - 7
    stage1_k2 = [1, _k(e >= -5), _k(e >= -3), _k(e >= -1)]
    stage1 = list(zip([3, _k(e >= -6), _k(e >= -4), _k(e >= -2)], stage1_k2))
    stage2 = list(zip([_k(e >= 0), _k(e > 1), _k(e > 3), _k(e > 5)], stage1_k2))
    stage3 = list(zip([_k(e > 7), _k(e > 9), _k(e > 11), _k(e > 13)],
                      [_k(e > 8), _k(e > 10), _k(e > 12), _k(e > 14)]))
    return [stage1, stage2, stage3]


class BasicBlock(nn.Module):
    """conv(k1) -> BN -> ReLU -> conv(k2) -> BN, plus a shortcut (1x1 conv + BN when channels
    change), ReLU after the sum. 'Same' padding (kernels are 1 or 3)."""

    def __init__(self, c_in: int, c_out: int, k1: int, k2: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, k1, padding=k1 // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, k2, padding=k2 // 2, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))

    def fixup_(self, n_blocks: int) -> None:
        """Fixup-style init: conv1 ~ N(0, L^-1/2 sqrt(2/n)), conv2 = 0, shortcut conv ~ N(0, sqrt(2/n)),
        with ``n = kernel area * out channels``."""
        k = self.conv1.kernel_size
        n = k[0] * k[1] * self.conv1.out_channels
        nn.init.normal_(self.conv1.weight, 0.0, n_blocks ** -0.5 * math.sqrt(2.0 / n))
        nn.init.zeros_(self.conv2.weight)
        if isinstance(self.shortcut, nn.Sequential):
            conv = cast(nn.Conv2d, self.shortcut[0])
            nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / conv.out_channels))


def _block_ops(block: BasicBlock) -> list[TimeOp]:
    """The time geometry of a block's two convolutions (kernel, stride 1, padding along time)."""
    return [TimeOp(int(conv.kernel_size[1]), 1, int(cast("tuple[int, int]", conv.padding)[1]))
            for conv in (block.conv1, block.conv2)]


@register_student
class CPResNet(Student):
    """CP-ResNet on the log-mel of a waveform (batch, samples) -> :class:`StudentOutput`."""

    name = "cp_resnet"
    config_type = CPResNetConfig
    #: blocks after which stage 1 max-pools 2x2 (1-based)
    POOL_AFTER = (1, 2, 4)

    def __init__(self, config: CPResNetConfig | None = None, n_classes: int = 20) -> None:
        config = config or CPResNetConfig()
        super().__init__(config, n_classes)
        if config.base_channels < 1:
            raise ConfigError(f"cp_resnet base_channels must be >= 1, got {config.base_channels}")
        # stem stride 2 and three 2x pools: 16 mel bands per output band
        if config.n_mels < 16:
            raise ConfigError(
                f"cp_resnet needs n_mels >= 16 (stem stride 2, three 2x pools), got {config.n_mels}"
            )
        c = config.base_channels
        self.stem = nn.Sequential(
            nn.Conv2d(1, c, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(c), nn.ReLU()
        )
        kernels = stage_kernels(config.rho)
        widths = [(c, c), (c, 2 * c), (2 * c, 4 * c)]
        self.stages = nn.ModuleList()
        for stage_index, ((c_in, c_out), ks) in enumerate(zip(widths, kernels)):
            layers: list[nn.Module] = []
            for block_index, (k1, k2) in enumerate(ks, start=1):
                layers.append(BasicBlock(c_in if block_index == 1 else c_out, c_out, k1, k2))
                if stage_index == 0 and block_index in self.POOL_AFTER:
                    layers.append(nn.MaxPool2d(2))
            self.stages.append(nn.Sequential(*layers))
        self.head = nn.Linear(4 * c, n_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.head.bias)
        blocks = [m for m in self.modules() if isinstance(m, BasicBlock)]
        for block in blocks:
            block.fixup_(len(blocks))

    def _stage_time_ops(self) -> list[list[TimeOp]]:
        stem = [TimeOp(5, 2, 2)]
        stage1 = []
        for block in cast(nn.Sequential, self.stages[0]):
            if isinstance(block, nn.MaxPool2d):
                stage1.append(TimeOp(2, 2, 0))
            else:
                stage1 += _block_ops(cast(BasicBlock, block))
        later = [
            [op for b in cast("list[BasicBlock]", list(stage)) for op in _block_ops(b)]
            for stage in cast("list[nn.Sequential]", list(self.stages)[1:])
        ]
        return [stem + stage1, *later]

    def _forward_mel(self, mel: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.stem(mel.unsqueeze(1))
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return self.head(x.mean(dim=(2, 3))), maps
