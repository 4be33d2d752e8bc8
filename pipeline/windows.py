"""The sliding-window policy of clip-level scoring, shared by ``predict``, ``evaluate``, exports
and timelines.

A waveform up to the training length ``L`` samples is zero-padded on the right to ``L`` and
scored once. A longer one is scored in windows of ``L`` samples starting at ``0, hop, 2 hop, ...``
(``hop = max(1, int(L * hop_fraction))``) while a window fits, plus one window ending at the last
sample when the regular ones stop short of it; the clip's probabilities are the plain mean of
the windows' probabilities. :mod:`pipeline.export` builds the same windows inside the exported
graph, and the tests hold the two equal.
"""
from __future__ import annotations

import numpy as np

#: hop between window starts, as a fraction of the training length
HOP_FRACTION = 0.5


def hop_samples(length: int, hop_fraction: float = HOP_FRACTION) -> int:
    """Samples between window starts for windows of ``length`` samples (at least 1)."""
    return max(1, int(length * hop_fraction))


def window_starts(n_samples: int, length: int, hop: int) -> np.ndarray:
    """First sample of every scoring window of a waveform.

    Args:
        n_samples: the waveform's length in samples (>= 0).
        length: window length in samples (the training length), > 0.
        hop: samples between regular window starts, > 0.

    Returns:
        int64 (windows,) start samples, increasing: ``[0]`` when ``n_samples <= length``
        (one zero-padded window), else ``0, hop, ...`` plus ``n_samples - length`` when the
        regular windows do not reach the last sample.
    """
    if n_samples <= length:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_samples - length + 1, hop, dtype=np.int64)
    if starts[-1] + length < n_samples:
        starts = np.append(starts, n_samples - length)
    return starts


def cut_windows(audio: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """float32 (windows, length): ``audio[s : s + length]`` per start, zero-padded past the end."""
    padded = np.zeros(max(len(audio), int(starts[-1]) + length), dtype=np.float32)
    padded[: len(audio)] = audio
    return np.stack([padded[s : s + length] for s in starts])
