"""A tiny teacher for cluster tests, loaded as a plugin: 3 numbers per 0.1-s window, and a gate.

With ``EAST_TEST_GATE=<folder>`` in its process's environment, the first process to reach its
second forward pass (so mid-part, before that part is committed) takes the gate (an exclusive
create of ``<folder>/taken``), writes its pid into the FIFO ``<folder>/fifo`` (the open blocks
until the test reads it: a handshake, no timing) and then blocks for ever, waiting to be killed.
Every other forward pass, in that process or any other, runs straight through.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.teachers.base import Teacher, WindowGrid

GATE_ENV = "EAST_TEST_GATE"


@dataclass(frozen=True)
class GatedConfig:
    gain: float = 1.0


class GatedTeacher(Teacher):
    """Mean, RMS and peak of each 0.1-s window at 16 kHz (deterministic, no weights)."""

    name = "gated"
    config_type = GatedConfig
    weights_hint = "needs no weights"

    def __init__(self, config: GatedConfig | None = None) -> None:
        super().__init__(config)
        self.calls = 0

    @property
    def sample_rate(self) -> int:
        return 16000

    @property
    def embedding_dim(self) -> int:
        return 3

    @property
    def grid(self) -> WindowGrid:
        return WindowGrid(16000, window=1600, hop=1600)

    def weight_files(self) -> list[Path]:
        return []

    def weights_available(self) -> bool:
        return True

    def _load(self, device: str) -> None:
        pass

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        self.calls += 1
        gate = os.environ.get(GATE_ENV)
        if gate and self.calls >= 2:
            _block_once(Path(gate))
        x = windows * self.config.gain
        feats = [x.mean(axis=1), np.sqrt((x**2).mean(axis=1)), np.abs(x).max(axis=1)]
        return np.stack(feats, axis=1)[:, None, :].astype(np.float32)


def _block_once(gate: Path) -> None:
    """The first caller of all processes sends its pid through the FIFO and never returns."""
    try:
        os.close(os.open(gate / "taken", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return
    with open(gate / "fifo", "w") as fifo:  # blocks until the test opens it for reading
        fifo.write(f"{os.getpid()}\n")
    threading.Event().wait()  # until SIGKILL


def install(site: Path) -> None:
    """Make the teacher a plugin named ``gated`` for processes with ``site`` on their path (a dist-info)."""
    info = site / "gated_teacher-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gated-teacher\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[east_pipeline.teachers]\ngated = tests.gated_teacher:GatedTeacher\n")
