"""The teacher contract: a frozen pretrained model that turns audio into time-stamped frames.

A teacher sees audio through a *window grid*: window ``k`` covers the samples
``[first_start + k * hop, first_start + k * hop + window)`` of the (mono, resampled)
track, samples outside the track being zeros. Each window gives ``frames_per_window``
embedding frames. Frame ``i`` of the track is centered at
``frame0_center_seconds + i * hop_seconds``. This geometry lets stage one cut long
files into windows read one block at a time and batch windows of many files into one
forward pass, while ``embed`` on a whole clip gives the same frames.

Clip-level teachers (PANNs in the paper's setting) set ``grid`` to ``None``: they
embed a whole clip into one frame, centered at half its duration.
"""
from __future__ import annotations

import abc
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.config import to_mapping
from pipeline.errors import ConfigError, TeacherError
from pipeline.frame_axis import FrameAxis
from pipeline.registry import Registry


#: The values of ``teachers.<name>.precision``.
PRECISIONS = ("float32", "tf32", "bfloat16", "float16")
#: Relative error (max |x - x_fp32| / max |x_fp32|) of each teacher's frames in bfloat16, measured on
#: CPU by tests/test_teacher_precision.py on 4 s of a tone plus noise (2026-11-29: musicnn 0.0042,
#: openl3 0.0073, vggish 0.0118 = 3 steps of its 8-bit output, PaSST and CNN14 0.006 and 0.003 on
#: shrunken random networks). These are the bounds that test asserts; benchmarks/gpu_check.py
#: measures the full-size networks on a GPU in bfloat16 and float16.
MEASURED_BF16_ERROR = {"musicnn": 0.01, "openl3": 0.02, "vggish": 0.02, "passt": 0.02, "panns": 0.02}


def check_precision(teacher: str, value: str) -> str:
    """Validate ``teachers.<teacher>.precision``.

    Raises:
        ConfigError: not one of :data:`PRECISIONS`.
    """
    if value not in PRECISIONS:
        raise ConfigError(f"teachers.{teacher}.precision {value!r} is not one of {', '.join(PRECISIONS)}")
    return value


@dataclass(frozen=True)
class WindowGrid:
    """Where a teacher's analysis windows sit on a track, in samples at ``sample_rate``.

    Attributes:
        sample_rate: rate the teacher expects, Hz.
        window: samples each window sees (including any STFT context).
        hop: samples between consecutive window starts.
        first_start: start of window 0; negative means zeros are prepended
            (e.g. OpenL3 ``center=True``: ``-sample_rate // 2``).
        tail: ``"pad"`` keeps a last, zero-padded window that covers the end of the
            track (OpenL3); ``"drop"`` keeps only full windows (VGGish, musicnn).
            A track shorter than one window always yields one zero-padded window.
    """

    sample_rate: int
    window: int
    hop: int
    first_start: int = 0
    tail: str = "drop"

    def num_windows(self, n_samples: int) -> int:
        """Number of windows for a track of ``n_samples`` samples (>= 1)."""
        span = n_samples - self.first_start
        if span <= self.window:
            return 1
        steps = (span - self.window) / self.hop
        return 1 + (math.ceil(steps) if self.tail == "pad" else math.floor(steps))

    def window_start(self, index: int) -> int:
        """First sample of window ``index`` (may be negative)."""
        return self.first_start + index * self.hop

    def cut(self, audio: np.ndarray, start_window: int, n_windows: int, *, offset: int = 0) -> np.ndarray:
        """Cut ``n_windows`` windows starting at ``start_window`` out of ``audio``.

        Args:
            audio: float32 (samples,) holding track samples ``[offset, offset + len(audio))``.
            start_window: index of the first window to cut.
            n_windows: how many windows.
            offset: track sample index of ``audio[0]`` (for blocks of long files).

        Returns:
            float32 (n_windows, window); samples outside ``audio`` are zero.
        """
        out = np.zeros((n_windows, self.window), dtype=np.float32)
        for row in range(n_windows):
            start = self.window_start(start_window + row) - offset
            lo, hi = max(start, 0), min(start + self.window, len(audio))
            if hi > lo:
                out[row, lo - start : hi - start] = audio[lo:hi]
        return out

    def block_span(self, start_window: int, n_windows: int, n_samples: int) -> tuple[int, int]:
        """Track samples ``[lo, hi)`` that windows ``start_window .. +n_windows`` need, clipped to the track."""
        lo = self.window_start(start_window)
        hi = self.window_start(start_window + n_windows - 1) + self.window
        return max(lo, 0), min(hi, n_samples)


