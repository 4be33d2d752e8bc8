"""The time axis of a sequence of frames: where frame ``i`` sits, and which frames a span of seconds holds.

Time alignment is the heart of the method: a teacher's frames (stage one), the frames a store
serves, the loader's crops and the student's feature maps all meet on one axis, frame ``i``
centered at ``frame0_center + i * hop`` seconds. :class:`FrameAxis` is that axis as a value;
teachers, stores, the loader and the students build one instead of writing the formula out.
A clip-level axis (``hop == 0``) has one frame centered on the clip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: tolerance, in frames, for a time that lands on a frame center up to float rounding
EPS_FRAMES = 1e-6


@dataclass(frozen=True)
class FrameAxis:
    """Frame ``i`` is centered at ``frame0_center + i * hop`` seconds and summarises ``window`` seconds.

    Attributes:
        hop: seconds between frame centers; 0 for a clip-level sequence (one frame per clip).
        frame0_center: center of frame 0 in seconds.
        window: audio seconds one frame summarises (0 = the whole clip).
    """

    hop: float
    frame0_center: float = 0.0
    window: float = 0.0

    @property
    def clip_level(self) -> bool:
        """One frame for the whole clip."""
        return self.hop == 0.0

    def times(self, n_frames: int, first: int = 0, *, clip_seconds: float = 0.0) -> np.ndarray:
        """float64 (n_frames,) center times in seconds of frames ``first .. first + n_frames - 1``.

        A clip-level axis puts every frame at ``clip_seconds / 2``.
        """
        if self.clip_level:
            return np.full(n_frames, clip_seconds / 2.0)
        return self.frame0_center + self.hop * np.arange(first, first + n_frames, dtype=np.float64)

    def index_range(self, t0: float, t1: float, n_frames: int) -> tuple[int, int]:
        """``[i0, i1)``: the frames of a sequence of ``n_frames`` whose centers fall in ``[t0, t1)`` seconds.

        A clip-level axis returns every frame.
        """
        if self.clip_level:
            return 0, n_frames
        i0 = math.ceil((t0 - self.frame0_center) / self.hop - EPS_FRAMES)
        i1 = math.ceil((t1 - self.frame0_center) / self.hop - EPS_FRAMES)
        i0 = min(max(i0, 0), n_frames)
        return i0, min(max(i1, i0), n_frames)

    def shift_frames(self, seconds: float) -> int:
        """Whole frames in a shift of ``seconds`` (a crop start on the hop grid; 0 for clip level)."""
        return 0 if self.clip_level else int(round(seconds / self.hop))
