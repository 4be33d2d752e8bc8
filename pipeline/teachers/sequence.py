"""Teachers whose geometry is found by running them: HEAR modules and trained runs.

A *sequence model* takes whole waveforms ``(n, samples)`` and returns frames
``(n, T, D)`` with their center times (seconds). Its frame hop and the time of frame 0
are not declared up front; :class:`SequenceTeacher` measures them once after loading (a
call on silence), checks that they form a regular grid, and then runs the model in one of
two modes (``mode`` in its settings):

- ``window`` (the engine's batched path): the track is cut into windows of
  ``frames_per_window`` frame hops plus ``context_seconds`` of audio on each side (zeros
  outside the track); the model runs on a batch of windows (many files per call, long
  files block by block) and the frames whose centers lie in each window's middle are kept.
  For a model whose frame ``i`` depends only on audio within ``context_seconds`` of its
  center, and that zero-pads its input, these frames equal the frames of one call on the
  whole track. The store keeps the ``T`` frames whose centers lie in ``[0, duration]``
  (:meth:`SequenceTeacher.num_frames`), as one call on the whole track returns them for a
  module that centers its frames on a zero-padded signal (``hearbaseline``, torchcrepe); the
  last window's frames centered past the end are dropped.
- ``clip``: one call per whole track; the stored frames are exactly the model's (any model,
  also transformers that look at the whole clip). No batching across files; a long file is
  decoded whole.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, TeacherError
from pipeline.teachers.base import Teacher, WindowGrid

MODES = ("window", "clip")
#: Deviation from a regular grid that is tolerated, as a fraction of the hop.
GRID_TOLERANCE = 0.01


@dataclass(frozen=True)
class FrameGrid(WindowGrid):
    """A window grid whose window count follows the model's frames, not the window ends.

    Attributes:
        frames_per_window: frames kept per window.
        frame_hop: samples between frame centers.
        frame0: center of frame 0 in samples.
    """

    frames_per_window: int = 1
    frame_hop: int = 1
    frame0: float = 0.0

    def num_windows(self, n_samples: int) -> int:
        """Windows whose kept frames cover every frame centered inside ``[0, n_samples]``."""
        frames = max(1, math.floor((n_samples - self.frame0) / self.frame_hop) + 1)
        return max(1, math.ceil(frames / self.frames_per_window))


@dataclass(frozen=True)
class Geometry:
    """Measured frame geometry: ``hop`` seconds between centers, frame 0 at ``t0`` seconds."""

    hop: float
    t0: float


def check_grid(times: np.ndarray, *, where: str) -> Geometry:
    """The regular grid ``t0 + i * hop`` that ``times`` (seconds, (T,)) lies on.

    Raises:
        TeacherError: fewer than two frames, a non-positive hop, or a deviation of more than
            1 % of the hop (the message names the first bad frame).
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if len(times) < 2:
        raise TeacherError(f"{where}: returned {len(times)} frame(s) on silence; cannot measure its hop")
    hop = float(np.median(np.diff(times)))
    if not hop > 0:
        raise TeacherError(f"{where}: timestamps do not increase (median step {hop * 1000:g} ms)")
    return Geometry(hop, check_times(times, Geometry(hop, float(times[0])), where=where))


def _snap(geometry: Geometry, sample_rate: int) -> Geometry:
    """Round hop and frame 0 to whole samples when they are whole up to float32 timestamp noise."""

    def snap(seconds: float) -> float:
        samples = seconds * sample_rate
        return round(samples) / sample_rate if abs(samples - round(samples)) < 1e-2 else seconds

    return Geometry(snap(geometry.hop), snap(geometry.t0))


def check_times(times: np.ndarray, geometry: Geometry, *, where: str) -> float:
    """Check that ``times`` (seconds) are ``geometry.t0 + i * geometry.hop``; returns ``times[0]``.

    Raises:
        TeacherError: naming the first frame off the grid.
    """
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    expected = geometry.t0 + geometry.hop * np.arange(len(times))
    bad = np.flatnonzero(np.abs(times - expected) > GRID_TOLERANCE * geometry.hop)
    if len(bad):
        i = int(bad[0])
        raise TeacherError(
            f"{where}: timestamps are not a regular grid: frame {i} at {times[i] * 1000:.3f} ms, expected "
            f"{expected[i] * 1000:.3f} ms (hop {geometry.hop * 1000:.3f} ms); the store needs evenly spaced frames"
        )
    return float(times[0])


