"""pipeline.audio: formats, mixdown, windows, streaming and every error case."""
from __future__ import annotations

import hashlib
import itertools
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipeline import audio
from pipeline.errors import AudioError


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace soundfile.SoundFile by a subclass recording the frames of every read()."""
    reads: list[int] = []

    class CountingSoundFile(sf.SoundFile):
        def read(self, frames: int = -1, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            out = super().read(frames, *args, **kwargs)
            reads.append(len(out))
            return out

    monkeypatch.setattr(audio.sf, "SoundFile", CountingSoundFile)
    return reads


def _peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


@pytest.mark.parametrize("suffix", [".wav", ".flac", ".ogg", ".mp3"])
def test_formats_read_back_as_float32_mono(tmp_path: Path, sine, suffix: str) -> None:
    path = tmp_path / f"tone{suffix}"
    audio.write_audio(path, sine(440, 2.0, 16000, channels=2), 16000)
    info = audio.audio_info(path)
    assert (info.sample_rate, info.channels) == (16000, 2)
    assert info.format == {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".mp3": "MP3"}[suffix]
    assert info.duration == pytest.approx(2.0, abs=0.06)  # mp3 may pad a frame
    x = audio.read_audio(path)
    assert x.dtype == np.float32 and x.ndim == 1
    assert _peak_hz(x, 16000) == pytest.approx(440, abs=2)
    assert np.sqrt(np.mean(x[2000:-2000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_eight_bit_wav_is_scaled_to_unit_range(tmp_path: Path, sine) -> None:
    tone = sine(200, 0.5, 8000, amplitude=0.75)
    sf.write(tmp_path / "u8.wav", tone, 8000, subtype="PCM_U8")
    x = audio.read_audio(tmp_path / "u8.wav")
    assert np.max(np.abs(x - tone)) <= 1.5 / 128  # 8-bit quantisation, not 0..255 offsets
    assert np.max(x) == pytest.approx(0.75, abs=1 / 64)


def test_six_channels_mix_down_to_the_channel_mean(tmp_path: Path) -> None:
    frames = np.arange(800, dtype=np.float32)[:, None] / 1000.0 * np.linspace(-1, 1, 6, dtype=np.float32)
    frames += np.float32(0.1)  # channel mean is 0.1 everywhere
    sf.write(tmp_path / "surround.wav", frames, 8000, subtype="FLOAT")
    x = audio.read_audio(tmp_path / "surround.wav")
    np.testing.assert_allclose(x, 0.1, atol=1e-6)


def test_more_than_eight_channels_is_an_error(tmp_path: Path) -> None:
    sf.write(tmp_path / "many.wav", np.zeros((100, 9), np.float32), 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"many\.wav.*9 channels"):
        audio.read_audio(tmp_path / "many.wav")


def test_nan_samples_are_an_error(tmp_path: Path, sine) -> None:
    tone = sine(100, 0.2, 8000)
    tone[50] = np.nan
    tone[60] = np.inf
    sf.write(tmp_path / "nan.wav", tone, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav.*2 non-finite"):
        audio.read_audio(tmp_path / "nan.wav")
    with pytest.raises(AudioError, match="non-finite"):
        list(audio.iter_blocks(tmp_path / "nan.wav", sample_rate=8000, block_seconds=0.1))


def test_truncated_flac_is_an_error_naming_the_file(tmp_path: Path, sine) -> None:
    good = tmp_path / "good.flac"
    audio.write_audio(good, sine(300, 3.0, 16000), 16000)
    cut = tmp_path / "cut.flac"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"cut\.flac.*(truncated|corrupt)"):
        audio.read_audio(cut)
    with pytest.raises(AudioError, match=r"cut\.flac"):
        audio.read_audio(cut, start=2.5, duration=0.4)
    with pytest.raises(AudioError, match=r"cut\.flac"):
        list(audio.iter_blocks(cut, sample_rate=16000, block_seconds=0.5))


def test_zero_byte_and_zero_frame_files_are_errors(tmp_path: Path) -> None:
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"zero\.wav.*not a readable audio file"):
        audio.audio_info(tmp_path / "zero.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    with pytest.raises(AudioError, match=r"empty\.wav.*no audio"):
        audio.read_audio(tmp_path / "empty.wav")


def test_missing_file_and_absurd_sample_rate(tmp_path: Path, sine) -> None:
    with pytest.raises(AudioError, match=r"nope\.wav.*no such file"):
        audio.read_audio(tmp_path / "nope.wav")
    path = tmp_path / "rate.wav"
    sf.write(path, sine(100, 0.1, 8000), 8000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    assert raw[24:28] == struct.pack("<I", 8000)
    raw[24:28] = struct.pack("<I", 50_000_000)  # header claims 50 MHz
    path.write_bytes(bytes(raw))
    with pytest.raises(AudioError, match=r"rate\.wav.*sample rate 50000000 Hz"):
        audio.audio_info(path)


def test_window_reads_only_the_window(tmp_path: Path, sine, counting: list[int]) -> None:
    path = tmp_path / "long.flac"
    tone = sine(250, 10.0, 8000)
    tone[8000 * 6: 8000 * 7] *= 0.2  # a quieter sixth second to locate the window
    audio.write_audio(path, tone, 8000)
    x = audio.read_audio(path, start=6.0, duration=1.0)
    assert sum(counting) == len(x) == 8000
    np.testing.assert_allclose(x, tone[48000:56000], atol=2 / 32768)
    tail = audio.read_audio(path, start=9.5, duration=2.0)  # cut at the end
    assert len(tail) == 4000
    with pytest.raises(AudioError, match="past the end"):
        audio.read_audio(path, start=12.0, duration=1.0)
    with pytest.raises(AudioError, match=r"long\.flac.*shorter than the required 1\.000 s"):
        audio.read_audio(path, start=9.5, min_duration=1.0)


def test_hour_long_file_window_without_decoding_the_rest(tmp_path: Path, counting: list[int]) -> None:
    """A sparse one-hour 8 kHz 16-bit WAV (57.6 MB, mostly holes); a 2 s window reads 2 s."""
    sr, frames = 8000, 3600 * 8000
    path = tmp_path / "hour.wav"
    header = b"RIFF" + struct.pack("<I", 36 + 2 * frames) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, sr, 2 * sr, 2, 16) + b"data" + struct.pack("<I", 2 * frames)
    marker = (0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * sr) / sr) * 32767).astype("<i2")
    with open(path, "wb") as handle:
        handle.write(header)
        handle.truncate(len(header) + 2 * frames)
        handle.seek(len(header) + 2 * 1800 * sr)  # the marker tone sits at 30:00
        handle.write(marker.tobytes())
    assert audio.audio_info(path).duration == pytest.approx(3600.0)
    x = audio.read_audio(path, start=1800.0, duration=2.0)
    assert sum(counting) == 2 * sr  # only the window was decoded
    assert _peak_hz(x, sr) == pytest.approx(440, abs=1)
    y = audio.read_audio(path, start=1798.0, duration=1.0)
    assert np.max(np.abs(y)) == 0.0  # before the marker: the sparse zeros
    counting.clear()
    first = list(itertools.islice(audio.iter_blocks(path, sample_rate=16000, block_seconds=1.0), 3))
    assert [offset for offset, _ in first] == [0, 16000, 32000]
    assert sum(counting) <= 4 * sr  # streaming: a few blocks read, not the hour


def test_iter_blocks_reads_block_by_block(tmp_path: Path, sine, counting: list[int]) -> None:
    path = tmp_path / "ten.wav"
    audio.write_audio(path, sine(300, 10.0, 22050), 22050)
    blocks = list(audio.iter_blocks(path, sample_rate=16000, block_seconds=2.0))
    assert max(counting) <= 2 * 22050  # never more than one input block in memory
    assert [o for o, _ in blocks] == [0, 32000, 64000, 96000, 128000]
    assert all(len(b) == 32000 for _, b in blocks)


def test_fingerprint_is_sha256_of_the_bytes(tmp_path: Path, sine) -> None:
    path = tmp_path / "f.flac"
    audio.write_audio(path, sine(100, 0.3, 8000), 8000)
    assert audio.fingerprint(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(AudioError, match="cannot fingerprint"):
        audio.fingerprint(tmp_path / "absent.flac")


def test_write_audio_is_atomic_and_checks_the_suffix(tmp_path: Path, sine) -> None:
    with pytest.raises(AudioError, match=r"unsupported suffix '\.xyz'"):
        audio.write_audio(tmp_path / "a.xyz", sine(100, 0.1, 8000), 8000)
    audio.write_audio(tmp_path / "sub" / "a.wav", sine(100, 0.1, 8000), 8000, subtype="FLOAT")
    assert sf.info(tmp_path / "sub" / "a.wav").subtype == "FLOAT"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.wav"]  # no temporary left behind


@pytest.mark.parametrize("suffix", [".ogg", ".flac"])
def test_write_audio_long_stereo_file_in_blocks(tmp_path: Path, sine, suffix: str) -> None:
    """Minutes of stereo audio: libsndfile's Vorbis encoder crashed when handed it in one call."""
    rate = 44100
    mono = sine(440, 95.0, rate).astype(np.float32) * 0.5
    stereo = np.stack([mono, -0.5 * mono], axis=1)
    path = tmp_path / f"long{suffix}"
    audio.write_audio(path, stereo, rate)
    info = sf.info(path)
    assert (info.samplerate, info.channels) == (rate, 2)
    assert abs(info.frames - len(stereo)) <= rate // 10  # Vorbis may pad the last packet
    back, _ = sf.read(path, dtype="float32", frames=rate, start=60 * rate)
    assert np.corrcoef(back[:, 0], stereo[60 * rate:61 * rate, 0])[0, 1] > 0.99
