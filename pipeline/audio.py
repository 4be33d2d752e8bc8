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

**One level policy everywhere.** Float PCM files (WAV/AIFF/... ``FLOAT``/``DOUBLE``) may hold
samples beyond +-1; such a file is scaled by ``1 / peak`` of its mono mix (the peak is found by
one pass over the file, cached per process), every other decoded sample is clipped to +-1
(lossy decoders overshoot a little). Whatever reads the audio (teacher, int16 cache, training
crops, predict) therefore sees the same signal. **Notes per file.** A whole-file decode
(:func:`decode_audio`, :class:`AudioBlocks`) returns, with the audio, what the user should know
about the file (``notes``): the level scaling, digital silence, a file too short to
hold music, stereo channels that cancel when mixed down, and an MP3 whose header gets its
length wrong (a VBR file without a Xing/Info header: libsndfile decodes only the length the
first frame's bitrate suggests; :func:`mpeg_stream_seconds` counts the real frames).
"""
from __future__ import annotations

import functools
import glob
import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

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

#: libsndfile subtypes whose samples may lie beyond +-1.
FLOAT_SUBTYPES = frozenset({"FLOAT", "DOUBLE"})
#: A file shorter than this (seconds) is reported as too short to hold music.
MIN_USEFUL_SECONDS = 0.5
#: RMS below this (about -80 dBFS) is reported as (near) silence.
SILENCE_RMS = 1e-4
#: A mono mix this far below the channels' RMS (-15 dB; uncorrelated channels give -3 dB, a
#: phase-inverted channel -oo, or about -19 dB after Vorbis) is reported as cancelling channels.
CANCEL_RATIO = 10 ** (-15 / 20)
#: A header length off from the MPEG frame count by more than this share is reported.
LENGTH_TOLERANCE = 0.02

#: Readable audio suffixes, in the order that breaks ties between files sharing an id.
AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".m4a")

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
        subtype: libsndfile subtype (``PCM_16``, ``FLOAT``, ``VORBIS``, ...).
        header_frames: what the header claims when it claims more than can be decoded (a
            truncated MP3: ``frames`` is then the decodable count); 0 when the header is right.
    """

    path: Path
    sample_rate: int
    frames: int
    channels: int
    duration: float
    format: str
    subtype: str = ""
    header_frames: int = 0

    @property
    def truncated(self) -> bool:
        """True when the file holds less audio than its header says (``frames`` is what decodes)."""
        return self.header_frames > self.frames


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
    frames, header_frames = int(info.frames), 0
    if _is_mpeg(path, str(info.format)):
        stat = path.stat()
        decodable = _truncated_mpeg_frames(str(path), stat.st_size, stat.st_mtime_ns, frames, int(info.samplerate))
        if decodable is not None:
            frames, header_frames = decodable, frames
            if frames <= 0:
                raise _fail(path, f"the header gives {header_frames / info.samplerate:.2f} s but no frame decodes",
                            "the file is truncated or corrupt; re-encode or remove it")
    return AudioInfo(
        path=path,
        sample_rate=int(info.samplerate),
        frames=frames,
        channels=int(info.channels),
        duration=float(frames) / float(info.samplerate),
        format=str(info.format),
        subtype=str(info.subtype),
        header_frames=header_frames,
    )


def _is_mpeg(path: Path, fmt: str) -> bool:
    return "MP" in fmt.upper() or path.suffix.lower() == ".mp3"


@functools.lru_cache(maxsize=4096)
def _truncated_mpeg_frames(path: str, size: int, mtime_ns: int, header_frames: int,  # noqa: ARG001
                           sample_rate: int) -> int | None:
    """The frames that decode from an MP3 whose MPEG frames hold less than its header says, else None.

    A cut file keeps its Xing/Info header's length; counting the MPEG frames (no decoding) finds
    it, and only then is the file decoded once to count the samples it really gives (the decoder's
    delay and a cut last frame make that a little less than the frame count). Cached per file
    version (``size``, ``mtime_ns``), as every reader asks for the header.
    """
    real = mpeg_stream_seconds(path)
    claimed = header_frames / sample_rate
    if real is None or claimed - real <= max(LENGTH_TOLERANCE * claimed, 0.5):
        return None
    decoded = 0
    try:
        with sf.SoundFile(path) as handle:
            while True:
                got = handle.read(frames=READ_BLOCK_FRAMES, dtype="float32", always_2d=True).shape[0]
                decoded += got
                if got < READ_BLOCK_FRAMES:
                    break
    except _SF_ERRORS:
        pass  # what decoded before the error is what the file gives
    return decoded


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


# --- level policy and per-file notes ---------------------------------------------------------------

_GAINS: dict[tuple[str, int, int], tuple[float, float]] = {}
_LOCK = threading.Lock()


def level_gain(info: AudioInfo) -> tuple[float, float]:
    """``(gain, peak)``: the factor every sample of the file is scaled by, and its mono peak.

    Float PCM files whose mono mix peaks above 1 get ``1 / peak`` (one pass over the file,
    cached per process by path, size and modification time); every other file gets 1.
    """
    if info.subtype not in FLOAT_SUBTYPES:
        return 1.0, 0.0
    stat = info.path.stat()
    key = (str(info.path), stat.st_size, stat.st_mtime_ns)
    with _LOCK:
        if key in _GAINS:
            return _GAINS[key]
    peak = 0.0
    try:
        with sf.SoundFile(str(info.path)) as handle:
            for block in handle.blocks(blocksize=1 << 18, dtype="float32", always_2d=True):
                mono = _to_mono(block)
                if mono.size:
                    peak = max(peak, float(np.max(np.abs(mono[np.isfinite(mono)]), initial=0.0)))
    except _SF_ERRORS as exc:
        raise _fail(info.path, f"decoding failed ({_short(exc)})",
                    "the file is probably truncated or corrupt; re-encode or remove it") from None
    result = (1.0 / peak if peak > 1.0 else 1.0, peak)
    with _LOCK:
        _GAINS[key] = result
    return result


def _apply_level(mono: np.ndarray, gain: float) -> np.ndarray:
    if gain != 1.0:
        mono = mono * np.float32(gain)
    return np.clip(mono, -1.0, 1.0, out=mono if mono.flags.writeable else None)


@dataclass
class SignalStats:
    """Running statistics of a decoded file (at its native rate), for the per-file notes."""

    frames: int = 0
    channels: int = 1
    peak: float = 0.0
    mono_energy: float = 0.0
    channel_energy: float = 0.0
    clipped: int = 0
    notes: list[str] = field(default_factory=list)

    def add(self, block: np.ndarray, mono: np.ndarray, gain: float) -> None:
        """Account for one ``(frames, channels)`` block and its mono mix (before level and clipping)."""
        if not len(mono):
            return
        self.frames += len(mono)
        self.channels = block.shape[1] if block.ndim == 2 else 1
        scaled = np.abs(mono) * gain
        self.peak = max(self.peak, float(scaled.max()))
        self.clipped += int(np.count_nonzero(scaled > 1.0))
        self.mono_energy += float(np.square(mono, dtype=np.float64).sum()) * gain * gain
        if self.channels > 1:
            self.channel_energy += float(np.square(block, dtype=np.float64).mean(axis=1).sum()) * gain * gain

    def finish(self, info: AudioInfo, gain: float, peak: float) -> list[str]:
        """The notes for this file: :attr:`notes` (set beforehand), then those of its statistics."""
        notes = list(self.notes)
        rate = info.sample_rate
        if gain != 1.0:
            notes.append(f"float samples peak at {peak:.2f} (beyond +-1): scaled by {gain:.3g} "
                         f"({20 * np.log10(gain):.1f} dB) for every stage")
        elif self.clipped:
            notes.append(f"{self.clipped} decoded sample(s) beyond +-1 were clipped")
        rms = np.sqrt(self.mono_energy / max(self.frames, 1))
        if self.frames and self.frames < MIN_USEFUL_SECONDS * rate:
            notes.append(f"only {self.frames} sample(s) ({self.frames / rate:.3f} s): too short to hold music; "
                         "its embedding and predictions mean little")
        channel_rms = np.sqrt(self.channel_energy / max(self.frames, 1))
        if self.frames and self.peak == 0.0:
            notes.append("digital silence (every sample is 0); its embedding and predictions mean nothing")
        elif self.channels > 1 and channel_rms > SILENCE_RMS and rms < CANCEL_RATIO * channel_rms:
            notes.append(f"its {self.channels} channels cancel when mixed to mono (the mix is "
                         f"{20 * np.log10(max(rms, 1e-12) / channel_rms):.0f} dB below the channels): one is "
                         "probably phase-inverted; fix it or pick one channel (ffmpeg -i IN -af pan=mono|c0=c0 OUT)")
        elif self.frames and rms < SILENCE_RMS:
            notes.append(f"near silence (RMS {20 * np.log10(max(rms, 1e-12)):.0f} dBFS)")
        return notes


def length_note(info: AudioInfo) -> str:
    """A note when an MP3's real frame count disagrees with the length its header gives.

    A truncated file (fewer MPEG frames than the header says) is used for the part that decodes;
    a VBR file without a Xing/Info header is longer than libsndfile can decode.
    """
    if info.truncated:
        usable, claimed = info.duration, info.header_frames / info.sample_rate
        return (f"the file is truncated: {usable:.2f} s of the {claimed:.2f} s its header gives can be decoded, "
                f"and those {usable:.2f} s are used; replace it with a complete copy to use all of it")
    if not _is_mpeg(info.path, info.format):
        return ""
    real = mpeg_stream_seconds(info.path)
    if real is None or abs(real - info.duration) <= max(LENGTH_TOLERANCE * max(real, info.duration), 0.5):
        return ""
    return (f"the header gives {info.duration:.2f} s but the MPEG stream holds {real:.2f} s (a VBR MP3 "
            f"without a Xing/Info header?); only {info.duration:.2f} s can be decoded here: re-encode it "
            "(e.g. `ffmpeg -i IN OUT.flac`) to use all of it")


_MPEG_BITRATES = {  # (version 1?, layer) -> kbit/s by index
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MPEG_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def mpeg_stream_seconds(path: Path | str) -> float | None:
    """Length in seconds of an MPEG layer III stream, counted frame by frame (no decoding).

    Skips an ID3v2 tag and the Xing/Info frame; returns None when the file does not start
    (after the tag) with a layer III frame.
    """
    data = Path(path).read_bytes()
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        pos = 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F))
    samples = 0
    rate = 0
    frames = 0
    while pos + 4 <= len(data):
        b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
        if data[pos] != 0xFF or (b1 & 0xE0) != 0xE0:
            if frames == 0 and pos < 4096:
                pos += 1  # junk before the first frame
                continue
            break
        version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
        bitrate_index, rate_index, padding = b2 >> 4, (b2 >> 2) & 3, (b2 >> 1) & 1
        if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
            break
        v1 = version == 3
        kbps = _MPEG_BITRATES[(v1, 3)][bitrate_index]
        rate = _MPEG_RATES[version][rate_index]
        per_frame = 1152 if v1 else 576
        length = (144 if v1 else 72) * kbps * 1000 // rate + padding
        side = (32 if (b3 >> 6) != 3 else 17) if v1 else ((17 if (b3 >> 6) != 3 else 9))
        tag = data[pos + 4 + side: pos + 8 + side]
        if not (frames == 0 and tag in (b"Xing", b"Info")):
            samples += per_frame
        frames += 1
        pos += max(length, 1)
    return samples / rate if rate and samples else None


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


