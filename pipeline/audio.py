"""Audio I/O: the only module of the pipeline that opens audio files.

Everything goes through :mod:`soundfile` (libsndfile: WAV, FLAC, OGG/Vorbis/Opus, MP3 and
more) and resampling through :mod:`soxr`. Audio handed to the rest of the pipeline is always
float32 mono in ``[-1, 1]`` (multi-channel files are mixed down by the channel mean).

Problems with a file (missing, unreadable, truncated, empty, too short, non-finite samples,
an absurd sample rate, more than :data:`MAX_CHANNELS` channels) raise one
:class:`~pipeline.errors.AudioError` that names the file, the problem and what to do.
Files with up to :data:`MAX_CHANNELS` channels (e.g. 5.1 surround, 6 channels) are mixed
down; more channels are taken to be a mistake (a multitrack recording, a raw sensor dump).

Reading a time window seeks to it (``sf.SoundFile.seek``), so only the window is decoded;
:func:`iter_blocks` streams a long file block by block with a stateful resampler.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from pipeline.errors import AudioError

#: More channels than this are an error; up to this many are mixed down to mono.
MAX_CHANNELS = 8
#: Sample rates outside this range (Hz) are taken to be a corrupt header.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
#: soxr quality used everywhere ("HQ": 20-bit, flat to ~0.91 of Nyquist, linear phase).
SOXR_QUALITY = "HQ"

_SF_ERRORS = (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError)

#: libsndfile format and subtype written for each file suffix.
_WRITE_FORMATS: dict[str, tuple[str, str]] = {
    ".flac": ("FLAC", "PCM_16"),
    ".wav": ("WAV", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
    ".mp3": ("MP3", "MPEG_LAYER_III"),
}


@dataclass(frozen=True)
class AudioInfo:
    """What an audio file's header says.

    Attributes:
        path: the file.
        sample_rate: native sample rate in Hz.
        frames: samples per channel.
        channels: channel count.
        duration: ``frames / sample_rate`` in seconds.
        format: libsndfile container name (``WAV``, ``FLAC``, ``OGG``, ``MP3``, ...).
    """

    path: Path
    sample_rate: int
    frames: int
    channels: int
    duration: float
    format: str


def _fail(path: Path | str, problem: str, advice: str) -> AudioError:
    return AudioError(f"audio file {str(path)!r}: {problem}; {advice}")


def _check_header(path: Path, sample_rate: int, frames: int, channels: int) -> None:
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise _fail(
            path,
            f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz",
            "the header is probably corrupt: re-encode the file (e.g. `ffmpeg -i IN -ar 44100 OUT.flac`)",
        )
    if channels < 1 or channels > MAX_CHANNELS:
        raise _fail(
            path,
            f"{channels} channels (at most {MAX_CHANNELS} are mixed down)",
            "mix it down or pick the channels you want before use (e.g. `ffmpeg -i IN -ac 1 OUT.flac`)",
        )
    if frames <= 0:
        raise _fail(path, "the file holds no audio (0 frames)", "re-export it or remove it from the dataset")


def audio_info(path: Path | str) -> AudioInfo:
    """Read a file's header only (no decoding).

    Args:
        path: an audio file libsndfile can read.

    Returns:
        The header as an :class:`AudioInfo`.

    Raises:
        AudioError: the file is missing, unreadable, empty, has an absurd sample rate or
            more than :data:`MAX_CHANNELS` channels.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file", "check the audio root and the manifest's relative paths")
    try:
        info = sf.info(str(path))
    except _SF_ERRORS as exc:
        raise _fail(path, f"not a readable audio file ({_short(exc)})",
                    "check that it is WAV/FLAC/OGG/MP3 and not truncated; re-encode it if needed") from None
    _check_header(path, int(info.samplerate), int(info.frames), int(info.channels))
    return AudioInfo(
        path=path,
        sample_rate=int(info.samplerate),
        frames=int(info.frames),
        channels=int(info.channels),
        duration=float(info.frames) / float(info.samplerate),
        format=str(info.format),
    )


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _to_mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) float32 by the channel mean."""
    if block.ndim == 1:
        return block.astype(np.float32, copy=False)
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    return block.mean(axis=1, dtype=np.float64).astype(np.float32)


def _check_finite(path: Path, audio: np.ndarray) -> None:
    if not np.isfinite(audio).all():
        bad = int(np.count_nonzero(~np.isfinite(audio)))
        raise _fail(path, f"{bad} non-finite sample(s) (NaN or inf)",
                    "the file is corrupt or was written from a broken signal; re-export it")


def resample(audio: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample with soxr (HQ, linear phase).

    Args:
        audio: ``(samples,)`` or ``(samples, channels)`` waveform.
        orig_sr: its sample rate in Hz.
        target_sr: the wanted rate in Hz.

    Returns:
        float32 array of ``round(samples * target_sr / orig_sr)`` samples (same channel layout).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if int(orig_sr) <= 0 or int(target_sr) <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
    if int(orig_sr) == int(target_sr) or audio.shape[0] == 0:
        return audio.copy()
    out = soxr.resample(audio, int(orig_sr), int(target_sr), quality=SOXR_QUALITY)
    return np.asarray(out, dtype=np.float32)


def read_audio(
    path: Path | str,
    *,
    sample_rate: int | None = None,
    start: float = 0.0,
    duration: float | None = None,
    min_duration: float = 0.0,
) -> np.ndarray:
    """Read (a window of) a file as float32 mono, resampled.

    Only the window ``[start, start + duration)`` is decoded: the file is opened with
    :class:`soundfile.SoundFile`, seeked to ``start`` and exactly the window's frames are read.
    A window reaching past the end of the file is cut at the end.

    Args:
        path: the audio file.
        sample_rate: output rate in Hz; ``None`` keeps the file's rate.
        start: window start in seconds.
        duration: window length in seconds; ``None`` reads to the end.
        min_duration: the returned audio must be at least this long (seconds).

    Returns:
        ``(samples,)`` float32 mono waveform at ``sample_rate``.

    Raises:
        AudioError: unreadable/truncated file, empty result, window starting past the end,
            non-finite samples, or audio shorter than ``min_duration``.
    """
    info = audio_info(path)
    path = info.path
    if start < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"bad window start={start!r} duration={duration!r} for {path}")
    first = int(round(start * info.sample_rate))
    if first >= info.frames:
        raise _fail(path, f"window start {start:.3f} s is past the end ({info.duration:.3f} s)",
                    "check the manifest's duration or the requested offset")
    wanted = info.frames - first
    if duration is not None:
        wanted = min(wanted, max(1, int(round(duration * info.sample_rate))))
    try:
        with sf.SoundFile(str(path)) as handle:
            if first:
                handle.seek(first)
            block = handle.read(frames=wanted, dtype="float32", always_2d=True)
    except _SF_ERRORS as exc:
        raise _fail(path, f"decoding failed ({_short(exc)})",
                    "the file is probably truncated or corrupt; re-encode or remove it") from None
    if block.shape[0] < wanted:
        raise _fail(path, f"got {block.shape[0]} of {wanted} frames from offset {first}",
                    "the file is truncated (the header promises more audio than it holds); "
                    "re-encode or remove it")
    audio = _to_mono(block)
    _check_finite(path, audio)
    if sample_rate is not None and int(sample_rate) != info.sample_rate:
        audio = resample(audio, info.sample_rate, int(sample_rate))
    out_sr = int(sample_rate) if sample_rate is not None else info.sample_rate
    if audio.shape[0] == 0:
        raise _fail(path, "the window holds no audio", "check start/duration")
    if audio.shape[0] / out_sr < min_duration - 1e-9:
        raise _fail(path, f"audio is {audio.shape[0] / out_sr:.3f} s long, shorter than the required "
                    f"{min_duration:.3f} s", "drop the clip from the manifest or lower the crop length")
    return audio


def iter_blocks(
    path: Path | str, *, sample_rate: int, block_seconds: float
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream a file as consecutive mono blocks at ``sample_rate``.

    The file is read block by block and resampled with a stateful
    :class:`soxr.ResampleStream`, so blocks join seamlessly (their concatenation equals
    resampling the whole file, up to float rounding) and the whole file is never held.

    Args:
        path: the audio file.
        sample_rate: output rate in Hz.
        block_seconds: output block length in seconds (the last block may be shorter).

    Yields:
        ``(offset, block)``: the block's first output sample index and a ``(samples,)``
        float32 block.

    Raises:
        AudioError: as :func:`read_audio` (checked per block).
    """
    info = audio_info(path)
    path = info.path
    if block_seconds <= 0:
        raise ValueError(f"block_seconds must be positive, got {block_seconds!r}")
    out_block = max(1, int(round(block_seconds * sample_rate)))
    in_block = max(1, int(round(block_seconds * info.sample_rate)))
    stream = None
    if info.sample_rate != sample_rate:
        stream = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32", quality=SOXR_QUALITY)
    pending: list[np.ndarray] = []
    pending_len = 0
    offset = 0
    read_total = 0
    try:
        handle = sf.SoundFile(str(path))
    except _SF_ERRORS as exc:
        raise _fail(path, f"not a readable audio file ({_short(exc)})", "re-encode or remove it") from None
    with handle:
        while True:
            try:
                block = handle.read(frames=in_block, dtype="float32", always_2d=True)
            except _SF_ERRORS as exc:
                raise _fail(path, f"decoding failed after {read_total} frames ({_short(exc)})",
                            "the file is probably truncated or corrupt; re-encode or remove it") from None
            read_total += block.shape[0]
            last = block.shape[0] < in_block or read_total >= info.frames
            mono = _to_mono(block)
            _check_finite(path, mono)
            out = stream.resample_chunk(mono, last=last) if stream is not None else mono
            if out.shape[0]:
                pending.append(np.asarray(out, dtype=np.float32))
                pending_len += out.shape[0]
            while pending_len >= out_block:
                joined = np.concatenate(pending)
                yield offset, joined[:out_block].copy()
                offset += out_block
                rest = joined[out_block:]
                pending, pending_len = ([rest] if rest.shape[0] else []), rest.shape[0]
            if last:
                break
    if read_total < info.frames:
        raise _fail(path, f"got {read_total} of {info.frames} frames",
                    "the file is truncated; re-encode or remove it")
    if pending_len:
        yield offset, np.concatenate(pending)
    elif offset == 0:
        raise _fail(path, "the file holds no audio", "re-export it or remove it from the dataset")


