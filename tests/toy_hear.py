"""A small HEAR-2021-API module written for the tests (``--teacher hear:tests.toy_hear``).

Frames of 1,024 samples, centered every 25 ms (400 samples at 16 kHz) from 0 ms, zero-padded
at both ends like ``hearbaseline``; each frame's log power spectrum projected to 8 dims by a
seeded random matrix (the "weights", loadable from a ``.pt`` state dict).
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

FRAME = 1024
HOP = 400


class ToyModel(torch.nn.Module):
    sample_rate = 16000
    timestamp_embedding_size = 8
    scene_embedding_size = 8

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.projection = torch.nn.Parameter(torch.randn(FRAME // 2 + 1, 8, generator=generator) / 20)
        self.register_buffer("window", torch.hann_window(FRAME))

    def forward(self, frames: Tensor) -> Tensor:
        power = torch.fft.rfft(frames * self.window).abs() ** 2
        return torch.log(power + 1e-6) @ self.projection


def load_model(model_file_path: str = "", seed: int = 0) -> ToyModel:
    model = ToyModel(seed)
    if model_file_path:
        model.load_state_dict(torch.load(model_file_path, map_location="cpu", weights_only=True))
    return model


def get_timestamp_embeddings(audio: Tensor, model: ToyModel) -> Tuple[Tensor, Tensor]:
    if audio.ndim != 2:
        raise ValueError("audio must be (n_sounds, n_samples)")
    padded = F.pad(audio, (FRAME // 2, FRAME - FRAME // 2))
    frames = padded.unfold(1, FRAME, HOP)  # (n, 1 + n_samples // HOP, FRAME)
    with torch.no_grad():
        embeddings = model(frames)
    stamps = torch.arange(frames.shape[1], dtype=torch.float32) * (HOP / model.sample_rate * 1000.0)
    return embeddings, stamps.expand(audio.shape[0], -1)


def get_scene_embeddings(audio: Tensor, model: ToyModel) -> Tensor:
    embeddings, _ = get_timestamp_embeddings(audio, model)
    return embeddings.mean(dim=1)
