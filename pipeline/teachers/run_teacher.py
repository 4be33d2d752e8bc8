"""``run:<run_dir>``: a run trained by this pipeline as a teacher.

A big model trained on the task (a CP-ResNet, a wide Mobile-FCN) teaches a small one: one
of its feature maps (``layer``, 0-based, default the last) is extracted with the
student's own frame times (:class:`~pipeline.students.base.StudentOutput`). Settings in
``params.yaml: teachers.run``; ``--weights`` picks another checkpoint of the run.
Provenance: the run's ``config.json``, the layer and the sha256 of the checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import TeacherError, TrainingError
from pipeline.run_config import RunConfig
from pipeline.students.trained import load_run
from pipeline.teachers.sequence import SequenceTeacher


@dataclass(frozen=True)
class RunTeacherConfig:
    """Settings of every ``run:`` teacher (``params.yaml: teachers.run``).

    Attributes:
        layer: feature map, 0-based (``-1``: the last).
        checkpoint: checkpoint file in the run folder (or a path), default ``best.pt``.
        mode: ``clip`` (the model on each whole track, as in training) or ``window``.
        window_seconds, context_seconds: windows of ``window`` mode (the receptive field of
            a student's last map is seconds long: keep the context large).
        weights: same as ``checkpoint`` (what ``--weights`` sets); wins when given.
    """

    layer: int = -1
    checkpoint: str = "best.pt"
    mode: str = "clip"
    window_seconds: float = 30.0
    context_seconds: float = 5.0
    weights: str | None = None


class RunTeacher(SequenceTeacher):
    """A trained run's feature map as teacher frames; ``name`` is ``run:<run folder name>``."""

    name = "run"
    config_type = RunTeacherConfig
    weights_hint = "train one with `pipeline distill --run-dir DIR`; its best.pt and config.json must be in DIR"

    def __init__(self, run_dir: str | Path, config: RunTeacherConfig | None = None) -> None:
        self.run_dir = Path(run_dir).expanduser()
        self.name = f"run:{self.run_dir.resolve().name}"  # type: ignore[misc]  # per instance
        super().__init__(config)
        self._model: Any = None

    def _checkpoint(self) -> Path:
        chosen = Path(self.config.weights or self.config.checkpoint).expanduser()
        return chosen if chosen.is_absolute() else self.run_dir / chosen

    def weight_files(self) -> list[Path]:
        return [self._checkpoint()]

    def weights_available(self) -> bool:
        return (self.run_dir / "config.json").is_file() and self._checkpoint().is_file()

    def run_config(self) -> RunConfig:
        """The run's ``config.json``.

        Raises:
            TeacherError: no run there (one line naming the folder).
        """
        try:
            return RunConfig.read(self.run_dir)
        except TrainingError as exc:
            raise TeacherError(f"{self.name}: {exc}") from None

    @property
    def sample_rate(self) -> int:
        return int(self.run_config().sample_rate)

    def _layer(self, n_stages: int) -> int:
        layer = self.config.layer + n_stages if self.config.layer < 0 else self.config.layer
        if not 0 <= layer < n_stages:
            raise TeacherError(f"{self.name}: layer {self.config.layer} does not exist; the student has "
                               f"{n_stages} feature maps (0..{n_stages - 1}, or -1 for the last)")
        return layer

    def _load_model(self, device: str) -> None:
        loaded = load_run(self.run_dir, checkpoint=str(self._checkpoint().resolve()))
        self._model = loaded.model.to(device).eval()
        self._stage = self._layer(len(self._model.frame_hop_seconds))

    def _run(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.no_grad():
            out = self._model(torch.from_numpy(np.ascontiguousarray(audio)).to(self.device))
        frames = out.features[self._stage].float().cpu().numpy()
        times = np.broadcast_to(out.frame_times(self._stage), frames.shape[:2])
        return frames, times

    def _describe_config(self) -> dict[str, Any]:
        self._ensure_loaded()
        return {
            "run": self.run_dir.resolve().name,
            "layer": self._stage,
            "checkpoint": self._checkpoint().name,
            "run_config": self.run_config().as_dict(),
            "mode": self.config.mode,
            "window_seconds": self.config.window_seconds,
            "context_seconds": self.config.context_seconds,
        }