#: frames decoded per read call: memory follows the audio actually decoded, not the header's claim
READ_BLOCK_FRAMES = 1 << 20


def _read_frames(handle: sf.SoundFile, wanted: int) -> np.ndarray:
    """Up to ``wanted`` frames as float32 ``(n, channels)``, read in bounded blocks.

    A header that claims hours of audio in a 5 KB file would otherwise make libsndfile
    allocate the whole claim at once (found by ``benchmarks/fuzz_inputs.py``: 256 GiB).
    """
    blocks, got = [], 0
    while got < wanted:
        ask = min(READ_BLOCK_FRAMES, wanted - got)
        block = handle.read(frames=ask, dtype="float32", always_2d=True)
        if block.shape[0]:
            blocks.append(block)
            got += block.shape[0]
        if block.shape[0] < ask:
            break
    if len(blocks) == 1:
        return blocks[0]
    return np.concatenate(blocks) if blocks else np.zeros((0, handle.channels), dtype=np.float32)


def _window(info: AudioInfo, start: float, duration: float | None) -> tuple[int, int]:
    """``(first, count)``: the first frame of the window ``[start, start + duration)`` seconds and
    its frame count, cut at the end of the file (``duration=None``: to the end).

    Raises:
        ValueError: ``start`` is negative or ``duration`` is not positive.
        AudioError: the window starts past the end of the file.
    """
    if start < 0 or (duration is not None and duration <= 0):
        raise ValueError(f"bad window start={start!r} duration={duration!r} for {info.path}")
    first = int(round(start * info.sample_rate))
    if first >= info.frames:
        raise _fail(info.path, f"window start {start:.3f} s is past the end ({info.duration:.3f} s)",
                    "check the manifest's duration or the requested offset")
    wanted = info.frames - first
    if duration is not None:
        wanted = min(wanted, max(1, int(round(duration * info.sample_rate))))
    return first, wanted


