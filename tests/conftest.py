"""Shared, generic test fixtures (keep small: one helper per need)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import yaml


@pytest.fixture
def sine() -> Callable[..., np.ndarray]:
    """``sine(freq, seconds, sample_rate, amplitude=0.5, channels=1)`` -> float32 waveform.

    Mono gives ``(samples,)``, more channels ``(samples, channels)`` (the same tone in each).
    """

    def make(
        freq: float, seconds: float, sample_rate: int, amplitude: float = 0.5, channels: int = 1
    ) -> np.ndarray:
        t = np.arange(int(round(seconds * sample_rate))) / sample_rate
        tone = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
        return tone if channels == 1 else np.repeat(tone[:, None], channels, axis=1)

    return make


@pytest.fixture
def params_file(tmp_path: Path) -> Callable[..., Path]:
    """``params_file(section={...}, ...)`` writes a params.yaml in tmp_path and returns its path.

    Only the given sections are written; everything else takes the dataclass defaults.
    """

    def write(**sections: Any) -> Path:
        path = tmp_path / "params.yaml"
        path.write_text(yaml.safe_dump(sections, sort_keys=False))
        return path

    return write
