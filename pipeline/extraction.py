"""Stage-one engine: stream tracks through a teacher into an embedding store.

Three stages run at once, joined by bounded queues, so the teacher never waits for a file
and a file never waits for a store commit:

1. **decoder** threads (one on the CPU, several for a GPU; libsndfile and soxr release the
   GIL) read each file block by block, cut the teacher's windows and append the int16 audio
   cache block by block;
2. the **batcher** (the calling thread) packs windows of many tracks into one fixed-shape
   batch of ``batch_seconds`` of audio (in pinned host memory on CUDA, copied
   asynchronously), runs the teacher, and appends each window's frames to its track;
3. a **track writer** thread adds each finished track to the store's part writer (whose
   commits thus overlap the next batch).

Memory does not grow with file length: a window never needs more than one decoding block
plus its own context, and a track's frames and cached audio go to the store's
:class:`~pipeline.stores.writer.TrackBuffer`, which spools long tracks to disk. A track is
written only once all its frames exist, so a store never holds half a track. A file that
cannot be decoded is reported and skipped; the run goes on.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from pipeline.errors import AudioError, PipelineError
from pipeline.manifests import Clip
from pipeline.teachers.base import Teacher

log = logging.getLogger(__name__)

#: Decoding block length for long files, seconds.
BLOCK_SECONDS = 15.0
#: Window groups the decoder may run ahead of the teacher (each at most one batch).
DECODE_AHEAD = 4
#: Finished tracks waiting for the track writer.
WRITE_AHEAD = 8
#: Decoder threads when the teacher runs on a GPU, at most (and at most the CPU count minus two,
#: for the batcher and the writer): one core decodes and resamples FLAC/OGG/MP3 at only ~600-1,100x
#: real time (benchmarks/results/decode.json), so 10,000 audio-s/s need about ten.
GPU_DECODE_WORKERS = 16


@dataclass
class TrackOutcome:
    """What happened to one track.

    Attributes:
        track_id: the clip id.
        status: ``done``, ``skipped`` (already in the store) or ``failed``.
        audio_seconds: decoded duration (0 when skipped or failed early).
        reason: why it failed (empty otherwise).
        path: the audio file.
        notes: what decoding the file found worth a warning (:attr:`pipeline.audio.DecodedAudio.notes`).
    """

    track_id: str
    status: str
    audio_seconds: float = 0.0
    reason: str = ""
    path: str = ""
    notes: tuple[str, ...] = ()


@dataclass
class _Track:
    """One track in flight: its frame buffer, its audio-cache buffer and how far it got."""

    clip: Clip
    path: Path
    frames: Any  # TrackBuffer of the embedding store
    audio: Any = None  # TrackBuffer of the audio cache, or None
    sha256: str = ""
    n_windows: int | None = None  # known once the file has been read to its end
    frame_limit: int | None = None  # frames the track keeps (centers inside the audio), known at its end
    received: int = 0
    n_samples: int = 0
    failed: bool = False
    notes: tuple[str, ...] = ()  # the decoder's, known once the file has been read to its end

    @property
    def complete(self) -> bool:
        return not self.failed and self.n_windows is not None and self.received == self.n_windows


def _quantise(audio: np.ndarray) -> np.ndarray:
    """float [-1, 1] (n,) -> int16 (n, 1) by ``round(x * 32767)``, clipped."""
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype(np.int16)[:, None]


def _audio_to_int16(blocks: Sequence[np.ndarray], source_rate: int, target_rate: int) -> np.ndarray:
    """Concatenate float blocks, resample to ``target_rate`` and quantise to int16 (n, 1)."""
    from pipeline.audio import resample

    audio = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)
    if source_rate != target_rate:
        audio = resample(audio, source_rate, target_rate)
    return _quantise(audio)


class _CacheStream:
    """Resamples a track's blocks to the cache rate as they come (soxr stream) into its audio buffer."""

    def __init__(self, buffer: Any, source_rate: int, target_rate: int) -> None:
        import soxr

        from pipeline.audio import SOXR_QUALITY

        self.buffer = buffer
        self.stream = None
        if source_rate != target_rate:
            self.stream = soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32", quality=SOXR_QUALITY)

    def add(self, block: np.ndarray, last: bool = False) -> None:
        out = self.stream.resample_chunk(block, last=last) if self.stream is not None else block
        self.buffer.append(_quantise(np.asarray(out, dtype=np.float32)))

    def finish(self) -> None:
        if self.stream is not None:
            self.add(np.zeros(0, dtype=np.float32), last=True)