class Teacher(abc.ABC):
    """A frozen pretrained embedding model.

    Subclasses set ``name`` and ``config_type`` (a frozen dataclass), and implement the
    geometry properties, :meth:`weight_files`, :meth:`_load` and :meth:`embed_windows`.
    Weights are never downloaded: they come from an installed package or an explicit
    path; :meth:`load` raises :class:`~pipeline.errors.WeightsNotFoundError` otherwise.
    Heavy imports (torch models, TensorFlow) happen in :meth:`_load`, never at import.
    """

    name: ClassVar[str]
    config_type: ClassVar[type]
    #: One line telling users where the weights come from (shown when they are missing).
    weights_hint: ClassVar[str] = ""

    def __init__(self, config: Any | None = None) -> None:
        self.config = config if config is not None else self.config_type()
        self.device = "cpu"
        self._weights_sha256: str | None = None
        check_precision(self.name, self.precision)

    @property
    def precision(self) -> str:
        """Numeric precision of the forward pass (``teachers.<name>.precision``; float32 by default)."""
        if isinstance(self.config, dict):
            return str(self.config.get("precision", "float32"))
        return str(getattr(self.config, "precision", "float32"))

    # ---- geometry -------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def sample_rate(self) -> int:
        """Input sample rate in Hz."""

    @property
    @abc.abstractmethod
    def embedding_dim(self) -> int:
        """Size of one embedding frame."""

    @property
    @abc.abstractmethod
    def grid(self) -> WindowGrid | None:
        """Window grid, or ``None`` for a clip-level teacher."""

    @property
    def frames_per_window(self) -> int:
        """Embedding frames each window yields (1 unless frame-level features)."""
        return 1

    @property
    def hop_seconds(self) -> float:
        """Seconds between consecutive frame centers (0.0 for clip-level teachers)."""
        grid = self.grid
        if grid is None:
            return 0.0
        return grid.hop / grid.sample_rate / self.frames_per_window

    @property
    def window_seconds(self) -> float:
        """Seconds of audio one window sees (0.0 for clip-level: the whole clip)."""
        grid = self.grid
        return 0.0 if grid is None else grid.window / grid.sample_rate

    @property
    def frame0_center_seconds(self) -> float:
        """Center time of frame 0 in seconds (the window center for one frame per window)."""
        grid = self.grid
        if grid is None:
            return 0.0
        if self.frames_per_window != 1:
            raise NotImplementedError(f"{self.name} must define frame0_center_seconds")
        return (grid.first_start + grid.window / 2) / grid.sample_rate

    def num_frames(self, n_samples: int) -> int:
        """Frames produced for a track of ``n_samples`` samples at :attr:`sample_rate`."""
        grid = self.grid
        return 1 if grid is None else grid.num_windows(n_samples) * self.frames_per_window

    @property
    def axis(self) -> FrameAxis:
        """The time axis of this teacher's frames (:class:`~pipeline.frame_axis.FrameAxis`)."""
        return FrameAxis(self.hop_seconds, self.frame0_center_seconds, self.window_seconds)

    def frame_times(self, n_frames: int, duration_seconds: float | None = None) -> np.ndarray:
        """Center times in seconds, float64 (n_frames,).

        Clip-level teachers put their one frame at ``duration_seconds / 2``.
        """
        return self.axis.times(n_frames, clip_seconds=duration_seconds or 0.0)

    # ---- weights --------------------------------------------------------------------
    @abc.abstractmethod
    def weight_files(self) -> list[Path]:
        """The files :meth:`load` reads (may not exist; used for availability and fingerprint)."""

    def weights_available(self) -> bool:
        """Whether every weight file is present on this machine."""
        try:
            files = self.weight_files()
        except TeacherError:
            return False
        return bool(files) and all(Path(f).is_file() for f in files)

    @property
    def weights_sha256(self) -> str:
        """sha256 over the weight files' bytes, in order (computed once)."""
        if self._weights_sha256 is None:
            digest = hashlib.sha256()
            for path in self.weight_files():
                with open(path, "rb") as handle:
                    for block in iter(lambda: handle.read(1 << 20), b""):
                        digest.update(block)
            self._weights_sha256 = digest.hexdigest()
        return self._weights_sha256

    def load(self, device: str = "cpu") -> "Teacher":
        """Load the weights onto ``device`` (``cpu`` or ``cuda``); returns ``self``.

        Raises:
            WeightsNotFoundError: a weight file is missing (the message says where they come from).
        """
        self.device = device
        self._load(device)
        return self

    @abc.abstractmethod
    def _load(self, device: str) -> None:
        """Build the model and read the weights."""

    # ---- inference ------------------------------------------------------------------
    def check_clip(self, n_samples: int) -> None:
        """Refuse, before decoding, a clip this teacher cannot embed (clip-level teachers).

        Args:
            n_samples: clip length in samples at :attr:`sample_rate`.

        Raises:
            TeacherError: the clip is unusable for this teacher (the message says what to do).
        """

    @abc.abstractmethod
    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Embed a batch of windows.

        Args:
            windows: float32 (n, grid.window) mono audio at :attr:`sample_rate`, or for a
                clip-level teacher (n, samples) whole clips.

        Returns:
            float32 (n, frames_per_window, embedding_dim).
        """

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Embed whole clips.

        Args:
            audio: float32 (batch, samples) mono waveforms at :attr:`sample_rate`.

        Returns:
            float32 (batch, frames, embedding_dim); frame ``i`` centered at
            ``frame0_center_seconds + i * hop_seconds``.
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[None]
        grid = self.grid
        if grid is None:
            return self.embed_windows(audio)
        n = grid.num_windows(audio.shape[1])
        windows = np.concatenate([grid.cut(row, 0, n) for row in audio])
        out = self.embed_windows(windows)
        return out.reshape(audio.shape[0], n * self.frames_per_window, self.embedding_dim)

    # ---- provenance -----------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """What a store records about this teacher (everything that changes its frames)."""
        config = to_mapping(self.config)
        config.pop("weights", None)  # a path is not provenance; the sha256 is
        if config.get("precision") == "float32":
            config.pop("precision")  # the default: stores made before the setting existed stay valid
        return {
            "name": self.name,
            "config": config,
            "weights_sha256": self.weights_sha256,
            "sample_rate": self.sample_rate,
            "hop_seconds": self.hop_seconds,
            "window_seconds": self.window_seconds,
            "frame0_center_seconds": self.frame0_center_seconds,
            "clip_level": self.grid is None,
            "dim": self.embedding_dim,
        }


TEACHERS: Registry[type[Teacher]] = Registry("teacher")


def register_teacher(cls: type[Teacher]) -> type[Teacher]:
    """Class decorator adding a teacher to :data:`TEACHERS` under ``cls.name``."""
    return TEACHERS.register(cls.name)(cls)
