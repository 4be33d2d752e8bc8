"""Shared body of the :mod:`pipeline.hear` modules: a loaded teacher behind the HEAR 2021 API."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipeline.errors import TeacherError
from pipeline.teachers import build_teacher

#: Sample rates the HEAR 2021 rules allow a module to declare.
HEAR_SAMPLE_RATES = (16000, 22050, 44100, 48000)


class HearModel(torch.nn.Module):
    """The HEAR "model": a loaded pipeline teacher plus the attributes the API requires.

    Attributes:
        sample_rate: rate of the audio the module takes, Hz (one of :data:`HEAR_SAMPLE_RATES`).
        timestamp_embedding_size: D of ``get_timestamp_embeddings``.
        scene_embedding_size: D of ``get_scene_embeddings`` (the same).
        teacher: the loaded :class:`~pipeline.teachers.Teacher`.
    """

    def __init__(self, teacher: Any, sample_rate: int) -> None:
        super().__init__()
        self.teacher = teacher
        self.sample_rate = int(sample_rate)
        self.timestamp_embedding_size = int(teacher.embedding_dim)
        self.scene_embedding_size = int(teacher.embedding_dim)


def load(name: str, model_file_path: str, settings: dict[str, Any], sample_rate: int | None = None) -> HearModel:
    """Build and load teacher ``name`` (CPU) with ``settings``; ``model_file_path`` sets its weights."""
    settings = dict(settings)
    if model_file_path:
        settings["weights"] = str(model_file_path)
    teacher = build_teacher(name, settings)
    if teacher.grid is None:
        raise TeacherError(f"{name}: a clip-level setting has no timestamp embeddings; use frame-level settings")
    teacher.load("cpu")
    return HearModel(teacher, sample_rate or teacher.sample_rate)


def _as_input(audio: torch.Tensor, model: HearModel) -> np.ndarray:
    if not isinstance(audio, torch.Tensor) or audio.ndim != 2:
        raise ValueError(f"audio must be a 2-D tensor (n_sounds, n_samples), got {getattr(audio, 'shape', audio)!r}")
    x = audio.detach().to("cpu", torch.float32).numpy()
    rate = model.teacher.sample_rate
    if model.sample_rate != rate:
        from pipeline.audio import resample

        x = np.stack([resample(row, model.sample_rate, rate) for row in x]) if len(x) else x
    return np.ascontiguousarray(x, dtype=np.float32)


def timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """HEAR ``get_timestamp_embeddings``.

    Args:
        audio: float (n_sounds, n_samples) in [-1, 1] at ``model.sample_rate``.
        model: from ``load_model``.

    Returns:
        float32 embeddings (n_sounds, T, D) and float32 timestamps (n_sounds, T): frame
        centers in milliseconds; on ``audio``'s device.
    """
    x = _as_input(audio, model)
    teacher = model.teacher
    with torch.no_grad():
        emb = teacher.embed(x) if len(x) else np.zeros((0, 0, model.timestamp_embedding_size), np.float32)
    times = teacher.frame_times(emb.shape[1]) * 1000.0
    stamps = torch.from_numpy(np.ascontiguousarray(times, dtype=np.float32)).expand(emb.shape[0], -1)
    return torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)).to(audio.device), stamps.to(audio.device)


def scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """HEAR ``get_scene_embeddings``: the mean over time of the timestamp embeddings, float32 (n_sounds, D)."""
    emb, _ = timestamp_embeddings(audio, model)
    return emb.mean(dim=1)