@dataclass(frozen=True)
class _Span:
    """Windows ``first .. first + count`` of a track, to be cut from ``audio`` (track samples from ``offset``).

    The decoder hands spans, not cut windows: overlapping windows (musicnn's 3 s every 1 s)
    would otherwise travel three times; the batcher cuts them straight into its batch buffer.
    """

    first: int
    count: int
    audio: np.ndarray
    offset: int


class _RenderedBlocks:
    """A rendered track (a view's audio) as one decoded block, with no decoder notes."""

    def __init__(self, audio: np.ndarray) -> None:
        self._blocks = [(0, audio)] if len(audio) else []
        self.notes: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        return iter(self._blocks)


def _iter_spans(
    teacher: Teacher, path: Path, track: _Track, cache: _CacheStream | None, max_windows: int,
    rendered: np.ndarray | None = None,
) -> Iterator[_Span]:
    """Yield the window spans of one file (at most ``max_windows`` each), decoding it block by block.

    Feeds ``cache`` each decoded block. Sets ``track.n_windows``, ``track.n_samples`` and
    ``track.notes`` when the file is exhausted. Memory: one decoding block plus one window of context.
    ``rendered`` (audio at the teacher's rate, e.g. a view's) replaces the file as one block.
    """
    from pipeline.audio import AudioBlocks

    grid = teacher.grid
    assert grid is not None
    buffer = np.zeros(0, dtype=np.float32)
    buffer_offset = 0  # track sample index of buffer[0]
    next_window = 0
    total = 0
    blocks = (AudioBlocks(path, sample_rate=teacher.sample_rate, block_seconds=BLOCK_SECONDS) if rendered is None
              else _RenderedBlocks(rendered))
    for offset, block in blocks:
        if cache is not None:
            cache.add(block)
        buffer = np.concatenate([buffer, block]) if len(buffer) else block
        total = offset + len(block)
        ready = 0  # windows whose end is already decoded
        while grid.window_start(next_window + ready) + grid.window <= total:
            ready += 1
        for lo in range(0, ready, max_windows):
            k = min(max_windows, ready - lo)
            yield _Span(next_window, k, buffer, buffer_offset)
            next_window += k
        keep_from = max(grid.window_start(next_window), 0)  # drop samples no later window needs
        if keep_from > buffer_offset:
            buffer = buffer[keep_from - buffer_offset :]
            buffer_offset = keep_from
    if total == 0:
        raise AudioError(f"{path}: no audio samples decoded; the file is empty")
    track.notes = blocks.notes
    n_windows = grid.num_windows(total)
    track.frame_limit = teacher.num_frames(total)  # set before the last windows are handed on
    while next_window < n_windows:
        k = min(max_windows, n_windows - next_window)
        yield _Span(next_window, k, buffer, buffer_offset)
        next_window += k
    if cache is not None:
        cache.finish()
    track.n_windows = n_windows
    track.n_samples = total


