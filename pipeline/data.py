"""Stage-two loader: audio crops streamed with the cached teacher frames of the same span.

For clip ``i`` and a crop ``[t, t + L)`` an item holds the waveform crop (float32,
``(samples,)``), the teacher frames whose centers fall in the span (``(frames, dim)``)
with their times relative to the crop start, and the labels with their known-mask.
Teacher inference never runs here: frames come from the store of stage one.

Audio comes from the int16 audio cache that extraction wrote next to the embeddings
(no decoding; a window read touches at most two chunks) or, when the cache is absent or
at another rate, from the audio files themselves. Store handles are opened lazily in
each worker process, never shared across ``fork``.

Training crops start on the teacher's frame grid, so every item of a batch holds the
same number of teacher frames at the same relative times (those centered inside the
crop that every clip of the split has); evaluation uses whole clips.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from pipeline.audio_source import AudioSource
from pipeline.batch import Batch, ClipItem, collate_items
from pipeline.errors import StoreError, TrainingError
from pipeline.files import file_fault, os_error_text, writable_folder
from pipeline.frame_axis import FrameAxis
from pipeline.manifests import Clip
from pipeline.stores import export_store, open_store
from pipeline.stores.location import Location, is_url
from pipeline.views import ViewRenderer, view_track_id

#: (mean, std), float32 (dim,) each: how a teacher's frames are z-scored
FrameNorm = tuple[np.ndarray, np.ndarray]

if TYPE_CHECKING:
    from pipeline.stores import EmbeddingStore


@dataclass(frozen=True)
class TeacherView:
    """Geometry of the teacher frames the loader serves (from the store's ``teacher.json``).

    Attributes:
        dim: frame size.
        hop_seconds: seconds between frame centers (0 for clip-level).
        frame0_center_seconds: center of frame 0.
        window_seconds: audio seconds one frame summarises (0 = whole clip).
    """

    dim: int
    hop_seconds: float
    frame0_center_seconds: float
    window_seconds: float

    @property
    def clip_level(self) -> bool:
        return self.hop_seconds == 0.0

    @property
    def axis(self) -> FrameAxis:
        """The frames' time axis (:class:`~pipeline.frame_axis.FrameAxis`)."""
        return FrameAxis(self.hop_seconds, self.frame0_center_seconds, self.window_seconds)


def crop_grid(views: Sequence[TeacherView]) -> float:
    """Seconds between allowed crop starts: the shortest multiple of every frame-level hop.

    Starting crops on it gives every item of a batch each teacher's frames at the same
    relative times. With one frame-level teacher it is that teacher's hop; with none, 0.

    Raises:
        TrainingError: hops with no common multiple below 1,000 x the first (e.g. 1.0 and 0.96 s
            have 24 s; 1.0 and 0.7071 s none).
    """
    hops = [v.hop_seconds for v in views if not v.clip_level]
    if not hops:
        return 0.0
    for multiple in range(1, 1001):
        grid = hops[0] * multiple
        if all(abs(grid - round(grid / hop) * hop) < 1e-6 for hop in hops):  # within a microsecond
            return grid
    raise TrainingError(f"teacher hops {hops} s have no common multiple within 1,000 x {hops[0]} s, so "
                        "crops cannot start on every teacher's frame grid; drop a teacher or re-extract it "
                        "with a commensurate hop")


class ClipDataset(Dataset[ClipItem]):
    """A map-style dataset of clips.

    Items are :class:`~pipeline.batch.ClipItem`; :meth:`collate` stacks them into a
    :class:`~pipeline.batch.Batch`. Several teachers may regularise one run: ``item.teachers[k]``
    holds teacher ``k``'s frames centered inside the crop, at :meth:`teacher_times` ``(k)``
    relative to its start.
    Hops, frame-0 centers and dimensions may differ; clip-level teachers serve one frame.

    Args:
        clips: the clips of one split.
        audio: where audio comes from.
        clip_seconds: length of every item in seconds: the training crop, or the
            evaluation length (clips are zero-padded or cut to it).
        teacher_store: path of a teacher's embedding store, a list of them, or None (baseline).
        teacher_norm: (mean, std) arrays of shape (dim,) for z-scoring frames, one per store
            (a list), or None.
        random_crop: draw a random crop start on :func:`crop_grid` (training) instead of 0.
        seed: crop seed; with :meth:`set_epoch` the crops are reproducible per epoch.
        view_renderer: serve augmented views (:mod:`pipeline.views`), training only (with ``random_crop``):
            per item and epoch a seeded draw among the clip and its views; a view's audio is rendered
            from the whole clip, then cropped to the window its frames are read for, and its labels
            follow the mixup rule when it mixes in a partner. None: clean clips only.

    Raises:
        StoreError: a clip or one of its views missing from a store (one line: the store, the count,
            the first id).
    """

    def __init__(
        self,
        clips: Sequence[Clip],
        audio: AudioSource,
        *,
        clip_seconds: float,
        teacher_store: Path | str | Sequence[Path | str] | None = None,
        teacher_norm: FrameNorm | list[FrameNorm | None] | None = None,
        random_crop: bool = False,
        seed: int = 0,
        view_renderer: ViewRenderer | None = None,
    ) -> None:
        self.clips = list(clips)
        self.renderer = view_renderer if random_crop else None
        self.audio = audio
        self.clip_seconds = clip_seconds
        self.n_samples = int(round(clip_seconds * audio.sample_rate))
        paths = [] if teacher_store is None else (
            [teacher_store] if isinstance(teacher_store, (str, Path)) else list(teacher_store))
        self.teacher_paths = [str(p) for p in paths]
        norms = teacher_norm if isinstance(teacher_norm, list) else [teacher_norm] * len(paths)
        self.teacher_norms: list[tuple[np.ndarray, np.ndarray] | None] = list(norms)
        self.random_crop = random_crop
        self.seed = seed
        self.epoch = 0
        self._stores: dict[int, EmbeddingStore] = {}
        self.views = [teacher_view(p) for p in self.teacher_paths]
        for slot, path in enumerate(self.teacher_paths):
            store = self._teacher_store(slot)
            missing = [t for c in self.clips for t in self._tracks_of(c.id) if t not in store]
            if missing:
                raise StoreError(
                    f"{len(missing)} clip(s) of this split are not in the store {path} "
                    f"(first: {missing[0]!r}); {store.spec.fill_hint()} first"
                )
        self.grid = crop_grid(self.views)
        self.frames = [self._frames_per_item(slot) for slot in range(len(self.views))]

    def _tracks_of(self, clip_id: str) -> list[str]:
        """The store tracks an item of ``clip_id`` may read: its own and its views' (when served)."""
        if self.renderer is None:
            return [clip_id]
        return [clip_id] + [view_track_id(clip_id, k) for k in self.renderer.indices.get(clip_id, [])]

    # ---- geometry -------------------------------------------------------------------
    def _frames_per_item(self, slot: int) -> int:
        """Teacher ``slot``'s frames per item: those centered inside ``[0, L)`` that every clip has."""
        view = self.views[slot]
        if view.clip_level:
            return 1
        fit = max(1, math.ceil((self.clip_seconds - view.frame0_center_seconds) / view.hop_seconds - 1e-9))
        store = self._teacher_store(slot)
        stored = min(store.entry(c.id).n_frames for c in self.clips) if self.clips else fit
        return max(1, min(fit, stored))

    def share_frames(self, other: "ClipDataset") -> None:
        """Serve, in both datasets, the frames per item that both can serve (per teacher)."""
        self.frames = other.frames = [min(a, b) for a, b in zip(self.frames, other.frames)]

    def teacher_times(self, slot: int = 0) -> np.ndarray:
        """Center times (seconds, relative to the item start) of teacher ``slot``'s frames of every item."""
        if not self.views:
            return np.zeros(0)
        view = self.views[slot]
        return view.axis.times(1 if view.clip_level else self.frames[slot], clip_seconds=self.clip_seconds)

    def _crop_start_seconds(self, index: int, clip: Clip, track: str) -> float:
        """Start of the item: a random multiple of :attr:`grid` that keeps every teacher's frames of ``track``."""
        grid = self.grid
        if not self.random_crop or grid <= 0:
            return 0.0
        last = int(math.floor((clip.duration - self.clip_seconds) / grid + 1e-9))
        for slot, view in enumerate(self.views):
            if not view.clip_level:
                spare = self._teacher_store(slot).entry(track).n_frames - self.frames[slot]
                last = min(last, int(math.floor(spare * view.hop_seconds / grid + 1e-9)))
        if last <= 0:
            return 0.0
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return int(rng.integers(0, last + 1)) * grid

    def _crop_start_seconds_plain(self, index: int, clip: Clip) -> float:
        """Random crop start without a teacher (baseline): any sample position."""
        spare = clip.duration - self.clip_seconds
        if not self.random_crop or spare <= 0:
            return 0.0
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return float(rng.uniform(0.0, spare))

    # ---- torch Dataset protocol -----------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Change the random crops (call once per epoch, before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def _teacher_store(self, slot: int = 0) -> EmbeddingStore:
        if slot not in self._stores:
            self._stores[slot] = open_store(self.teacher_paths[slot])
        return self._stores[slot]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_stores"] = {}
        return state

    def __getitem__(self, index: int) -> ClipItem:
        clip = self.clips[index]
        track = clip.id if self.renderer is None else self.renderer.draw(clip.id, self.seed, self.epoch, index)
        labels, known = (np.asarray(clip.labels, dtype=np.float32), np.asarray(clip.known, dtype=bool))
        if track != clip.id:
            labels, known = self.renderer.labels(track)  # type: ignore[union-attr]
        if not self.views:
            start_s = self._crop_start_seconds_plain(index, clip)
        else:
            start_s = self._crop_start_seconds(index, clip, track)
        teachers = [self._read_teacher(track, slot, start_s) for slot in range(len(self.views))]
        audio = self._read_audio(clip, track, int(round(start_s * self.audio.sample_rate)))
        return ClipItem(audio, labels, known, index, teachers)

    def collate(self, items: Sequence[ClipItem]) -> Batch:
        """Stack items of this dataset into a :class:`~pipeline.batch.Batch` with every teacher's times and window."""
        return collate_items(list(items), [self.teacher_times(k) for k in range(len(self.views))],
                             [view.window_seconds for view in self.views])

    def _read_audio(self, clip: Clip, track: str, start: int) -> np.ndarray:
        """float32 ``(n_samples,)`` from sample ``start`` of the clip or of its view ``track`` (zero-padded)."""
        if track == clip.id:
            return self.audio.read(clip, start, self.n_samples)
        whole = self.renderer.render(track)  # type: ignore[union-attr]
        out = np.zeros(self.n_samples, dtype=np.float32)
        piece = whole[start : start + self.n_samples]
        out[: len(piece)] = piece
        return out

    def _read_teacher(self, track: str, slot: int, start_seconds: float) -> np.ndarray:
        view = self.views[slot]
        first = view.axis.shift_frames(start_seconds)  # crops start on the hop grid
        frames = self._teacher_store(slot).read(track, first, first + self.frames[slot])
        frames = frames.astype(np.float32)
        norm = self.teacher_norms[slot]
        if norm is not None:
            mean, std = norm
            frames = (frames - mean) / std
        return frames


def teacher_view(store_path: Path | str) -> TeacherView:
    """The geometry recorded in a store's ``teacher.json``."""

    spec = open_store(store_path).spec
    return TeacherView(
        dim=spec.dim,
        hop_seconds=spec.hop_seconds,
        frame0_center_seconds=spec.frame0_center_seconds,
        window_seconds=spec.window_seconds,
    )


def pooled_embeddings(store_path: Path | str, clips: Sequence[Clip]) -> np.ndarray:
    """Time-pooled teacher embeddings, float32 (n_clips, dim): the probe's input."""

    store = open_store(store_path)
    missing = [c.id for c in clips if c.id not in store]
    if missing:
        raise StoreError(
            f"{len(missing)} clip(s) are not in the store {store_path} (first: {missing[0]!r}); "
            f"{store.spec.fill_hint()} first"
        )
    return np.stack([store.read(c.id).astype(np.float32).mean(axis=0) for c in clips])


def frame_statistics(store_path: Path | str, clips: Sequence[Clip]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std (float32, (dim,)) of all frames of ``clips`` (train split)."""

    store = open_store(store_path)
    total = None
    total_sq = None
    count = 0
    for clip in clips:
        frames = store.read(clip.id).astype(np.float64)
        total = frames.sum(0) if total is None else total + frames.sum(0)
        total_sq = (frames**2).sum(0) if total_sq is None else total_sq + (frames**2).sum(0)
        count += len(frames)
    if not count or total is None or total_sq is None:
        raise StoreError(f"no frames to normalise with in {store_path}")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def prefetch_to_device(
    batches: Iterable[Batch], device: str, transform: Callable[[Batch], Batch] | None = None
) -> Iterator[Batch]:
    """Yield ``batches`` with their tensors on ``device``, the next batch copied while this one trains.

    On CUDA each batch (from a ``pin_memory`` loader) is copied on a side stream with
    ``non_blocking=True`` one step ahead, so the copy overlaps the previous step's kernels and
    no host round trip happens per step; the consuming stream waits on the copy's event only.
    On CPU batches pass through (``transform`` still applied).

    Args:
        batches: host batches.
        device: ``cpu`` or ``cuda[:i]``.
        transform: applied on the host before the copy (e.g. mixup), or None.
    """
    def host(batch: Batch) -> Batch:
        return transform(batch) if transform is not None else batch

    if not str(device).startswith("cuda"):
        for batch in batches:
            yield host(batch)
        return
    stream = torch.cuda.Stream(device=device)

    def send(batch: Batch) -> Batch:
        batch = host(batch)
        with torch.cuda.stream(stream):
            return batch.to(device, non_blocking=True)

    iterator = iter(batches)
    ahead = next(iterator, None)
    pending = None if ahead is None else send(ahead)
    while pending is not None:
        torch.cuda.current_stream(device).wait_stream(stream)
        for value in pending.tensors():  # the caching allocator must not reuse these before use
            value.record_stream(torch.cuda.current_stream(device))
        current = pending
        ahead = next(iterator, None)
        pending = None if ahead is None else send(ahead)
        yield current


def mixup(batch: Batch, alpha: float, generator: torch.Generator) -> Batch:
    """Mix each item with a random partner of the batch (audio, teacher frames and labels).

    Each item keeps a share ``w ~ Beta(alpha, alpha)``, ``w = max(w, 1 - w)`` of itself, as in the
    official code (which calls it lambda; here ``lam`` is only the loss weight of ``distill.lam``);
    unknown labels count as 0 and the known-mask is OR-ed (paper behaviour, see README).

    Unlabeled clips (no known label, :func:`pipeline.manifests.is_unlabeled`): their labels are
    fake zeros, so a row whose own clip or partner is unlabeled gets a known-mask of all False
    and drops out of the label loss (it still enters the feature term, and KD on every class
    through :func:`pipeline.losses.kd_mask`).
    """
    if alpha <= 0:
        return batch
    n = len(batch)
    beta = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))
    share = beta.sample((n,))
    share = torch.maximum(share, 1 - share).to(batch.audio.device)  # drawn on the CPU: same numbers anywhere
    partner = torch.randperm(n, generator=generator).to(batch.audio.device)
    audio = share[:, None] * batch.audio + (1 - share[:, None]) * batch.audio[partner]
    labels = batch.labels * batch.known
    labels = share[:, None] * labels + (1 - share[:, None]) * labels[partner]
    unlabeled = ~batch.known.any(dim=1)
    mixed_unlabeled = (unlabeled | unlabeled[partner])[:, None]
    known = (batch.known | batch.known[partner]) & ~mixed_unlabeled
    mix = share[:, None, None]
    teachers = [dataclasses.replace(t, frames=mix * t.frames + (1 - mix) * t.frames[partner])
                for t in batch.teachers]  # every teacher's frames
    return Batch(audio, labels, known, batch.index, teachers)


#: Environment variable naming the folder of the memmap copies (default: :func:`memmap_cache_root`'s search).
CACHE_ENV = "EAST_CACHE_DIR"
_FALLBACKS_TOLD: set[tuple[str, str]] = set()
_CACHE_ADVICE = (f"set {CACHE_ENV} to a writable folder with room for the copy, or `distill.loader: store` "
                 "to read the stores directly")


def memmap_cache_root() -> Path:
    """The folder for memmap copies: ``$EAST_CACHE_DIR``, else the first writable of ``./.cache/memmap``,
    ``$XDG_CACHE_HOME/east-pipeline/memmap`` (``~/.cache/...``) and ``<tmp>/east-pipeline-<uid>/memmap``.

    Falling back from ``./.cache`` (a read-only working directory) is logged.

    Raises:
        FileFault: ``$EAST_CACHE_DIR`` is set but not writable, or no candidate is writable
            (one line naming the first candidate and its OS error).
    """
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        error = writable_folder(chosen)
        if error is not None:
            raise file_fault(chosen, error, doing=f"preparing the memmap cache ({CACHE_ENV})",
                             kept="nothing was copied", todo=_CACHE_ADVICE)
        return Path(chosen)
    home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    candidates = [Path(".cache/memmap"), home / "east-pipeline" / "memmap",
                  Path(tempfile.gettempdir()) / f"east-pipeline-{os.getuid()}" / "memmap"]
    first_error = None
    for folder in candidates:
        error = writable_folder(folder)
        if error is None:
            if first_error is not None and (str(candidates[0].resolve()), str(folder)) not in _FALLBACKS_TOLD:
                _FALLBACKS_TOLD.add((str(candidates[0].resolve()), str(folder)))  # once per process, not per store
                logging.getLogger("pipeline").warning(
                    "%s is not writable (%s); the memmap copy of the stores goes to %s (%s sets another)",
                    candidates[0], os_error_text(first_error), folder, CACHE_ENV)
            return folder
        first_error = first_error or error
    assert first_error is not None
    raise file_fault(candidates[0], first_error, doing="preparing the memmap cache",
                     kept=f"nothing was copied (nor under {', '.join(str(c) for c in candidates[1:])})",
                     todo=_CACHE_ADVICE)


def hot_copy(store_path: Path | str, cache_root: Path | str | None = None) -> Path:
    """A raw memory-mappable copy of a store for the training hot loop, made once and reused.

    Reading a window through zarr costs ~1 ms of fixed overhead; the same bytes from a
    ``np.memmap`` cost microseconds (``benchmarks/bench_loader.py``: 624 vs 7,776 ten-second
    clips/s per core). The copy is keyed by the store's path and committed parts, so a store
    that gained tracks gets a fresh copy; it lives outside the DVC-tracked store folder. A
    store given by URL (``s3://...``) is read through fsspec once, into the local copy.

    Args:
        store_path: the store (path or URL).
        cache_root: folder of the copies; default :func:`memmap_cache_root`.

    Returns:
        The folder of the memmap store (open it with :func:`pipeline.stores.open_store`).

    Raises:
        FileFault: the cache folder is not writable or fills up (one line; no partial copy is left).
    """
    import hashlib
    import shutil
    import uuid

    source: Path | str = str(store_path) if is_url(str(store_path)) else Path(store_path)
    location = Location(source)
    digest = hashlib.sha256(str(source if isinstance(source, str) else source.resolve()).encode())
    for name in ("teacher.json", "parts.json"):
        digest.update(location.read_text(name).encode())
    root = Path(cache_root) if cache_root is not None else memmap_cache_root()
    target = root / digest.hexdigest()[:20]
    if (target / "teacher.json").is_file():
        return target
    tmp = root / f".tmp-{uuid.uuid4().hex}"
    try:
        export_store(source, tmp, format="memmap")
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        cause = exc if isinstance(exc, OSError) else exc.__cause__
        if isinstance(cause, OSError):
            raise file_fault(root, cause, doing=f"copying the store {source} into the memmap cache",
                             kept="the store is unchanged and no partial copy is left", todo=_CACHE_ADVICE) from None
        raise
    try:
        os.rename(tmp, target)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target