def _read_window(info: AudioInfo, first: int, count: int) -> np.ndarray:
    """Frames ``first .. first + count`` of the file as float32 ``(count, channels)``, as decoded.

    Raises:
        AudioError: decoding fails, or the file ends before ``first + count``.
    """
    try:
        with sf.SoundFile(str(info.path)) as handle:
            if first:
                handle.seek(first)
            block = _read_frames(handle, count)
    except _SF_ERRORS as exc:
        raise _fail(info.path, f"decoding failed ({_short(exc)})",
                    "the file is probably truncated or corrupt; re-encode or remove it") from None
    if block.shape[0] < count:
        raise _fail(info.path, f"got {block.shape[0]} of {count} frames from offset {first}",
                    "the file is truncated (the header promises more audio than it holds); "
                    "re-encode or remove it")
    return block


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
    return _decode(path, sample_rate=sample_rate, start=start, duration=duration, min_duration=min_duration,
                   with_notes=False).samples


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded file and what its decoding found worth a warning.

    Attributes:
        samples: ``(n,)`` float32 mono waveform in ``[-1, 1]`` at ``sample_rate``.
        sample_rate: rate of ``samples`` in Hz.
        notes: one line per thing the user should know about the file (level scaling, digital
            silence, too short, cancelling channels, an MP3 header that gets the length wrong);
            empty when there is nothing to say.
    """

    samples: np.ndarray
    sample_rate: int
    notes: tuple[str, ...] = ()


def decode_audio(path: Path | str, *, sample_rate: int | None = None, min_duration: float = 0.0) -> DecodedAudio:
    """Read a whole file as float32 mono, resampled, with its notes.

    The samples are those of ``read_audio(path, sample_rate=sample_rate, min_duration=min_duration)``.

    Args:
        path: the audio file.
        sample_rate: output rate in Hz; ``None`` keeps the file's rate.
        min_duration: the audio must be at least this long (seconds).

    Raises:
        AudioError: as :func:`read_audio`.
    """
    return _decode(path, sample_rate=sample_rate, start=0.0, duration=None, min_duration=min_duration,
                   with_notes=True)


def _decode(path: Path | str, *, sample_rate: int | None, start: float, duration: float | None,
            min_duration: float, with_notes: bool) -> DecodedAudio:
    """:func:`read_audio`'s work; notes only for a whole file (``start`` 0, no ``duration``) and ``with_notes``."""
    info = audio_info(path)
    path = info.path
    first, wanted = _window(info, start, duration)
    gain, peak = level_gain(info)
    block = _read_window(info, first, wanted)
    audio = _to_mono(block)
    _check_finite(path, audio)
    notes: tuple[str, ...] = ()
    if with_notes and first == 0 and duration is None:  # a whole file: note what the user should know
        stats = SignalStats()
        stats.add(block, audio, gain)
        notes = _file_notes(info, stats, gain, peak)
    audio = _apply_level(audio, gain)
    if sample_rate is not None and int(sample_rate) != info.sample_rate:
        audio = resample(audio, info.sample_rate, int(sample_rate))
    out_sr = int(sample_rate) if sample_rate is not None else info.sample_rate
    if audio.shape[0] == 0:
        raise _fail(path, "the window holds no audio", "check start/duration")
    if audio.shape[0] / out_sr < min_duration - 1e-9:
        raise _fail(path, f"audio is {audio.shape[0] / out_sr:.3f} s long, shorter than the required "
                    f"{min_duration:.3f} s", "drop the clip from the manifest or lower the crop length")
    return DecodedAudio(audio, out_sr, notes)