def _sha256(audio: np.ndarray) -> str:
    """sha256 of a rendered track's float32 samples (its provenance in the index)."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes()).hexdigest()


def _cut_into(grid: Any, span: _Span, first: int, count: int, out: np.ndarray) -> None:
    """Write windows ``first .. first + count`` of ``span`` into the rows of ``out`` (zeros outside the audio)."""
    for row in range(count):
        start = grid.window_start(first + row) - span.offset
        lo, hi = max(start, 0), min(start + grid.window, len(span.audio))
        target = out[row]
        if lo - start > 0:
            target[: lo - start] = 0.0
        if hi > lo:
            target[lo - start : hi - start] = span.audio[lo:hi]
        if hi - start < grid.window:
            target[max(hi - start, 0) :] = 0.0


class _Pipeline:
    """The decoder thread, the batcher and the track writer thread of one :func:`extract_tracks` call."""

    def __init__(self, teacher: Teacher, audio_root: Path, writer: Any, audio_writer: Any,
                 audio_sample_rate: int, batch_seconds: float,
                 on_track: Callable[[TrackOutcome], None] | None, decode_workers: int,
                 render: Callable[[str, int], np.ndarray] | None = None) -> None:
        self.teacher = teacher
        self.render = render
        self.audio_root = audio_root
        self.writer = writer
        self.audio_writer = audio_writer
        self.audio_sample_rate = audio_sample_rate
        self.on_track = on_track
        self.decode_workers = max(1, int(decode_workers))
        self.outcomes: list[TrackOutcome] = []
        self.stop = threading.Event()
        self.decoded: queue.Queue = queue.Queue(maxsize=DECODE_AHEAD * self.decode_workers)
        self.finished: queue.Queue = queue.Queue(maxsize=WRITE_AHEAD)
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        grid = teacher.grid
        self.per_batch = 1 if grid is None else max(1, int(round(batch_seconds * grid.sample_rate / grid.window)))
        self.batch_samples = batch_seconds * teacher.sample_rate  # clip-level: audio per forward pass

    # ---- shared ---------------------------------------------------------------------
    def finish(self, outcome: TrackOutcome) -> None:
        """Record an outcome and report it (called from the batcher and the writer thread)."""
        with self._lock:
            self.outcomes.append(outcome)
            if self.on_track is not None:
                self.on_track(outcome)

    def _put(self, q: queue.Queue, item: Any) -> bool:
        """Put unless the run is stopping; returns False when it is."""
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    # ---- stage 1: decoder thread ----------------------------------------------------
    def decode_all(self, clips: queue.SimpleQueue) -> None:
        """Decode clips taken from ``clips`` into ``self.decoded`` until it is empty; ends with ``("end",)``."""
        try:
            while not self.stop.is_set():
                try:
                    clip = clips.get_nowait()
                except queue.Empty:
                    break
                self.decode_one(clip)
        except BaseException as exc:  # noqa: BLE001 - a bug: handed to the batcher, which raises it
            self._put(self.decoded, ("error", exc))
            return
        self._put(self.decoded, ("end",))

    def decode_one(self, clip: Clip) -> None:
        """Decode one clip: ``start``, window groups (or ``clip``), then ``done`` or ``failed``."""
        from pipeline.audio import fingerprint

        path = clip.resolve(self.audio_root)
        track = _Track(clip, path, frames=self.writer.open_track(clip.id))
        if self.audio_writer is not None:
            track.audio = self.audio_writer.open_track(clip.id)
        if not self._put(self.decoded, ("start", track)):
            _Pipeline._drop(track)
            return
        try:
            rendered = self._rendered(clip.id)
            track.sha256 = fingerprint(path) if rendered is None else _sha256(rendered)
            cache = None if track.audio is None else _CacheStream(
                track.audio, self.teacher.sample_rate, self.audio_sample_rate)
            if self.teacher.grid is None:
                self.teacher.check_clip(int(round(clip.duration * self.teacher.sample_rate)))  # before decoding
                self._put(self.decoded, ("clip", track, self._read_whole(path, track, cache, rendered)))
            else:
                for span in _iter_spans(self.teacher, path, track, cache, self.per_batch, rendered):
                    if not self._put(self.decoded, ("windows", track, span)):
                        return
        except PipelineError as exc:
            self._put(self.decoded, ("failed", track, str(exc)))
            return
        self._put(self.decoded, ("done", track))

    def _rendered(self, track_id: str) -> np.ndarray | None:
        """A rendered track's audio at the teacher's rate (a view), or None for a file's track."""
        if self.render is None:
            return None
        return np.asarray(self.render(track_id, self.teacher.sample_rate), dtype=np.float32)

    def _read_whole(self, path: Path, track: _Track, cache: _CacheStream | None,
                    rendered: np.ndarray | None = None) -> np.ndarray:
        """Decode a whole file (or take ``rendered``) for a clip-level teacher (bounded by its own limit)."""
        from pipeline.audio import decode_audio

        if rendered is None:
            decoded = decode_audio(path, sample_rate=self.teacher.sample_rate)
            audio, track.notes = decoded.samples, decoded.notes
        else:
            audio = rendered
        if cache is not None:
            cache.add(audio, last=True)
        track.n_windows, track.n_samples = 1, len(audio)
        return audio

    # ---- stage 3: track writer thread -----------------------------------------------
    def write_all(self) -> None:
        """Add finished tracks to the store until ``None``; after a store error, only drain the queue."""
        while True:
            track = self.finished.get()
            if track is None:
                return
            if self.errors:  # after an interrupt, finished tracks are still written (they are whole)
                self._drop(track)
                continue
            try:
                self.write_one(track)
            except BaseException as exc:  # noqa: BLE001 - handed to the batcher, which raises it
                self.errors.append(exc)
                self._drop(track)

    def write_one(self, track: _Track) -> None:
        """Add one whole track (frames, then its cached audio) to the part writers."""
        seconds = track.n_samples / self.teacher.sample_rate
        self.writer.add_buffer(track.frames, audio_sha256=track.sha256, duration=seconds)
        if track.audio is not None:
            self.audio_writer.add_buffer(track.audio, audio_sha256=track.sha256, duration=seconds)
        self.finish(TrackOutcome(track.clip.id, "done", seconds, path=str(track.clip.audio_path), notes=track.notes))

    @staticmethod
    def _drop(track: _Track) -> None:
        track.failed = True
        track.frames.close()
        if track.audio is not None:
            track.audio.close()

    # ---- stage 2: the batcher (calling thread) --------------------------------------
    def run(self, clips: Sequence[Clip]) -> list[TrackOutcome]:
        """Run the three stages over ``clips``; returns the outcomes in completion order."""
        todo: queue.SimpleQueue = queue.SimpleQueue()
        for clip in clips:
            todo.put(clip)
        decoders = [threading.Thread(target=self.decode_all, args=(todo,), name=f"extract-decode-{i}", daemon=True)
                    for i in range(self.decode_workers)]
        writer = threading.Thread(target=self.write_all, name="extract-write", daemon=True)
        for thread in [*decoders, writer]:
            thread.start()
        batcher = _Batcher(self)
        try:
            batcher.consume(len(decoders))
        except BaseException:
            self.stop.set()
            for thread in decoders:  # after the joins no other thread touches the open tracks
                thread.join()
            batcher.drop_open()
            raise
        finally:
            self.finished.put(None)
            writer.join()
            self.stop.set()
            for thread in decoders:
                thread.join()
        if self.errors:
            raise self.errors[0]
        return self.outcomes


