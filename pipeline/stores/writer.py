"""Writing parts: buffered tracks -> one immutable part, committed atomically.

Protocol (any number of processes or dask workers, one :class:`PartWriter` each):

1. ``add`` buffers whole tracks in memory (cast to the stored dtype, checksummed).
2. ``commit`` writes the buffer as one part under ``<store>/tmp/<token>.<suffix>``,
   guarded by ``tmp/<token>.lock`` held with ``flock`` while the writer lives (a dead
   writer's lock is free, so its leftovers can be told from live ones).
3. Under the exclusive store lock (``flock`` on ``<store>/.lock``): tracks already
   committed by another part are dropped from the new index, the data is renamed to
   ``parts/part-NNNNNN.<suffix>``, one index segment holding the part (merged with the
   newest segments, :func:`~pipeline.stores.catalog.plan_commit`) written to ``index/``, and
   ``parts.json`` replaced. Replacing ``parts.json`` is the commit point: readers never see a
   half-written track. Segments it no longer lists are removed afterwards.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import logging
import os
import re
import shutil
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import numpy as np

from pipeline.errors import StoreError
from pipeline.files import os_error_text
from pipeline.interrupts import signals_deferred
from pipeline.stores.backend import PartBackend, get_backend
from pipeline.stores.catalog import INDEX_DIR, catalog_text, parse_catalog, plan_commit
from pipeline.stores.index import (
    PARTS_DIR,
    PARTS_FILE,
    PartIndex,
    TrackEntry,
    check_track_id,
    frames_checksum,
    part_name,
    part_seq,
    write_atomic,
)
from pipeline.stores.quant import quant_params, quantise, value_range
from pipeline.stores.segment import build_segment, part_numbers, segment_writer
from pipeline.stores.protocol import COMMITS_DIR, TMP_DIR, StoreLike, store_lock

log = logging.getLogger(__name__)


def listed_names(root: Path) -> tuple[set[str], set[str]]:
    """``(part names, segment files)`` that ``parts.json`` lists, read under the store lock.

    Format 2: the part numbers are read from each segment's ``part.seq`` array alone; a
    segment that cannot be read counts for its whole range (a part is never deleted for it).
    """
    path = root / PARTS_FILE
    if not path.exists():
        return set(), set()
    fmt, names, rows = parse_catalog(path.read_text(encoding="utf-8"), where=str(path))
    if fmt == 1:
        return set(names), set()
    parts: set[str] = set()
    for row in rows:
        try:
            with open(root / INDEX_DIR / row.file, "rb") as handle:
                seqs = part_numbers(handle, where=row.file)
        except (OSError, StoreError):
            seqs = list(range(row.first, row.last + 1))
        parts.update(part_name(int(q)) for q in seqs)
    return parts, {row.file for row in rows}


def _token() -> str:
    host = re.sub(r"[^A-Za-z0-9]+", "_", socket.gethostname())[:40] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:10]}"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def clean_tmp(root: Path) -> list[str]:
    """Remove what interrupted writers left in the store at ``root``; returns the removed names.

    Removes ``tmp/`` entries whose writer is gone (its lock file is free or absent),
    part files in ``parts/`` that ``parts.json`` does not list (a writer died between
    the rename and the commit), and stray temporary JSON files. Live writers are left alone.
    """
    removed: list[str] = []
    with store_lock(root):
        tmp = root / TMP_DIR
        names = sorted(os.listdir(tmp)) if tmp.is_dir() else []
        by_token: dict[str, list[str]] = {}
        for name in names:
            by_token.setdefault(name.split(".", 1)[0], []).append(name)
        for token, group in by_token.items():
            lock_name = f"{token}.lock"
            if lock_name in group and not _lock_is_free(tmp / lock_name):
                continue  # a live writer
            for name in sorted(group, key=lambda n: n == lock_name):  # the lock file last
                _remove(tmp / name)
                removed.append(f"{TMP_DIR}/{name}")
        listed, segments = listed_names(root)
        parts = root / PARTS_DIR
        for name in sorted(os.listdir(parts)) if parts.is_dir() else []:
            stray_tmp = name.startswith(".") and name.endswith(".tmp")
            if stray_tmp or name.split(".", 1)[0] not in listed:
                _remove(parts / name)
                removed.append(f"{PARTS_DIR}/{name}")
        index = root / INDEX_DIR
        for name in sorted(os.listdir(index)) if index.is_dir() else []:
            if name not in segments:  # a commit that died before parts.json, or a superseded segment
                _remove(index / name)
                removed.append(f"{INDEX_DIR}/{name}")
        for name in os.listdir(root):
            if name.startswith(f".{PARTS_FILE}.") and name.endswith(".tmp"):
                _remove(root / name)
                removed.append(name)
    if removed:
        log.info("store %s: removed leftovers of interrupted writers: %s", root, ", ".join(removed))
    return removed


def _lock_is_free(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise
    finally:
        os.close(fd)  # closing releases a lock we took
    return True


#: A track buffer keeps up to this many bytes in memory, then moves its rows to a file in ``tmp/``.
SPOOL_BYTES = 1 << 20
#: Rows read back from a spool file at a time are about this many bytes.
_READ_BYTES = 1 << 20


class TrackBuffer:
    """The rows of one track, appended block by block (see :meth:`PartWriter.open_track`).

    Rows are validated and cast to the store dtype as they come and checksummed
    incrementally. Up to :data:`SPOOL_BYTES` stay in memory; beyond that they go to
    ``<store>/tmp/<token>.<n>.spool``, guarded by its writer's ``<token>.lock`` like a part
    being written, so a track of any length costs bounded memory. The part is later written
    from the spool region by region.
    """

    def __init__(self, writer: "PartWriter", track_id: str) -> None:
        import hashlib

        self.writer = writer
        self.track_id = track_id
        self.n_rows = 0
        self._digest = hashlib.sha256()
        self._memory: list[np.ndarray] = []
        self._memory_bytes = 0
        self._spool: Path | None = None
        self._spool_handle: IO[bytes] | None = None

    @property
    def nbytes(self) -> int:
        """Bytes held in memory (not counting what was spooled to disk)."""
        return self._memory_bytes

    @property
    def stored_bytes(self) -> int:
        """Bytes of all rows in the store's dtype, in memory or spooled (what the part will hold)."""
        spec = self.writer.store.spec
        return self.n_rows * spec.dim * np.dtype(spec.dtype).itemsize

    @property
    def spooled(self) -> bool:
        """Whether the rows went to a spool file."""
        return self._spool is not None

    @property
    def checksum(self) -> str:
        """sha256 of the rows appended so far, as :func:`frames_checksum` of their concatenation."""
        return self._digest.hexdigest()

    def append(self, rows: np.ndarray) -> None:
        """Append (n, dim) rows (audio stores: (n,) or (n, 1) int16); ``n`` may be 0.

        Raises:
            StoreError: as :meth:`PartWriter.add` (shape, dtype, range, non-finite values).
        """
        if len(rows) == 0:
            return
        data = self.writer._prepare(self.track_id, rows)
        self._digest.update(data.tobytes())
        self.n_rows += len(data)
        if self._spool_handle is not None:
            self._spool_handle.write(data.tobytes())
            return
        self._memory.append(data)
        self._memory_bytes += data.nbytes
        if self._memory_bytes > SPOOL_BYTES:
            self._start_spool()

    def _start_spool(self) -> None:
        self._spool = self.writer._spool_path()
        self._spool_handle = open(self._spool, "wb")
        for data in self._memory:
            self._spool_handle.write(data.tobytes())
        self._memory, self._memory_bytes = [], 0

    def finish(self) -> None:
        """No more rows: close the spool file's write handle (a part may hold many spooled tracks)."""
        if self._spool_handle is not None:
            self._spool_handle.close()
            self._spool_handle = None

    def pieces(self) -> Iterator[np.ndarray]:
        """The rows in order, as blocks of bounded size."""
        if self._spool is None:
            yield from self._memory
            return
        if self._spool_handle is not None:
            self._spool_handle.flush()
        dtype = self.writer.buffer_dtype
        dim = self.writer.store.spec.dim
        rows = max(1, _READ_BYTES // (dim * dtype.itemsize))
        with open(self._spool, "rb") as handle:
            for _ in range(0, self.n_rows, rows):
                block = np.fromfile(handle, dtype=dtype, count=rows * dim)
                yield block.reshape(-1, dim)

    def close(self) -> None:
        """Drop the rows and remove the spool file (idempotent)."""
        self._memory, self._memory_bytes = [], 0
        self.finish()
        if self._spool is not None:
            _remove(self._spool)

    def __len__(self) -> int:
        return self.n_rows


@dataclass
class _Pending:
    track_id: str
    frames: np.ndarray | TrackBuffer
    audio_sha256: str
    duration: float
    checksum: str


def check_format(store: StoreLike) -> None:
    """Refuse to write to a store with the format-1 index.

    Raises:
        StoreError: naming ``pipeline store upgrade``.
    """
    if store.index.format != 2:
        raise StoreError(
            f"store {store.path} has the format-1 index (one JSON file per part); convert it once with "
            f"`pipeline store upgrade {store.path}`, then write to it"
        )


class PartWriter:
    """Buffers whole tracks and commits them as immutable parts (one writer per process).

    Use as a context manager: leaving the block without an exception commits what is
    buffered; an exception discards the buffer (nothing half-written reaches the store).

    A ``uint8`` store (the 8-bit form) buffers float32 rows and quantises each part when it
    commits it, with the part's per-dimension range (:mod:`pipeline.stores.quant`).

    Args:
        store: a store opened with ``mode="a"`` (or made by ``create_store``).
        part_tracks: commit after this many buffered tracks.
        part_bytes: commit once the buffer holds this many bytes of frames.
        coded: ``uint8`` stores only: ``(scale, shift)`` (dim,) float32 of codes copied from
            another 8-bit store (``convert``): ``add`` then takes uint8 codes, written as they are.
    """

    def __init__(
        self, store: StoreLike, *, part_tracks: int = 256, part_bytes: int = 256 << 20,
        coded: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        if store.mode != "a":
            raise StoreError(f"store {store.path} is open read-only; open it with mode='a' to write")
        if part_tracks < 1 or part_bytes < 1:
            raise StoreError(f"part_tracks and part_bytes must be >= 1, got {part_tracks}, {part_bytes}")
        self.root: Path = self._writable_root(store)
        check_format(store)
        if coded is not None and not store.spec.quantised:
            raise StoreError(f"store {store.path} is {store.spec.dtype}; only a uint8 store takes codes")
        self.store = store
        self._coded = coded
        #: dtype of buffered rows: the stored dtype, or float32 rows that a uint8 store quantises at commit
        self.buffer_dtype = np.dtype(
            "uint8" if coded is not None else store.spec.frame_dtype).newbyteorder("<")
        self.part_tracks = int(part_tracks)
        self.part_bytes = int(part_bytes)
        self.committed: list[str] = []
        self.dropped: list[str] = []
        self._buffer: list[_Pending] = []
        self._ids: set[str] = set()
        self._bytes = 0
        self._closed = False
        self._spool_token = ""  # the lock guarding this writer's spool files, taken at the first spool
        self._spool_lock_fd: int | None = None
        self._spool_count = 0
        self._spool_guard = threading.Lock()  # track buffers spool from the extraction's threads

    def _writable_root(self, store: StoreLike) -> Path:
        """The local store folder this writer commits into (checked to hold no link out of it)."""
        if store.location.local is None:
            raise StoreError(f"store {store.path} is a URL; write to it with its object-store writer "
                             "(open_store(url, mode='a').writer())")
        for folder in (PARTS_DIR, TMP_DIR, INDEX_DIR):  # a hostile store must not redirect our writes elsewhere
            store.location.contained(folder)
        if store.location.exists(COMMITS_DIR):
            raise StoreError(f"store {store.path} holds parts committed to object storage ({COMMITS_DIR}/); "
                             "append to it through its URL, not as a local folder")
        return store.location.local

    # ---- buffering ------------------------------------------------------------------
    def add(self, track_id: str, frames: np.ndarray, *, audio_sha256: str, duration: float) -> None:
        """Buffer one whole track; commits a part when the buffer is full.

        Args:
            track_id: the clip id (a second ``add`` of a buffered id is ignored).
            frames: (n_frames, dim) frames, cast to the store dtype (audio stores: int16
                samples, (n,) or (n, 1)).
            audio_sha256: fingerprint of the source audio.
            duration: track duration in seconds.

        Raises:
            StoreError: wrong shape, no frames, non-finite values after the cast, or a closed writer.
        """
        if self._closed:
            raise StoreError(
                f"this writer of {self.store.path} is closed; open a new one with store.writer()"
            )
        track_id = check_track_id(str(track_id), where=f"writer of {self.store.path}")
        if track_id in self._ids:
            log.debug("track %r is already buffered; the second copy is ignored", track_id)
            return
        data = self._prepare(track_id, frames)
        item = _Pending(track_id, data, str(audio_sha256), float(duration), frames_checksum(data))
        self._buffer.append(item)
        self._ids.add(track_id)
        self._bytes += data.nbytes
        if len(self._buffer) >= self.part_tracks or self._bytes >= self.part_bytes:
            self.commit()

    def open_track(self, track_id: str) -> TrackBuffer:
        """A buffer to append one track's rows block by block; hand it to :meth:`add_buffer` when whole.

        Memory stays bounded whatever the track's length (long rows go to a spool file).
        Call ``buffer.close()`` to drop a track that will not be added.
        """
        return TrackBuffer(self, str(track_id))

    def add_buffer(self, buffer: TrackBuffer, *, audio_sha256: str, duration: float) -> None:
        """Add the track built in ``buffer`` (as :meth:`add`); the writer owns and closes the buffer.

        Raises:
            StoreError: the buffer holds no rows, or the writer is closed.
        """
        if self._closed:
            buffer.close()
            raise StoreError(f"this writer of {self.store.path} is closed; open a new one with store.writer()")
        if buffer.n_rows == 0:
            buffer.close()
            raise StoreError(f"track {buffer.track_id!r} has no frames; a stored track needs at least one frame")
        if buffer.track_id in self._ids:
            buffer.close()
            return
        buffer.finish()
        self._buffer.append(_Pending(buffer.track_id, buffer, str(audio_sha256), float(duration), buffer.checksum))
        self._ids.add(buffer.track_id)
        self._bytes += max(buffer.stored_bytes, 1)  # spooled or not: parts grow with part_tracks / part_bytes
        if len(self._buffer) >= self.part_tracks or self._bytes >= self.part_bytes:
            self.commit()

    def _spool_path(self) -> Path:
        """A new spool file name ``tmp/<token>.<n>.spool``, guarded by this writer's ``tmp/<token>.lock``.

        One lock per writer (taken at its first spool, held until it closes), so a part of many
        spooled tracks costs one file descriptor for the lock, not one per track.
        """
        with self._spool_guard:
            if self._spool_lock_fd is None:
                tmp = self.root / TMP_DIR
                tmp.mkdir(exist_ok=True)
                self._spool_token = _token()
                with store_lock(self.root):  # clean_tmp must never see a spool without a held lock
                    fd = os.open(tmp / f"{self._spool_token}.lock", os.O_RDWR | os.O_CREAT, 0o666)
                    fcntl.flock(fd, fcntl.LOCK_EX)
                self._spool_lock_fd = fd
            self._spool_count += 1
            return self.root / TMP_DIR / f"{self._spool_token}.{self._spool_count}.spool"

    def _release_spool_lock(self) -> None:
        """Release and remove the spool lock (once the writer is closed; its spools are gone)."""
        with self._spool_guard:
            if self._spool_lock_fd is None:
                return
            os.close(self._spool_lock_fd)
            self._spool_lock_fd = None
            try:
                (self.root / TMP_DIR / f"{self._spool_token}.lock").unlink()
            except FileNotFoundError:
                pass

    def _prepare(self, track_id: str, frames: np.ndarray) -> np.ndarray:
        spec = self.store.spec
        arr = np.asarray(frames)
        if arr.ndim == 1 and spec.dim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != spec.dim:
            raise StoreError(
                f"track {track_id!r}: frames have shape {arr.shape}, expected (n_frames, {spec.dim}) "
                f"for store {self.store.path}"
            )
        if arr.shape[0] == 0:
            raise StoreError(f"track {track_id!r} has no frames; a stored track needs at least one frame")
        target = self.buffer_dtype
        if self._coded is not None:
            if arr.dtype != np.uint8:
                raise StoreError(f"track {track_id!r}: a coded copy takes uint8 codes, got {arr.dtype}")
            return np.ascontiguousarray(arr).copy()
        if target.kind == "i":
            if arr.dtype.kind not in "iu":
                raise StoreError(
                    f"track {track_id!r}: audio store {self.store.path} takes int16 samples, "
                    f"got {arr.dtype}; "
                    "quantise first (round(x * 32767))"
                )
            info = np.iinfo(target)
            if arr.size and (arr.min() < info.min or arr.max() > info.max):
                raise StoreError(f"track {track_id!r}: samples outside the {spec.dtype} range")
            return np.ascontiguousarray(arr, dtype=target).copy()
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported below
            out = np.array(arr, dtype=target, order="C", copy=True)
        if not np.isfinite(out).all():
            if spec.quantised:
                raise StoreError(f"track {track_id!r}: frames hold NaN or Inf, which the 8-bit store "
                                 f"{self.store.path} cannot quantise; check the teacher output")
            peak = float(np.nanmax(np.abs(np.asarray(arr, dtype=np.float64)))) if arr.size else 0.0
            raise StoreError(
                f"track {track_id!r}: frames are not finite in {spec.dtype} (max |x| = {peak:.4g}); "
                "check the teacher output or use extract.dtype: float32"
            )
        return out

    def __len__(self) -> int:
        """Tracks buffered and not yet committed."""
        return len(self._buffer)

    def discard(self) -> int:
        """Drop the buffered tracks; returns how many were dropped."""
        count = len(self._buffer)
        for item in self._buffer:
            if isinstance(item.frames, TrackBuffer):
                item.frames.close()
        self._buffer, self._ids, self._bytes = [], set(), 0
        return count

    # ---- committing -----------------------------------------------------------------
    def commit(self) -> list[str]:
        """Write the buffered tracks as one part now; returns the ids committed.

        Tracks that another writer committed in the meantime are left out (their first
        copy wins), so the store lists every track once.
        """
        items = self._buffer
        self._buffer, self._ids, self._bytes = [], set(), 0  # track buffers stay open until written
        with signals_deferred():  # an interrupt arrives after the commit, never inside it
            try:
                return self._commit(items)
            except OSError as exc:
                raise _write_error(self.store, items, exc) from exc
            finally:
                for item in items:
                    if isinstance(item.frames, TrackBuffer):
                        item.frames.close()

    def _commit(self, items: list[_Pending]) -> list[str]:
        if not items:
            return []
        store = self.store
        store.refresh()
        present = store.index.contains_many([t.track_id for t in items])
        fresh = [t for t, there in zip(items, present) if not there]
        self.dropped.extend(t.track_id for t, there in zip(items, present) if there)
        if not fresh:
            return []
        backend = get_backend(store.backend)
        tmp = self.root / TMP_DIR
        tmp.mkdir(exist_ok=True)
        token = _token()
        data_tmp = tmp / f"{token}{backend.suffix}"
        lock_path = tmp / f"{token}.lock"
        with store_lock(self.root):  # clean_tmp must never see our data without a held lock
            lock_fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            offsets = np.cumsum([0] + [len(t.frames) for t in fresh])
            n_frames = int(offsets[-1])
            params = None
            if store.spec.quantised:
                params = self._write_codes(backend, data_tmp, fresh, n_frames)
            elif all(isinstance(t.frames, np.ndarray) for t in fresh):
                frames = np.concatenate([t.frames for t in fresh], axis=0)  # type: ignore[misc]
                backend.write_part(data_tmp, frames, store.layout)
                del frames
            else:
                spec = store.spec
                dtype = np.dtype(spec.dtype).newbyteorder("<")
                backend.write_part_pieces(data_tmp, _pieces(fresh), n_frames, spec.dim, dtype, store.layout)
            done = self._publish(fresh, offsets, n_frames, data_tmp, backend.suffix, backend.name, params)
        finally:
            if data_tmp.exists():
                _remove(data_tmp)
            os.close(lock_fd)
            try:
                lock_path.unlink()
            except FileNotFoundError:
                pass
        store.refresh()
        self.committed.extend(done)
        return done

    def _write_codes(self, backend: PartBackend, path: Path, items: list[_Pending],
                     n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Quantise ``items`` with their common per-dimension range and write the codes as a part.

        Each item's checksum becomes the sha256 of its codes (what ``verify`` recomputes).

        Returns:
            ``(scale, shift)``, (dim,) float32: frames = codes * scale + shift.
        """
        dim = self.store.spec.dim
        if self._coded is not None:
            scale, shift = (np.asarray(a, np.float32).reshape(dim) for a in self._coded)
        else:
            scale, shift = quant_params(*value_range(_pieces(items), dim))

        def codes() -> Iterator[np.ndarray]:
            for item in items:
                digest = hashlib.sha256()
                pieces = item.frames.pieces() if isinstance(item.frames, TrackBuffer) else [item.frames]
                for piece in pieces:
                    block = piece if self._coded is not None else quantise(piece, scale, shift)
                    digest.update(block.tobytes())
                    yield block
                item.checksum = digest.hexdigest()

        backend.write_part_pieces(path, codes(), n_frames, dim, np.dtype(np.uint8), self.store.layout)
        return scale, shift

    def _publish(
        self,
        items: list[_Pending],
        offsets: np.ndarray,
        n_frames: int,
        data_tmp: Path,
        suffix: str,
        backend: str,
        params: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[str]:
        store = self.store
        with store_lock(self.root):
            store.refresh()
            if store.index.format != 2:
                raise StoreError(f"store {store.path} was given a format-1 index meanwhile; run "
                                 f"`pipeline store upgrade {store.path}`")
            present = store.index.contains_many([t.track_id for t in items])
            keep = [(t, int(o)) for t, o, there in zip(items, offsets[:-1], present) if not there]
            self.dropped.extend(t.track_id for t, there in zip(items, present) if there)
            if not keep:
                return []
            parts_dir = self.root / PARTS_DIR
            parts_dir.mkdir(exist_ok=True)
            seqs = [store.index.max_seq()] + [part_seq(n) for n in os.listdir(parts_dir)]
            seq = 1 + max(s for s in seqs if s is not None)
            part = _part_index(store, seq, backend, suffix, n_frames, keep, params)
            os.rename(data_tmp, parts_dir / part.file)
            self._write_index(part)
        log.debug("store %s: committed %s with %d tracks", self.root, part.name, len(keep))
        return [t.track_id for t, _o in keep]

    def _write_index(self, part: PartIndex) -> None:
        """Write the segment holding ``part`` and replace ``parts.json`` (under the store lock)."""
        store, index_dir = self.store, self.root / INDEX_DIR
        before = list(store.index.rows)
        loaded = {seg.file: seg for seg in store.index.segments}
        rows, segment = plan_commit(before, loaded, build_segment(part))
        index_dir.mkdir(exist_ok=True)
        try:
            write_atomic(index_dir / segment.file, segment_writer(segment))
            write_atomic(self.root / PARTS_FILE, catalog_text(rows))  # the commit point
        except BaseException:  # not listed: take the part back out at once (disk full, ...)
            for leftover in (self.root / PARTS_DIR / part.file, index_dir / segment.file):
                _remove(leftover)
            raise
        _fsync_dir(index_dir)
        _fsync_dir(self.root / PARTS_DIR)
        _fsync_dir(self.root)
        store.remember(segment)
        for row in before:
            if row.file not in {r.file for r in rows}:
                _remove(index_dir / row.file)  # merged into the new segment
        store.refresh()

    # ---- context manager ------------------------------------------------------------
    def close(self) -> None:
        """Commit what is buffered and close the writer."""
        if not self._closed:
            try:
                self.commit()
            finally:
                self._release_spool_lock()  # the committed (or failed) tracks' spools are removed by now
            self._closed = True

    def __enter__(self) -> "PartWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is None:
            self.close()
        elif issubclass(exc_type, KeyboardInterrupt):  # Ctrl-C or SIGTERM: keep the whole tracks computed
            count = len(self._buffer)
            self.close()
            if count:
                log.warning("interrupted: committed %d computed track(s) to %s; rerun to do the rest",
                            count, self.store.path)
        else:
            dropped = self.discard()
            if dropped:
                log.warning(
                    "writer of %s: %d uncommitted track(s) discarded after an error", self.store.path, dropped
                )
            self._closed = True
            self._release_spool_lock()


def _part_index(store: StoreLike, seq: int, backend: str, suffix: str, n_frames: int,
                keep: list[tuple[_Pending, int]], params: tuple[np.ndarray, np.ndarray] | None) -> PartIndex:
    """The index of the new part ``seq`` holding ``keep`` (tracks and their first rows; ``params``:
    a uint8 part's scale and shift)."""
    name = part_name(seq)
    return PartIndex(
        name=name, seq=seq, backend=backend, file=f"{name}{suffix}", n_frames=n_frames,
        dim=store.spec.dim, dtype=store.spec.dtype,
        entries=tuple(TrackEntry(t.track_id, name, o, len(t.frames), t.audio_sha256, t.duration, t.checksum)
                      for t, o in keep),
        scale=None if params is None else params[0], shift=None if params is None else params[1],
    )


def _pieces(items: list[_Pending]) -> Iterator[np.ndarray]:
    for item in items:
        if isinstance(item.frames, TrackBuffer):
            yield from item.frames.pieces()
        else:
            yield item.frames


def _write_error(store: StoreLike, items: list[_Pending], exc: OSError) -> StoreError:
    """One line for a commit that the file system refused (disk full, quota, permissions...)."""
    return StoreError(
        f"store {store.path}: {os_error_text(exc)} while committing a part of {len(items)} track(s); "
        "the store is unchanged and keeps its committed tracks. "
        "Free space (or fix the folder) and rerun: extraction resumes with the missing tracks"
    )


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