def _file_notes(info: AudioInfo, stats: SignalStats, gain: float, peak: float) -> tuple[str, ...]:
    """The notes of a whole decoded file: its length note (:func:`length_note`), then its statistics'."""
    note = length_note(info)
    stats.notes = [note] if note else []
    return tuple(stats.finish(info, gain, peak))


def _level_chunks(
    info: AudioInfo, sample_rate: int, in_block: int, gain: float, stats: SignalStats
) -> Iterator[np.ndarray]:
    """The whole file as float32 mono chunks at ``sample_rate`` (non-empty, of any length).

    The file is decoded ``in_block`` frames at a time, mixed to mono, scaled by ``gain`` and
    clipped to +-1, and resampled by one stateful :class:`soxr.ResampleStream`. Each decoded
    block is added to ``stats`` before its level is applied.

    Raises:
        AudioError: the file cannot be opened or decoded, holds non-finite samples, or gives
            fewer frames than its header says.
    """
    path = info.path
    stream = None
    if info.sample_rate != sample_rate:
        stream = soxr.ResampleStream(info.sample_rate, sample_rate, 1, dtype="float32", quality=SOXR_QUALITY)
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
            stats.add(block, mono, gain)
            mono = _apply_level(mono, gain)
            out = stream.resample_chunk(mono, last=last) if stream is not None else mono
            if out.shape[0]:
                yield np.asarray(out, dtype=np.float32)
            if last:
                break
    if read_total < info.frames:
        raise _fail(path, f"got {read_total} of {info.frames} frames",
                    "the file is truncated; re-encode or remove it")