class SequenceTeacher(Teacher):
    """Base of teachers measured at load time (see the module docstring).

    Subclasses implement :meth:`_load_model` (returns nothing; sets what :meth:`_run` needs),
    :meth:`_run`, :attr:`sample_rate` after loading, :meth:`weight_files`, and provenance in
    :meth:`_describe_config`. Their config has ``mode``, ``window_seconds`` and
    ``context_seconds``.
    """

    def __init__(self, config: Any | None = None) -> None:
        super().__init__(config)
        if self.config.mode not in MODES:
            raise ConfigError(f"{self.name}: mode {self.config.mode!r} is not one of {', '.join(MODES)}")
        if self.config.context_seconds < 0 or self.config.window_seconds <= 2 * self.config.context_seconds:
            raise ConfigError(
                f"{self.name}: window_seconds ({self.config.window_seconds}) must exceed twice "
                f"context_seconds ({self.config.context_seconds}) and context_seconds must be >= 0"
            )
        self._geometry: Geometry | None = None
        self._dim = 0
        self._loaded = False

    # ---- to implement ------------------------------------------------------------------
    def _load_model(self, device: str) -> None:
        raise NotImplementedError

    def _run(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 (n, samples) -> (float32 (n, T, D) frames, float64 (n, T) center times in seconds)."""
        raise NotImplementedError

    def _describe_config(self) -> dict[str, Any]:
        raise NotImplementedError

    # ---- loading and measuring ---------------------------------------------------------
    def _load(self, device: str) -> None:
        self._load_model(device)
        self._loaded = True
        seconds = max(self.config.window_seconds, 2.0)
        frames, times = self._run(np.zeros((1, int(round(seconds * self.sample_rate))), dtype=np.float32))
        self._geometry = _snap(check_grid(times[0], where=self.name), self.sample_rate)
        self._dim = int(frames.shape[-1])

    def _ensure_loaded(self) -> None:
        """Geometry is known only after a load; load on the CPU when asked before one."""
        if not self._loaded:
            self.load("cpu")

    @property
    def geometry(self) -> Geometry:
        self._ensure_loaded()
        assert self._geometry is not None
        return self._geometry

    @property
    def embedding_dim(self) -> int:
        self._ensure_loaded()
        return self._dim

    @property
    def hop_seconds(self) -> float:
        return self.geometry.hop

    @property
    def frame0_center_seconds(self) -> float:
        return self.geometry.t0

    @property
    def window_seconds(self) -> float:
        """The span one frame stands for: its hop (a model's receptive field is not declared).

        Stage two's ``window`` alignment averages the student frames within it; 0 would
        mean a clip-level teacher.
        """
        return self.geometry.hop

    def _hop_samples(self) -> int:
        exact = self.geometry.hop * self.sample_rate
        hop = int(round(exact))
        if hop < 1 or abs(exact - hop) > 1e-3:
            raise TeacherError(
                f"{self.name}: frame hop {self.geometry.hop * 1000:g} ms is not a whole number of samples at "
                f"{self.sample_rate} Hz, so windows cannot line up with it; set mode: clip"
            )
        return hop

    @property
    def grid(self) -> WindowGrid | None:
        if self.config.mode == "clip":
            return None
        cached = self.__dict__.get("_grid")
        if cached is None:
            hop = self._hop_samples()
            context = math.ceil(self.config.context_seconds * self.sample_rate / hop) * hop
            per_window = max(1, int((self.config.window_seconds * self.sample_rate - 2 * context) // hop))
            cached = FrameGrid(
                sample_rate=self.sample_rate, window=per_window * hop + 2 * context, hop=per_window * hop,
                first_start=-context, tail="pad", frames_per_window=per_window, frame_hop=hop,
                frame0=self.geometry.t0 * self.sample_rate,
            )
            self.__dict__["_grid"] = cached
        return cached

    @property
    def frames_per_window(self) -> int:
        grid = self.grid
        return grid.frames_per_window if isinstance(grid, FrameGrid) else 1

    def num_frames(self, n_samples: int) -> int:
        """Frames centered inside the audio: ``t0 + i * hop <= n_samples / sample_rate`` (at least 1)."""
        return max(1, math.floor((n_samples - self.geometry.t0 * self.sample_rate) / self._hop_samples()) + 1)

    def frame_times(self, n_frames: int, duration_seconds: float | None = None) -> np.ndarray:
        return self.geometry.t0 + self.geometry.hop * np.arange(n_frames)

    # ---- inference ---------------------------------------------------------------------
    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Window mode: (n, window) -> (n, frames_per_window, D); clip mode: (1, samples) -> (1, T, D)."""
        windows = np.ascontiguousarray(windows, dtype=np.float32)
        frames, times = self._run(windows)
        grid = self.grid
        if grid is None:
            for row in times:
                check_times(row, self.geometry, where=self.name)
            return frames
        assert isinstance(grid, FrameGrid)
        skip = -grid.first_start // grid.frame_hop
        keep = grid.frames_per_window
        expected = self.geometry.t0 + self.geometry.hop * np.arange(skip + keep)  # times within the window
        got = times[0, : skip + keep]
        if frames.shape[1] < skip + keep or np.max(np.abs(got - expected)) > GRID_TOLERANCE * self.geometry.hop:
            raise TeacherError(
                f"{self.name}: a {grid.window / self.sample_rate:g}-s window gave {frames.shape[1]} frames at "
                f"other times than its first call on silence; set mode: clip"
            )
        return np.ascontiguousarray(frames[:, skip : skip + keep])

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Whole clips (batch, samples) -> (batch, frames, D) as the store holds them."""
        audio = np.asarray(audio, dtype=np.float32)
        audio = audio[None] if audio.ndim == 1 else audio
        if self.grid is None:
            return self.embed_windows(audio)
        return super().embed(audio)[:, : self.num_frames(audio.shape[1])]

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["config"] = self._describe_config()
        info["clip_level"] = False
        return info