def write_audio(path: Path | str, audio: np.ndarray, sample_rate: int, *, subtype: str | None = None) -> None:
    """Write a mono (or ``(samples, channels)``) waveform; the format follows the suffix.

    ``.flac`` and ``.wav`` are 16-bit PCM unless ``subtype`` says otherwise (e.g. ``"FLOAT"``),
    ``.ogg`` is Vorbis, ``.mp3`` is MPEG layer III. The file is written to a temporary name
    and renamed, so a reader never sees half a file.

    Args:
        path: destination; parent folders are created.
        audio: float waveform in ``[-1, 1]`` (PCM formats clip outside).
        sample_rate: rate in Hz.
        subtype: libsndfile subtype overriding the default for the suffix.

    Raises:
        AudioError: unsupported suffix or a write failure.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _WRITE_FORMATS:
        raise AudioError(f"cannot write {str(path)!r}: unsupported suffix {suffix!r}; "
                         f"use one of {', '.join(_WRITE_FORMATS)}")
    fmt, default_subtype = _WRITE_FORMATS[suffix]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        sf.write(tmp, np.asarray(audio), int(sample_rate), format=fmt, subtype=subtype or default_subtype)
        os.replace(tmp, path)
    except _SF_ERRORS as exc:
        raise AudioError(f"cannot write {str(path)!r}: {_short(exc)}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fingerprint(path: Path | str, *, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file's bytes as lower-case hex (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(chunk_bytes):
                digest.update(chunk)
    except OSError as exc:
        raise AudioError(f"cannot fingerprint {str(path)!r}: {exc.strerror or exc}") from None
    return digest.hexdigest()