class AudioBlocks:
    """A file streamed as consecutive mono blocks at ``sample_rate``, and its notes.

    Iterating decodes the file block by block and resamples it with a stateful
    :class:`soxr.ResampleStream`, so blocks join seamlessly (their concatenation equals
    resampling the whole file, up to float rounding) and the whole file is never held.
    Once the iteration has reached the end of the file, :attr:`notes` holds what the decoding
    found worth a warning (as :attr:`DecodedAudio.notes`).

    Args:
        path: the audio file.
        sample_rate: output rate in Hz.
        block_seconds: output block length in seconds (the last block may be shorter).

    Iterating yields ``(offset, block)``: the block's first output sample index and a
    ``(samples,)`` float32 block; it raises :class:`~pipeline.errors.AudioError` as
    :func:`read_audio` (checked per block), and ``ValueError`` for ``block_seconds <= 0``.
    """

    def __init__(self, path: Path | str, *, sample_rate: int, block_seconds: float) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.block_seconds = block_seconds
        self.notes: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        info = audio_info(self.path)
        path, sample_rate, block_seconds = info.path, self.sample_rate, self.block_seconds
        if block_seconds <= 0:
            raise ValueError(f"block_seconds must be positive, got {block_seconds!r}")
        out_block = max(1, int(round(block_seconds * sample_rate)))
        in_block = max(1, int(round(block_seconds * info.sample_rate)))
        pending: list[np.ndarray] = []
        pending_len = 0
        offset = 0
        gain, peak = level_gain(info)
        stats = SignalStats()
        for chunk in _level_chunks(info, sample_rate, in_block, gain, stats):
            pending.append(chunk)
            pending_len += chunk.shape[0]
            while pending_len >= out_block:
                joined = np.concatenate(pending)
                yield offset, joined[:out_block].copy()
                offset += out_block
                rest = joined[out_block:]
                pending, pending_len = ([rest] if rest.shape[0] else []), rest.shape[0]
        self.notes = _file_notes(info, stats, gain, peak)
        if pending_len:
            yield offset, np.concatenate(pending)
        elif offset == 0:
            raise _fail(path, "the file holds no audio", "re-export it or remove it from the dataset")


