"""Resampling keeps a sine's frequency and level, and streaming blocks join seamlessly."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline import audio


def _peak_hz(x: np.ndarray, sr: int) -> float:
    """Spectral peak, refined by parabolic interpolation of the log magnitude."""
    mag = np.log(np.abs(np.fft.rfft(x * np.hanning(len(x)))) + 1e-12)
    k = int(np.argmax(mag))
    a, b, c = mag[k - 1], mag[k], mag[k + 1]
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / len(x)


def _rms_db(x: np.ndarray) -> float:
    return 20 * np.log10(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("orig, target", [(44100, 16000), (48000, 32000), (16000, 48000), (192000, 16000)])
def test_sine_keeps_frequency_and_level(sine, orig: int, target: int) -> None:
    freq = 1234.5
    x = sine(freq, 2.0, orig, amplitude=0.5)
    y = audio.resample(x, orig, target)
    assert y.dtype == np.float32
    assert len(y) == round(len(x) * target / orig)
    core = y[len(y) // 10: -len(y) // 10]  # away from the edges
    assert _peak_hz(core, target) == pytest.approx(freq, abs=0.5)
    assert abs(_rms_db(core) - _rms_db(x)) < 0.1


def test_192k_file_read_at_16k(tmp_path: Path, sine) -> None:
    path = tmp_path / "hires.flac"
    sf.write(path, sine(3000, 1.0, 192000, amplitude=0.4), 192000, subtype="PCM_24")
    y = audio.read_audio(path, sample_rate=16000)
    assert len(y) == 16000
    core = y[1600:-1600]
    assert _peak_hz(core, 16000) == pytest.approx(3000, abs=0.5)
    assert abs(_rms_db(core) - 20 * np.log10(0.4 / np.sqrt(2))) < 0.1


def test_content_above_the_new_nyquist_is_removed(sine) -> None:
    y = audio.resample(sine(10000, 1.0, 44100), 44100, 16000)  # 10 kHz > 8 kHz Nyquist
    assert _rms_db(y[1600:-1600]) < -80


@pytest.mark.parametrize("orig", [44100, 16000])
def test_blocks_concatenate_to_the_one_shot_read(tmp_path: Path, sine, orig: int) -> None:
    path = tmp_path / "music.wav"
    rng = np.random.default_rng(0)
    x = (sine(440, 3.3, orig) + 0.05 * rng.standard_normal(int(3.3 * orig))).astype(np.float32)
    sf.write(path, x, orig, subtype="FLOAT")
    whole = audio.read_audio(path, sample_rate=16000)
    blocks = list(audio.iter_blocks(path, sample_rate=16000, block_seconds=0.7))
    offsets = [o for o, _ in blocks]
    assert offsets == [i * 11200 for i in range(len(blocks))]
    joined = np.concatenate([b for _, b in blocks])
    assert len(joined) == len(whole)
    np.testing.assert_allclose(joined, whole, atol=1e-5)  # no clicks or gaps at block seams
