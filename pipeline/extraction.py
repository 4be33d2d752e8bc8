"""Stage-one engine: stream tracks through a teacher into an embedding store.

Windows of many tracks are batched into one forward pass (``batch_seconds`` of audio
per batch), long files are decoded block by block (a window never needs more than one
block plus the window's own context in memory), and a track is written to the store
only once all its frames exist, so a store never holds half a track. A file that cannot
be decoded is reported and skipped; the run goes on.
"""
from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from pipeline.errors import AudioError, PipelineError
from pipeline.manifests import Clip
from pipeline.teachers.base import Teacher

log = logging.getLogger(__name__)

#: Decoding block length for long files, seconds.
BLOCK_SECONDS = 60.0


@dataclass
class TrackOutcome:
    """What happened to one track.

    Attributes:
        track_id: the clip id.
        status: ``done``, ``skipped`` (already in the store) or ``failed``.
        audio_seconds: decoded duration (0 when skipped or failed early).
        reason: why it failed (empty otherwise).
        path: the audio file.
    """

    track_id: str
    status: str
    audio_seconds: float = 0.0
    reason: str = ""
    path: str = ""


@dataclass
class _PendingTrack:
    """Frames of one track as its windows come back from the teacher."""

    clip: Clip
    sha256: str
    frames: list[np.ndarray | None] = field(default_factory=list)
    n_windows: int | None = None  # known once the file has been read to its end
    received: int = 0
    n_samples: int = 0
    audio_blocks: list[np.ndarray] = field(default_factory=list)
    failed: str = ""

    @property
    def complete(self) -> bool:
        return self.n_windows is not None and self.received == self.n_windows