class _Batcher:
    """Packs windows into fixed-shape batches, runs the teacher, hands finished tracks on."""

    def __init__(self, pipeline: _Pipeline) -> None:
        self.p = pipeline
        self.teacher = pipeline.teacher
        self.open: list[_Track] = []
        self.slots: list[tuple[_Track, int]] = []  # (track, window index) of each filled row
        self.clips: list[tuple[_Track, np.ndarray]] = []  # clip-level: whole clips waiting for a pass
        grid = self.teacher.grid
        self.cuda = str(self.teacher.device).startswith("cuda")
        # clip-level teachers (no grid) batch whole clips in ``self.clips`` and never use this buffer
        self.batch = np.zeros((0, 0), np.float32) if grid is None else self._buffer(pipeline.per_batch, grid.window)

    def _buffer(self, rows: int, width: int) -> np.ndarray:
        """The batch buffer: pinned host memory on CUDA (asynchronous copies), plain numpy on CPU."""
        if not self.cuda:
            return np.zeros((rows, width), dtype=np.float32)
        import torch

        return torch.zeros((rows, width), dtype=torch.float32).pin_memory().numpy()

    def consume(self, decoders: int) -> None:
        """Pull decoder events until every decoder ended; run the last (partial) batch."""
        running = decoders
        while running:
            if self.p.errors:
                raise self.p.errors[0]
            event = self.p.decoded.get()
            kind = event[0]
            if kind == "end":
                running -= 1
                continue
            if kind == "error":
                raise event[1]
            getattr(self, f"on_{kind}")(*event[1:])
        self.run_batch()
        self.run_clips()
        if self.open:  # cannot happen unless a teacher returned too few frames
            raise PipelineError(f"internal error: tracks left incomplete: {[t.clip.id for t in self.open]}")

    def on_start(self, track: _Track) -> None:
        self.open.append(track)

    def on_windows(self, track: _Track, span: _Span) -> None:
        """Cut a span's windows into the batch buffer, running the teacher whenever it is full."""
        done = 0
        while done < span.count:
            filled = len(self.slots)
            take = min(span.count - done, len(self.batch) - filled)
            _cut_into(self.teacher.grid, span, span.first + done, take, self.batch[filled : filled + take])
            self.slots.extend((track, span.first + done + i) for i in range(take))
            done += take
            if len(self.slots) == len(self.batch):
                self.run_batch()

    def on_clip(self, track: _Track, audio: np.ndarray) -> None:
        """Clip-level teacher: clips of one length share a forward pass (up to ``batch_seconds``)."""
        if self.clips and len(self.clips[0][1]) != len(audio):
            self.run_clips()
        self.clips.append((track, audio))
        if len(self.clips) * len(audio) >= self.p.batch_samples:
            self.run_clips()

    def run_clips(self) -> None:
        """Embed the held clips (all of one length) in one forward pass."""
        if not self.clips:
            return
        out = self.teacher.embed_windows(np.stack([audio for _, audio in self.clips]))
        for (track, _audio), frames in zip(self.clips, out):
            if not track.failed:
                track.frames.append(frames)
                track.received = 1
        self.clips = []
        self.flush()

    def on_done(self, track: _Track) -> None:
        self.flush()

    def on_failed(self, track: _Track, reason: str) -> None:
        log.warning("skipping %s: %s", track.path, reason)
        self.open.remove(track)
        _Pipeline._drop(track)  # frames of its windows still in the batch are ignored
        self.p.finish(TrackOutcome(track.clip.id, "failed", reason=reason, path=str(track.path)))

    def run_batch(self) -> None:
        """Embed the filled rows (all rows on CUDA: a fixed shape) and append each window's frames."""
        if not self.slots:
            return
        rows = len(self.batch) if self.cuda else len(self.slots)
        out = self.teacher.embed_windows(self.batch[:rows])
        per_window = self.teacher.frames_per_window
        for (track, index), frames in zip(self.slots, out):
            if not track.failed:
                if track.frame_limit is not None:  # the last windows: drop frames centered past the audio's end
                    frames = frames[: max(0, track.frame_limit - index * per_window)]
                track.frames.append(frames)
                track.received += 1
        self.slots = []
        self.flush()

    def flush(self) -> None:
        """Hand every complete track to the track writer (in order of arrival)."""
        for track in [t for t in self.open if t.complete]:
            self.open.remove(track)
            if not self.p._put(self.p.finished, track):
                self.p._drop(track)

    def drop_open(self) -> None:
        """Release the buffers of tracks still in flight (after an error or an interrupt)."""
        for track in self.open:
            _Pipeline._drop(track)
        self.open = []


