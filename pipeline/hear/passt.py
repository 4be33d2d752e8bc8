"""HEAR 2021 API module of the pipeline's passt port: passt_s_swa_p16_128_ap476, 768-d, 0.96 s
windows and hop; takes 48 kHz, resampled to 32 kHz inside.

``load_model(model_file_path="", **settings)`` takes the weight file and the
``params.yaml: teachers.passt`` settings; see :mod:`pipeline.hear`.
"""
from __future__ import annotations

from typing import Any

import torch

from pipeline.hear import _api

SAMPLE_RATE = 48000
DEFAULTS: dict[str, Any] = {}


def load_model(model_file_path: str = "", **settings: Any) -> _api.HearModel:
    """The loaded passt teacher as a HEAR model (``sample_rate`` 48000 Hz)."""
    return _api.load("passt", model_file_path, {**DEFAULTS, **settings}, SAMPLE_RATE)


def get_timestamp_embeddings(audio: torch.Tensor, model: _api.HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_sounds, n_samples) -> embeddings (n_sounds, T, D) float32, timestamps (n_sounds, T) in ms."""
    return _api.timestamp_embeddings(audio, model)


def get_scene_embeddings(audio: torch.Tensor, model: _api.HearModel) -> torch.Tensor:
    """(n_sounds, n_samples) -> (n_sounds, D) float32: the mean of the timestamp embeddings."""
    return _api.scene_embeddings(audio, model)
