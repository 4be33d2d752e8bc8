"""The demo renderer: each class sounds like itself, labels match the audio, seeds decide everything."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from pipeline.datasets.demo import OPENMIC_CLASSES, render_clip, render_instrument, render_mix
from pipeline.datasets.demo_music import VOICES
from pipeline.errors import ConfigError

SR = 16000


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(log energy in 24 log-spaced bands 40 Hz-8 kHz, mean-removed; centroid in Hz; median flatness)."""
    frames = np.lib.stride_tricks.sliding_window_view(x, 1024)[::512] * np.hanning(1024)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    freqs = np.fft.rfftfreq(1024, 1 / SR)
    mean = power.mean(0)
    edges = np.geomspace(40, 8000, 25)
    bands = np.log10([mean[(freqs >= lo) & (freqs < hi)].sum() + 1e-10
                      for lo, hi in zip(edges[:-1], edges[1:])])
    flatness = np.exp(np.mean(np.log(power + 1e-12), axis=1)) / (power.mean(1) + 1e-12)
    active = power.sum(1) > 1e-6 * power.sum(1).max()
    return bands - bands.mean(), float((mean * freqs).sum() / mean.sum()), float(np.median(flatness[active]))


def test_class_table_is_openmic() -> None:
    assert len(OPENMIC_CLASSES) == 20 and list(OPENMIC_CLASSES) == sorted(OPENMIC_CLASSES)
    assert set(VOICES) == set(OPENMIC_CLASSES)
    assert VOICES["drums"].drums and VOICES["cymbals"].drums and not VOICES["violin"].drums


def test_render_instrument_is_deterministic_and_normalised() -> None:
    a = render_instrument("violin", seconds=2.0, sample_rate=SR, seed=5)
    assert a.dtype == np.float32 and a.shape == (2 * SR,)
    np.testing.assert_array_equal(a, render_instrument("violin", seconds=2.0, sample_rate=SR, seed=5))
    assert not np.array_equal(a, render_instrument("violin", seconds=2.0, sample_rate=SR, seed=6))
    assert np.sqrt(np.mean(a.astype(np.float64) ** 2)) == pytest.approx(0.1, rel=0.02)
    assert np.max(np.abs(a)) < 1.0
    with pytest.raises(ConfigError, match="unknown demo class 'kazoo'"):
        render_instrument("kazoo", seconds=1.0, sample_rate=SR, seed=0)


def test_classes_have_clearly_different_spectra() -> None:
    spectra = {c: _spectrum(render_instrument(c, seconds=4.0, sample_rate=SR, seed=0))
               for c in OPENMIC_CLASSES}
    closest = min(
        (float(np.sqrt(np.mean((spectra[a][0] - spectra[b][0]) ** 2))), a, b)
        for a, b in itertools.combinations(OPENMIC_CLASSES, 2)
    )
    assert closest[0] > 0.3, f"{closest[1]} and {closest[2]} have near-identical spectra"
    centroid = {c: np.median([_spectrum(render_instrument(c, seconds=3.0, sample_rate=SR, seed=s))[1]
                              for s in range(3)]) for c in ("bass", "violin", "cymbals")}
    assert centroid["bass"] < 500 < centroid["violin"] < 2500 < centroid["cymbals"]
    assert spectra["cymbals"][2] > 20 * max(spectra[c][2] for c in ("flute", "violin", "organ", "bass"))


def test_each_labelled_stem_is_audible_in_the_mix() -> None:
    classes = ["bass", "drums", "flute", "voice"]
    full = render_mix(classes, seconds=3.0, sample_rate=SR, seed=11)
    assert 0.3 <= np.max(np.abs(full.mix)) <= 0.9
    np.testing.assert_allclose(sum(full.stems.values()), full.mix, atol=1e-5)
    rms = {c: float(np.sqrt(np.mean(s.astype(np.float64) ** 2))) for c, s in full.stems.items()}
    for c in classes:  # every stem within the -10..0 dB mixing range of the loudest one
        assert 20 * np.log10(rms[c] / max(rms.values())) >= -10.01
        assert -10 <= full.gains_db[c] <= 0
    for gone in classes:  # the same clip without one instrument lacks exactly that stem
        rest = render_mix([c for c in classes if c != gone], seconds=3.0, sample_rate=SR, seed=11)
        scale = float(np.dot(full.mix - full.stems[gone], rest.mix) / np.dot(rest.mix, rest.mix))
        residual = full.mix - scale * rest.mix
        np.testing.assert_allclose(residual, full.stems[gone], atol=1e-4)
        assert np.mean(residual.astype(np.float64) ** 2) > 0.01 * np.mean(full.mix.astype(np.float64) ** 2)


def test_render_clip_is_the_mix_and_deterministic() -> None:
    a = render_clip(["piano", "trumpet"], seconds=1.5, sample_rate=8000, seed=3)
    mix = render_mix(["piano", "trumpet"], seconds=1.5, sample_rate=8000, seed=3).mix
    np.testing.assert_array_equal(a, mix)
    assert a.shape == (12000,) and a.dtype == np.float32
    assert not np.array_equal(a, render_clip(["piano", "trumpet"], seconds=1.5, sample_rate=8000, seed=4))
    with pytest.raises(ValueError, match="distinct"):
        render_mix(["piano", "piano"], seconds=1.0, sample_rate=8000, seed=0)