def _iter_windows(
    teacher: Teacher, path: Path, pending: _PendingTrack, keep_audio: bool
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(window index, window samples)`` of one file, decoding it block by block.

    Sets ``pending.n_windows`` and ``pending.n_samples`` when the file is exhausted.
    """
    from pipeline.audio import iter_blocks

    grid = teacher.grid
    assert grid is not None
    buffer = np.zeros(0, dtype=np.float32)
    buffer_offset = 0  # track sample index of buffer[0]
    next_window = 0
    total = 0
    for offset, block in iter_blocks(path, sample_rate=teacher.sample_rate, block_seconds=BLOCK_SECONDS):
        if keep_audio:
            pending.audio_blocks.append(block)
        buffer = np.concatenate([buffer, block]) if len(buffer) else block
        total = offset + len(block)
        # Cut every window whose end is already decoded.
        while grid.window_start(next_window) + grid.window <= total:
            yield next_window, grid.cut(buffer, next_window, 1, offset=buffer_offset)[0]
            next_window += 1
        # Drop samples no later window needs.
        keep_from = max(grid.window_start(next_window), 0)
        if keep_from > buffer_offset:
            buffer = buffer[keep_from - buffer_offset :]
            buffer_offset = keep_from
    if total == 0:
        raise AudioError(f"{path}: no audio samples decoded; the file is empty")
    n_windows = grid.num_windows(total)
    while next_window < n_windows:
        yield next_window, grid.cut(buffer, next_window, 1, offset=buffer_offset)[0]
        next_window += 1
    pending.n_windows = n_windows
    pending.n_samples = total


def _read_whole(teacher: Teacher, path: Path) -> np.ndarray:
    """Decode a whole file for a clip-level teacher (bounded by the teacher's own limit)."""
    from pipeline.audio import read_audio

    return read_audio(path, sample_rate=teacher.sample_rate)


def _audio_to_int16(blocks: Sequence[np.ndarray], source_rate: int, target_rate: int) -> np.ndarray:
    """Concatenate float blocks, resample to ``target_rate`` and quantise to int16 (n, 1)."""
    from pipeline.audio import resample

    audio = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    if source_rate != target_rate:
        audio = resample(audio, source_rate, target_rate)
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)[:, None]


def extract_tracks(
    teacher: Teacher,
    clips: Sequence[Clip],
    audio_root: Path,
    writer,  # noqa: ANN001 - a pipeline.stores PartWriter
    *,
    audio_writer=None,  # noqa: ANN001 - PartWriter of the audio cache, or None
    audio_sample_rate: int = 16000,
    batch_seconds: float = 120.0,
    on_track: Callable[[TrackOutcome], None] | None = None,
) -> list[TrackOutcome]:
    """Run ``teacher`` over ``clips`` and add each finished track to ``writer``.

    Args:
        teacher: a loaded teacher.
        clips: tracks to embed (already filtered of those in the store).
        audio_root: folder the clips' relative paths start from.
        writer: the store's part writer (tracks are added whole, committed by the writer).
        audio_writer: part writer of the int16 audio cache, or ``None`` not to cache audio.
        audio_sample_rate: rate of the cached audio, Hz.
        batch_seconds: audio seconds of windows per forward pass.
        on_track: called with each track's outcome as soon as it is known (progress).

    Returns:
        One outcome per clip, in completion order.
    """
    from pipeline.audio import fingerprint

    outcomes: list[TrackOutcome] = []

    def finish(outcome: TrackOutcome) -> None:
        outcomes.append(outcome)
        if on_track is not None:
            on_track(outcome)

    if teacher.grid is None:
        for clip in clips:
            path = clip.resolve(audio_root)
            try:
                teacher.check_clip(int(round(clip.duration * teacher.sample_rate)))  # before decoding
                sha = fingerprint(path)
                audio = _read_whole(teacher, path)
                frames = teacher.embed_windows(audio[None])[0]
            except PipelineError as exc:
                finish(TrackOutcome(clip.id, "failed", reason=str(exc), path=str(path)))
                continue
            seconds = len(audio) / teacher.sample_rate
            writer.add(clip.id, frames, audio_sha256=sha, duration=seconds)
            if audio_writer is not None:
                audio_writer.add(
                    clip.id,
                    _audio_to_int16([audio], teacher.sample_rate, audio_sample_rate),
                    audio_sha256=sha,
                    duration=seconds,
                )
            finish(TrackOutcome(clip.id, "done", seconds, path=str(path)))
        return outcomes

    grid = teacher.grid
    per_batch = max(1, int(round(batch_seconds * grid.sample_rate / grid.window)))
    queue: deque[tuple[_PendingTrack, int, np.ndarray]] = deque()
    open_tracks: list[_PendingTrack] = []

    def run_batch(force: bool) -> None:
        while queue and (force or len(queue) >= per_batch):
            batch = [queue.popleft() for _ in range(min(per_batch, len(queue)))]
            out = teacher.embed_windows(np.stack([w for _, _, w in batch]))
            for (track, index, _), frames in zip(batch, out):
                while len(track.frames) <= index:
                    track.frames.append(None)
                track.frames[index] = frames
                track.received += 1
        flush_complete()

    def flush_complete() -> None:
        for track in [t for t in open_tracks if t.complete]:
            open_tracks.remove(track)
            frames = np.concatenate(track.frames, axis=0)  # (windows * frames_per_window, dim)
            seconds = track.n_samples / teacher.sample_rate
            writer.add(track.clip.id, frames, audio_sha256=track.sha256, duration=seconds)
            if audio_writer is not None:
                audio_writer.add(
                    track.clip.id,
                    _audio_to_int16(track.audio_blocks, teacher.sample_rate, audio_sample_rate),
                    audio_sha256=track.sha256,
                    duration=seconds,
                )
            track.audio_blocks = []
            finish(TrackOutcome(track.clip.id, "done", seconds, path=str(track.clip.audio_path)))

    for clip in clips:
        path = clip.resolve(audio_root)
        try:
            track = _PendingTrack(clip=clip, sha256=fingerprint(path))
            open_tracks.append(track)
            for index, window in _iter_windows(teacher, path, track, audio_writer is not None):
                queue.append((track, index, window))
                if len(queue) >= per_batch:
                    run_batch(force=False)
        except PipelineError as exc:
            log.warning("skipping %s: %s", path, exc)
            if open_tracks and open_tracks[-1].clip.id == clip.id:
                failed = open_tracks.pop()
                # Windows of this track still queued are dropped; batches already run are lost frames.
                kept = [item for item in queue if item[0] is not failed]
                queue.clear()
                queue.extend(kept)
            finish(TrackOutcome(clip.id, "failed", reason=str(exc), path=str(path)))
            continue
        flush_complete()
    run_batch(force=True)
    if open_tracks:  # cannot happen unless a teacher returned too few frames
        raise PipelineError(f"internal error: tracks left incomplete: {[t.clip.id for t in open_tracks]}")
    return outcomes