def iter_blocks(
    path: Path | str, *, sample_rate: int, block_seconds: float
) -> Iterator[tuple[int, np.ndarray]]:
    """Stream a file as consecutive mono blocks at ``sample_rate`` (:class:`AudioBlocks` without its notes).

    Args:
        path: the audio file.
        sample_rate: output rate in Hz.
        block_seconds: output block length in seconds (the last block may be shorter).

    Returns:
        An iterator of ``(offset, block)``: the block's first output sample index and a
        ``(samples,)`` float32 block; it decodes only as it is advanced.

    Raises:
        AudioError: as :func:`read_audio` (checked per block), while iterating.
    """
    return iter(AudioBlocks(path, sample_rate=sample_rate, block_seconds=block_seconds))


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
        _write_blocks(tmp, np.asarray(audio), int(sample_rate), fmt, subtype or default_subtype)
        os.replace(tmp, path)
    except _SF_ERRORS as exc:
        raise AudioError(f"cannot write {str(path)!r}: {_short(exc)}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


_WRITE_BLOCK_SECONDS = 10.0


def _write_blocks(path: str, audio: np.ndarray, sample_rate: int, fmt: str, subtype: str) -> None:
    """Write ``audio`` in blocks of 10 s: libsndfile 1.2's Vorbis encoder crashes (SIGSEGV) when
    handed minutes of audio in one call, so no encoder ever sees more than one block."""
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    step = max(1, int(_WRITE_BLOCK_SECONDS * sample_rate))
    with sf.SoundFile(path, "w", samplerate=sample_rate, channels=channels, format=fmt, subtype=subtype) as out:
        for start in range(0, len(audio), step):
            out.write(audio[start:start + step])


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


def find_audio(arguments: Sequence[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """The audio files that command-line ``arguments`` name, and the arguments that name none.

    An argument is a file (used whatever its suffix), a folder (its files with an
    :data:`AUDIO_SUFFIXES` suffix, recursively, sorted) or a glob pattern (``**`` recursive; each
    match as a file or folder). Nothing is opened here: undecodable files are found by the reader.

    Returns:
        ``(files, unusable)``: the files in argument order without repeats, and ``(path, reason)``
        for each path that cannot be used (no such file, a dangling symbolic link, a pattern or
        folder without audio).
    """
    files: dict[Path, None] = {}
    unusable: list[tuple[str, str]] = []
    for argument in arguments:
        if not os.path.lexists(argument) and any(c in argument for c in "*?["):
            matches = sorted(glob.glob(argument, recursive=True))
            if not matches:
                unusable.append((argument, "no file matches this pattern"))
            for match in matches:
                _classify(Path(match), files, unusable)
        else:
            _classify(Path(argument), files, unusable)
    return list(files), unusable


def _classify(path: Path, files: dict[Path, None], unusable: list[tuple[str, str]]) -> None:
    """Add ``path`` (a file, or a folder's audio files) to ``files``, or say why it cannot be used."""
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and not p.is_dir())
        usable = [p for p in found if p.exists()]
        for link in (p for p in found if not p.exists()):
            unusable.append((str(link), f"dangling symbolic link to {os.readlink(link)}"))
        if not found:
            unusable.append((str(path), f"no audio files ({', '.join(AUDIO_SUFFIXES)}) below this folder"))
        files.update(dict.fromkeys(usable))
    elif path.exists():
        files[path] = None
    elif path.is_symlink():
        unusable.append((str(path), f"dangling symbolic link to {os.readlink(path)}"))
    else:
        unusable.append((str(path), "no such file or folder"))
