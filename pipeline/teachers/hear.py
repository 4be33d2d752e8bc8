"""``hear:<module>``: any module implementing the HEAR 2021 API as a teacher.

A HEAR module (https://hearbenchmark.com/hear-api.html) exposes
``load_model(model_file_path) -> model`` with ``model.sample_rate`` and
``model.timestamp_embedding_size``, and ``get_timestamp_embeddings(audio (n, samples),
model) -> (embeddings (n, T, D), timestamps (n, T) in milliseconds)``. This adapter runs
one through the stage-one engine (see :mod:`pipeline.teachers.sequence` for the two modes).
Its settings live in ``params.yaml: teachers.hear``; ``--weights`` is the
``model_file_path``. Provenance: module name, its distribution's name and version, the
load options and the sha256 of the model file.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import TeacherError
from pipeline.teachers.sequence import SequenceTeacher


@dataclass(frozen=True)
class HearConfig:
    """Settings of every ``hear:`` teacher (``params.yaml: teachers.hear``).

    Attributes:
        weights: ``model_file_path`` given to ``load_model`` (``None``: ``""``, the module's default).
        options: extra keyword arguments of ``load_model``.
        mode: ``window`` (batched windows, exact for frame-local models) or ``clip`` (one call per track).
        window_seconds: audio per window in ``window`` mode (context included); also the probe length.
        context_seconds: audio the model sees on each side of the frames kept from a window.
    """

    weights: str | None = None
    options: dict = field(default_factory=dict)
    mode: str = "window"
    window_seconds: float = 10.0
    context_seconds: float = 1.0


def distribution_of(module: str) -> tuple[str, str]:
    """``(distribution name, version)`` that installed ``module`` (``("", "")`` when none did)."""
    top = module.split(".")[0]
    names = metadata.packages_distributions().get(top, [])
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "", ""


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "numpy"):
        value = value.numpy()
    return np.asarray(value)


class HearTeacher(SequenceTeacher):
    """A HEAR-API module run as a teacher; ``name`` is ``hear:<module>``."""

    name = "hear"
    config_type = HearConfig
    weights_hint = ("pip install the module; its model file (if it needs one) goes in teachers.hear.weights "
                    "or --weights")

    def __init__(self, module: str, config: HearConfig | None = None) -> None:
        if not module or any(part == "" or not part.isidentifier() for part in module.split(".")):
            raise TeacherError(f"hear:{module!r} is not an importable module name, e.g. hear:hearbaseline.naive")
        self.module_name = module
        self.name = f"hear:{module}"  # type: ignore[misc]  # per instance: one class, many modules
        super().__init__(config)
        self._module: Any = None
        self._model: Any = None
        self._torch = False

    # ---- weights -------------------------------------------------------------------
    def weight_files(self) -> list[Path]:
        return [Path(self.config.weights).expanduser()] if self.config.weights else []

    def module_installed(self) -> bool:
        """Whether the module can be found (without importing it)."""
        try:
            return importlib.util.find_spec(self.module_name) is not None
        except (ImportError, ValueError):
            return False

    def weights_available(self) -> bool:
        return self.module_installed() and all(f.is_file() for f in self.weight_files())

    @property
    def weights_sha256(self) -> str:
        return super().weights_sha256 if self.weight_files() else ""

    # ---- model ---------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        self._ensure_loaded()
        return int(self._model.sample_rate)

    def _load_model(self, device: str) -> None:
        try:
            module = importlib.import_module(self.module_name)
        except ImportError as exc:
            raise TeacherError(f"{self.name}: cannot import {self.module_name!r} ({exc}); pip install it") from None
        for attr in ("load_model", "get_timestamp_embeddings"):
            if not callable(getattr(module, attr, None)):
                raise TeacherError(f"{self.name}: the module has no {attr}(); it does not implement the HEAR API")
        path = str(self.weight_files()[0]) if self.weight_files() else ""
        model = module.load_model(path, **dict(self.config.options))
        for attr in ("sample_rate", "timestamp_embedding_size"):
            if not hasattr(model, attr):
                raise TeacherError(f"{self.name}: load_model() returned a model without .{attr} (HEAR API)")
        try:
            import torch

            self._torch = isinstance(model, torch.nn.Module)
        except ImportError:  # pragma: no cover - torch is a dependency
            self._torch = False
        if self._torch:
            model = model.to(device).eval()
        self._module, self._model = module, model

    def _run(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._torch:
            import torch

            with torch.no_grad():
                x = torch.from_numpy(np.ascontiguousarray(audio)).to(self.device)
                emb, stamps = self._module.get_timestamp_embeddings(x, self._model)
        else:
            import tensorflow as tf

            emb, stamps = self._module.get_timestamp_embeddings(tf.convert_to_tensor(audio), self._model)
        emb = _numpy(emb).astype(np.float32, copy=False)
        stamps = _numpy(stamps).astype(np.float64)
        if stamps.ndim == 1:
            stamps = np.broadcast_to(stamps, emb.shape[:2])
        size = int(self._model.timestamp_embedding_size)
        if emb.ndim != 3 or emb.shape[0] != len(audio) or emb.shape[2] != size or stamps.shape != emb.shape[:2]:
            raise TeacherError(
                f"{self.name}: get_timestamp_embeddings gave embeddings {emb.shape} and timestamps {stamps.shape} "
                f"for {len(audio)} sounds; the HEAR API wants ({len(audio)}, T, {size}) and ({len(audio)}, T)"
            )
        return emb, stamps / 1000.0  # milliseconds -> seconds

    def _describe_config(self) -> dict[str, Any]:
        package, version = distribution_of(self.module_name)
        return {
            "module": self.module_name,
            "package": package,
            "package_version": version,
            "options": dict(self.config.options),
            "mode": self.config.mode,
            "window_seconds": self.config.window_seconds,
            "context_seconds": self.config.context_seconds,
        }