def extract_tracks(
    teacher: Teacher,
    clips: Sequence[Clip],
    audio_root: Path,
    writer: Any,
    *,
    audio_writer: Any = None,
    audio_sample_rate: int = 16000,
    batch_seconds: float = 120.0,
    on_track: Callable[[TrackOutcome], None] | None = None,
    decode_workers: int | None = None,
    render: Callable[[str, int], np.ndarray] | None = None,
) -> list[TrackOutcome]:
    """Run ``teacher`` over ``clips`` and add each finished track to ``writer``.

    Args:
        teacher: a loaded teacher.
        clips: tracks to embed (already filtered of those in the store).
        audio_root: folder the clips' relative paths start from.
        writer: the store's :class:`~pipeline.stores.writer.PartWriter` (tracks are added whole).
        audio_writer: part writer of the int16 audio cache, or ``None`` not to cache audio.
        audio_sample_rate: rate of the cached audio, Hz.
        batch_seconds: audio seconds of windows per forward pass (the batch's fixed size).
        on_track: called with each track's outcome as soon as it is known (progress); it may
            be called from the track writer thread.
        decode_workers: decoder threads (libsndfile and soxr release the GIL, so they decode in
            parallel); ``None``: 1 on the CPU (the cores are busy with the teacher), and
            :data:`GPU_DECODE_WORKERS` (at most the CPU count) when the teacher runs on CUDA.
        render: ``render(track_id, sample_rate)`` gives each clip's audio (float32 at the teacher's
            rate) instead of its file: the augmented views (:class:`pipeline.views.ViewRenderer`);
            the index records the sha256 of those samples.

    Returns:
        One outcome per clip, in completion order.

    Raises:
        StoreError: a part could not be written (raised in the caller's thread).
    """
    if decode_workers is None:
        cuda = str(teacher.device).startswith("cuda")
        decode_workers = max(1, min(GPU_DECODE_WORKERS, (os.cpu_count() or 1) - 2)) if cuda else 1
    pipeline = _Pipeline(teacher, audio_root, writer, audio_writer, audio_sample_rate, batch_seconds, on_track,
                         decode_workers, render)
    return pipeline.run(clips)
