"""The log-mel front end: Kaldi mel banks, frame count and times, STFT paths, augmentation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.errors import ConfigError
from pipeline.students.frontend import FrontEndConfig, LogMelFrontEnd, kaldi_mel_banks, mel_scale

torch.set_num_threads(1)


def _kaldi_loop(n_mels: int, n_fft: int, sr: float, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi's C++ MelBanks constructor, written as its plain loops (an independent formulation)."""
    lo, hi = 1127.0 * math.log(1 + fmin / 700), 1127.0 * math.log(1 + fmax / 700)
    delta = (hi - lo) / (n_mels + 1)
    out = np.zeros((n_mels, n_fft // 2 + 1))
    for b in range(n_mels):
        left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
        for i in range(n_fft // 2):
            mel = 1127.0 * math.log(1 + i * sr / n_fft / 700)
            if left < mel < right:
                rising = (mel - left) / (center - left)
                out[b, i] = rising if mel <= center else (right - mel) / (right - center)
    return out


@pytest.mark.parametrize("n_mels,sr,fmin,fmax", [(128, 32000, 0.0, 16000.0), (96, 16000, 0.0, 8000.0),
                                                 (64, 16000, 50.0, 7000.0)])
def test_kaldi_mel_banks_match_the_reference_loops(n_mels: int, sr: int, fmin: float, fmax: float) -> None:
    banks = kaldi_mel_banks(n_mels, 1024, sr, fmin, fmax)
    assert banks.shape == (n_mels, 513) and banks.dtype == np.float32
    np.testing.assert_allclose(banks, _kaldi_loop(n_mels, 1024, sr, fmin, fmax), atol=1e-6)
    assert np.all(banks[:, -1] == 0)  # the zero column padded for the Nyquist bin
    assert np.all(banks.max(axis=1) > 0)  # no empty filter at the paper's settings


def test_mel_scale_is_kaldi() -> None:
    assert float(mel_scale(700.0)) == pytest.approx(1127.0 * math.log(2.0))
    # filter centers are equally spaced on that scale: peak of filter b at mel(fmin) + (b+1) d
    banks = kaldi_mel_banks(40, 4096, 16000, 0.0, 8000.0)
    peaks = mel_scale(np.argmax(banks[:, :-1], axis=1) * 16000 / 4096)
    spacing = np.diff(peaks)
    assert spacing.std() < 0.2 * spacing.mean()


def test_mel_band_errors_name_the_band() -> None:
    with pytest.raises(ConfigError, match="fmax=9000"):
        kaldi_mel_banks(96, 1024, 16000, 0.0, 9000.0)
    with pytest.raises(ConfigError, match="win=2048"):
        LogMelFrontEnd(FrontEndConfig(sample_rate=16000, n_mels=96, win=2048))


def test_frame_count_and_centers() -> None:
    front = LogMelFrontEnd(FrontEndConfig(sample_rate=32000, n_mels=128)).eval()
    for n in (320000, 16000, 1000):
        out = front(torch.zeros(2, n))
        assert out.shape == (2, 128, front.num_frames(n))
    assert front.num_frames(320000) == 1000  # the paper's 10-s OpenMIC clip
    # frame m is centered on pre-emphasised sample m*hop, i.e. between input samples m*hop and m*hop+1
    assert front.frame_center_samples(3) == 3 * 320 + 0.5


def test_frame_center_follows_an_impulse() -> None:
    """An impulse at input sample m*hop changes frame m more than any other frame."""
    front = LogMelFrontEnd(FrontEndConfig(sample_rate=16000, n_mels=64, n_fft=512, hop=160, win=400)).eval()
    base = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0)) * 1e-3
    for m in (10, 37, 80):
        x = base.clone()
        x[0, m * 160] += 1.0
        change = (front(x) - front(base)).abs().sum(dim=1)[0]
        assert int(change.argmax()) == m


def test_fft_and_dft_paths_agree() -> None:
    front = LogMelFrontEnd(FrontEndConfig(sample_rate=16000, n_mels=96)).eval()
    x = torch.randn(2, 24000, generator=torch.Generator().manual_seed(1)) * 0.1
    a = front(x)
    front.set_stft("dft")
    b = front(x)
    assert torch.allclose(a, b, atol=2e-4)
    assert "dft" not in "".join(front.state_dict())  # derived tables are never saved


def test_log_and_normalisation_constants() -> None:
    front = LogMelFrontEnd(FrontEndConfig(sample_rate=16000, n_mels=32, n_fft=256, hop=128, win=256)).eval()
    out = front(torch.zeros(1, 4000))
    assert torch.allclose(out, torch.full_like(out, (math.log(1e-5) + 3.7) / 3.1))


def test_specaugment_masks_only_in_training_and_per_example() -> None:
    config = FrontEndConfig(sample_rate=16000, n_mels=96, freqm=48, timem=60)
    front = LogMelFrontEnd(config)
    x = torch.randn(8, 32000, generator=torch.Generator().manual_seed(2)) * 0.1
    masked_value = 3.7 / 3.1  # 0 in the log domain, then normalised
    torch.manual_seed(0)
    train = front.train()(x)
    clean = front.eval()(x)
    hit = torch.isclose(train, torch.full_like(train, masked_value)) & ~torch.isclose(train, clean)
    assert hit.any()
    assert torch.equal(front.eval()(x), clean)  # eval is deterministic, unmasked
    # masks are whole bands/frame ranges and differ between examples
    per_example = hit.flatten(1).sum(1)
    assert len(set(per_example.tolist())) > 1
    changed = ~torch.isclose(train, clean)
    band_rows = changed.all(dim=2)  # fully masked mel bands
    frame_cols = changed.all(dim=1)  # fully masked frames
    assert (changed == (band_rows[:, :, None] | frame_cols[:, None, :])).all()


def test_frequency_range_augmentation_changes_the_banks_in_training() -> None:
    config = FrontEndConfig(sample_rate=32000, n_mels=128, fmin_aug_range=20, fmax_aug_range=2000)
    front = LogMelFrontEnd(config)
    x = torch.randn(1, 32000, generator=torch.Generator().manual_seed(3)) * 0.1
    np.random.seed(0)
    assert not torch.allclose(front.train()(x), front.eval()(x))
