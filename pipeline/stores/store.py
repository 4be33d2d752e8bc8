"""The embedding store: time-stamped frames of one teacher configuration, in immutable parts.

::

    <store>/teacher.json            StoreSpec + layout (backend, chunk_frames, compression)
    <store>/parts.json              the index segments, in order (the commit point)
    <store>/index/idx-*.npz         the compact index: track -> part, offset, frames, audio sha256, checksum
    <store>/parts/part-000000.zarr  frames of a part: one (N, dim) array (zarr folder, .h5 or .npy file)
    <store>/tmp/, <store>/.lock     writers' scratch space and the commit lock
    <store>/claims/, commits/       a store in object storage: part numbers claimed, and one index
                                    segment per committed part (:mod:`.remote`)

Opening reads ``teacher.json``, ``parts.json`` and the index arrays (:mod:`.catalog`); part data
is opened lazily, once per process (safe with ``fork`` and DataLoader workers), and nothing is
ever unpickled. Stores with the format-1 JSON index are still read.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from pipeline.errors import PipelineError, ProvenanceError, StoreError
from pipeline.stores.backend import BACKENDS, PartReader, get_backend
from pipeline.stores.catalog import INDEX_DIR, StoreIndex, catalog_text, load_v1, load_v2, parse_catalog
from pipeline.stores.index import INDEX_FORMAT, PARTS_DIR, PARTS_FILE, PartIndex, TrackEntry, part_name, write_atomic
from pipeline.stores.location import Location, is_url
from pipeline.stores.object_writer import ObjectPartWriter
from pipeline.stores.protocol import COMMITS_DIR, LOCK_FILE, TEACHER_FILE, TMP_DIR, store_lock
from pipeline.stores.quant import dequantise
from pipeline.stores.remote import init_object_store, load_commits, object_faults, remove_object_store
from pipeline.stores.segment import Segment
from pipeline.stores.verify import VerifyReport, verify_store
from pipeline.stores.writer import PartWriter, clean_tmp
from pipeline.stores.spec import (
    COMPRESSIONS,
    StoreLayout,
    StoreSpec,
    default_chunk_frames,
    read_teacher_json,
    teacher_json_text,
)

#: Folder of an embedding store's own int16 audio cache (written by extraction with ``extract.cache_audio``).
AUDIO_CACHE = "audio"

if TYPE_CHECKING:
    from pipeline.stores.verify import VerifyReport

log = logging.getLogger(__name__)

#: tolerance (in frames) when mapping times to frame indices, against float round-off


class EmbeddingStore:
    """Read (and, opened with ``mode="a"``, append to) one store. Build with :func:`open_store`.

    Attributes:
        path: the store's folder (``Path``) or URL (``str``).
        spec: the :class:`StoreSpec` of its frames.
        backend: ``zarr``, ``hdf5`` or ``memmap``.
        layout: backend, chunk frames and compression.
        mode: ``"r"`` or ``"a"``.
    """

    def __init__(self, location: Location, spec: StoreSpec, layout: StoreLayout, mode: str) -> None:
        self.location = location
        self.path: Path | str = location.local if location.local is not None else location.url
        self.spec = spec
        self.layout = layout
        self.backend = layout.backend
        self.mode = mode
        self._index = StoreIndex()
        self._cache: dict = {}  # parsed index segments (format 2: by file) or parts (format 1: by name)
        self.missing_parts: list[str] = []
        self.refused_parts: dict[str, str] = {}
        self._warned: set[str] = set()
        self._readers: dict[str, PartReader] = {}
        self._params: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # uint8 parts: scale, shift
        self._pid = os.getpid()
        self.refresh()

    def __repr__(self) -> str:
        return (
            f"EmbeddingStore({str(self.path)!r}, teacher={self.spec.teacher!r}, "
            f"backend={self.backend!r}, tracks={len(self)})"
        )

    # ---- metadata ---------------------------------------------------------------------
    def refresh(self) -> None:
        """Re-read ``parts.json`` and load the index of what was committed since the last look.

        Format 1: a listed part whose JSON index is missing goes to :attr:`missing_parts`. A part
        index (format 1) or index segment (format 2, keyed by its part range) that is missing
        (format 2), malformed or hostile (bad names, types or sizes) is refused and goes to
        :attr:`refused_parts` with the reason. Their tracks are absent; ``verify`` names them.
        A segment removed by a concurrent commit (merged into a newer one) makes this re-read
        ``parts.json``.

        Raises:
            StoreError: ``parts.json`` itself is malformed or names something that is not a part.
        """
        for attempt in range(20):
            text = self._read_catalog()
            fmt, names, rows = parse_catalog(text, where=self.location.join(PARTS_FILE))
            if fmt == 1:
                index, missing, refused = load_v1(self.location, self.spec, self.backend, names, self._cache)
                break
            index, gone, refused = load_v2(self.location, self.spec, self.backend, rows, self._cache)
            if gone and attempt < 19 and self._read_catalog() != text:  # replaced meanwhile: read it again
                continue
            missing = []
            refused.update({r.label: f"index segment {INDEX_DIR}/{r.file} is missing" for r in gone})
            index = self._with_commits(index, refused)
            if self.location.fs is None or attempt == 19 or self._read_catalog() == text:
                break  # an object store compacted meanwhile (parts.json first, then commits go): read again
        self._index = index
        self.missing_parts, self.refused_parts = missing, refused
        news = [n for n in [*missing, *refused] if n not in self._warned]
        if news:
            self._warned.update(news)
            log.warning("store %s: parts listed but missing or refused: %s (run `pipeline store verify`)",
                        self.path, ", ".join(news))

    def _with_commits(self, index: StoreIndex, refused: dict[str, str]) -> StoreIndex:
        """``index`` and the parts committed as objects (``commits/``, see :mod:`.remote`) after it.

        Refused commit segments go to ``refused``. Parts are in part-number order, so the copy
        of a track in the lower part number is the one read.
        """
        if self.location.local is not None and not self.location.exists(COMMITS_DIR):
            return index
        segments, bad = load_commits(self.location, self.spec, self.backend, index.part_seqs(), self._cache)
        refused.update(bad)
        if not segments and not bad:
            return index
        listed = list(index.listed) + [part_name(seg.first) for seg in segments] + sorted(bad)
        return StoreIndex(INDEX_FORMAT, list(index.rows), [*index.segments, *segments], listed=listed)

    def remember_commit(self, segment: Segment) -> None:
        """Keep ``segment``, just committed as an object by this process (:meth:`refresh` need not read it)."""
        self._cache[f"{COMMITS_DIR}/{segment.file}"] = segment

    def _read_catalog(self) -> str:
        try:
            return self.location.read_text(PARTS_FILE)
        except FileNotFoundError:
            return catalog_text([])

    def remember(self, segment: Segment) -> None:
        """Keep ``segment`` (just written by this process) so that :meth:`refresh` need not read it back."""
        if self._index.format != 1:
            self._cache[segment.file] = segment

    def track_ids(self) -> list[str]:
        """Track ids in commit order."""
        return list(self._index)

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._index

    def __len__(self) -> int:
        return len(self._index)

    def entry(self, track_id: str) -> TrackEntry:
        """Where ``track_id``'s frames are.

        Raises:
            StoreError: naming the track and the store when it is absent.
        """
        entry = self._index.get(track_id)
        if entry is None:
            raise StoreError(
                f"track {track_id!r} is not in the store {self.path} ({len(self)} tracks); "
                f"{self.spec.fill_hint(one=True)}, "
                "or check the store path"
            )
        return entry

    def parts(self) -> Sequence[PartIndex]:
        """Committed parts in commit order (each built when it is reached: a lazy sequence)."""
        return _LazyParts(self._index)

    def listed_parts(self) -> list[str]:
        """Part names as listed in ``parts.json`` (including any whose index is missing)."""
        return list(self._index.listed)

    @property
    def index(self) -> StoreIndex:
        """The merged index (read-only use)."""
        return self._index

    def expected_audio_sha(self, track_id: str) -> str:
        """The source-audio sha256 recorded for ``track_id`` ("" when it is not stored)."""
        entry = self._index.get(track_id)
        return entry.audio_sha256 if entry is not None else ""

    # ---- frames -----------------------------------------------------------------------
    def part_reader(self, part: str) -> PartReader:
        """The (lazily opened, per-process) reader of ``part``."""
        if os.getpid() != self._pid:  # forked: never reuse the parent's handles
            self._readers = {}
            self._pid = os.getpid()
        reader = self._readers.get(part)
        if reader is None:
            info = self._index.part(part, entries=False)
            if info is None:
                raise StoreError(f"part {part!r} is not committed in store {self.path}")
            backend = get_backend(info.backend)
            where = self.location.join(f"{PARTS_DIR}/{info.file}")
            if info.file != info.name + backend.suffix:
                raise StoreError(
                    f"part {part} of {self.path}: data file {info.file!r} is not {info.name}{backend.suffix}"
                )
            reader = backend.open_part(self.location, f"{PARTS_DIR}/{info.file}", self.layout)
            found = (reader.n_frames, reader.dim, np.dtype(reader.dtype))
            if found != (info.n_frames, self.spec.dim, np.dtype(self.spec.dtype)) or info.dim != self.spec.dim:
                reader.close()
                raise StoreError(
                    f"part data {where} is {found[:2]} {found[2]}, but its index and teacher.json say "
                    f"({info.n_frames}, {self.spec.dim}) {self.spec.dtype}; run `pipeline store verify`"
                )
            self._readers[part] = reader
        return reader

    def read(self, track_id: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Frames ``[start, stop)`` of a track (clipped to its length, like a slice).

        Returns:
            (frames, dim) array in the stored dtype (float16 by default; int16 for audio), or
            float32 ``codes * scale + shift`` for the 8-bit form (``dtype: uint8``).
        """
        frames = self.read_stored(track_id, start, stop)
        if not self.spec.quantised:
            return frames
        scale, shift = self.quant_params(self.entry(track_id).part)
        return dequantise(frames, scale, shift)

    def quant_params(self, part: str) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, shift)``, (dim,) float32, of a part of an 8-bit store (frames = codes * scale + shift).

        Raises:
            StoreError: the store is not 8-bit, or the part's index lacks its parameters.
        """
        params = self._params.get(part)
        if params is None:
            info = self._index.part(part, entries=False)
            if not self.spec.quantised or info is None or info.scale is None or info.shift is None:
                raise StoreError(f"part {part} of {self.path} has no quantisation parameters in its index; "
                                 "run `pipeline store verify`")
            params = self._params[part] = (info.scale, info.shift)
        return params

    def read_stored(self, track_id: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """As :meth:`read`, but in the stored dtype (an 8-bit store's uint8 codes as they are)."""
        entry = self.entry(track_id)
        if start < 0 or (stop is not None and stop < 0):
            raise StoreError(f"read of {track_id!r}: start/stop must be >= 0, got {start}, {stop}")
        stop = entry.n_frames if stop is None else min(int(stop), entry.n_frames)
        start = min(int(start), stop)
        if start == stop:
            return np.zeros((0, self.spec.dim), dtype=self.spec.dtype)  # dequantises to float32
        reader = self.part_reader(entry.part)
        try:
            frames = reader.read(entry.offset + start, entry.offset + stop)
        except Exception as exc:  # noqa: BLE001 - any decoder failure of a damaged chunk
            raise StoreError(
                f"track {track_id!r} in {self.path}: frames [{start}, {stop}) unreadable "
                f"({type(exc).__name__}: {str(exc)[:200]}); run `pipeline store verify`"
            ) from None
        if frames.shape != (stop - start, self.spec.dim):
            raise StoreError(f"track {track_id!r} in {self.path}: got {frames.shape} rows for [{start}, {stop})")
        if frames.dtype.kind == "f" and not np.isfinite(frames).all():
            raise StoreError(
                f"track {track_id!r} in {self.path} holds NaN or Inf frames; the store is damaged "
                "(run `pipeline store verify`) or re-extract the track"
            )
        return frames

    def frame_times(self, track_id: str) -> np.ndarray:
        """Center time of every frame in seconds, float64 (n_frames,); clip-level: duration / 2."""
        entry = self.entry(track_id)
        return self.spec.axis.times(entry.n_frames, clip_seconds=entry.duration)

    def frame_range(self, track_id: str, t0: float, t1: float) -> tuple[int, int]:
        """Indices ``[i0, i1)`` of the frames whose centers fall in ``[t0, t1)`` seconds."""
        return self.spec.axis.index_range(t0, t1, self.entry(track_id).n_frames)

    def read_window(self, track_id: str, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Frames whose centers fall in ``[t0, t1)`` seconds, and their center times.

        Clip-level stores return their one frame whatever the window. A window no longer
        than the chunk touches at most two chunks.

        Returns:
            ``(frames (k, dim) stored dtype (8-bit form: float32), times (k,) float64 seconds)``.
        """
        i0, i1 = self.frame_range(track_id, t0, t1)
        frames = self.read(track_id, i0, i1)
        if self.spec.clip_level:
            return frames, self.frame_times(track_id)[i0:i1]
        return frames, self.spec.axis.times(i1 - i0, i0)

    # ---- writing and upkeep -----------------------------------------------------------
    def writer(self, *, part_tracks: int = 256, part_bytes: int = 256 << 20,
               coded: tuple[np.ndarray, np.ndarray] | None = None) -> PartWriter:
        """A new :class:`PartWriter` (one per process or worker; an object store's: :class:`ObjectPartWriter`;
        ``coded``: see :class:`PartWriter`)."""
        if self.location.local is None:
            return ObjectPartWriter(self, part_tracks=part_tracks, part_bytes=part_bytes, coded=coded)
        return PartWriter(self, part_tracks=part_tracks, part_bytes=part_bytes, coded=coded)

    def clean_tmp(self) -> list[str]:
        """Remove leftovers of interrupted writers (dead writers only); returns what was removed."""
        if self.mode != "a":
            raise StoreError(f"store {self.path} is open read-only; open it with mode='a' to clean it")
        if self.location.local is None:
            return []  # an object store: uncommitted objects are never listed (verify notes them)
        removed = clean_tmp(self.location.local)
        self.refresh()
        return removed

    def verify(self, *, checksums: bool = True) -> "VerifyReport":
        """Recompute checksums and check index <-> data consistency (see :mod:`.verify`)."""
        return verify_store(self, checksums=checksums)

    def verify_with_audio_cache(self, *, checksums: bool = True) -> list["VerifyReport"]:
        """Reports for this store and, when it has one, its audio cache ``<store>/audio`` (in that order).

        An audio cache that cannot be opened (damaged ``teacher.json``, a symlink out of the
        store) is a problem of its report, not an exception.
        """
        reports = [verify_store(self, checksums=checksums)]
        if self.spec.kind != "embedding" or not self.location.exists(f"{AUDIO_CACHE}/{TEACHER_FILE}"):
            return reports
        where = self.location.join(AUDIO_CACHE)
        try:
            self.location.contained(AUDIO_CACHE)
            cache = open_store(where)
        except PipelineError as exc:
            return reports + [VerifyReport(store=str(where), problems=[f"the audio cache cannot be opened: {exc}"])]
        return reports + [verify_store(cache, checksums=checksums)]

    def close(self) -> None:
        """Close open part handles (they reopen on the next read)."""
        for reader in self._readers.values():
            reader.close()
        self._readers = {}

    def disk_usage(self) -> tuple[int, int]:
        """``(files, bytes)`` of this store on a local disk, nested stores (``audio/``) excluded."""
        root = self.location.local_path("")
        if root is None:
            return self._remote_usage()
        files = size = 0
        for folder, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not (Path(folder) / d / TEACHER_FILE).exists() and d != TMP_DIR]
            for name in names:
                files += 1
                size += (Path(folder) / name).stat().st_size
        return files, size

    def _remote_usage(self) -> tuple[int, int]:
        """``(files, bytes)`` of a store behind a URL (one listing), nested stores and ``tmp/`` excluded."""
        fs, base = self.location.fs, self.location.root
        listing = fs.find(base, detail=True)
        rels = {path[len(base):].lstrip("/"): info for path, info in listing.items()}
        nested = [rel[: -len(TEACHER_FILE)] for rel in rels if rel.endswith("/" + TEACHER_FILE)]
        skip = tuple(nested) + (f"{TMP_DIR}/",)
        kept = [info for rel, info in rels.items() if not rel.startswith(skip)]
        return len(kept), int(sum(int(info.get("size") or 0) for info in kept))

    def __getstate__(self) -> dict[str, Any]:  # picklable for workers; never ships open handles
        state = dict(self.__dict__)
        state["_readers"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()


class _LazyParts(Sequence[PartIndex]):
    """The committed parts of an index, each :class:`PartIndex` built when it is reached."""

    def __init__(self, index: StoreIndex) -> None:
        self._index = index
        self._names = index.part_names()

    def __len__(self) -> int:
        return len(self._names)

    def __getitem__(self, at):  # noqa: ANN001, ANN204 - int or slice, as a list
        if isinstance(at, slice):
            return [self._index.part(n) for n in self._names[at]]
        return self._index.part(self._names[at])

    def __iter__(self) -> Iterator[PartIndex]:
        for name in self._names:
            yield self._index.part(name)  # type: ignore[misc]


def open_store(path_or_url: str | os.PathLike, *, mode: str = "r") -> EmbeddingStore:
    """Open an existing store, reading only its JSON metadata.

    Args:
        path_or_url: store folder, or an fsspec URL (``file://...``, ``s3://...``).
        mode: ``"r"`` (read) or ``"a"`` (read and append; a URL's writer is the object-store one, :mod:`.remote`).

    Raises:
        StoreError: no store there, or damaged metadata.
        FileFault: the object store refused the request (no bucket, credentials): one line.
    """
    if isinstance(path_or_url, EmbeddingStore):
        path_or_url = path_or_url.path
    if mode not in ("r", "a"):
        raise StoreError(f"store mode {mode!r} must be 'r' or 'a'")
    location = Location(path_or_url)
    try:
        with object_faults(str(location), doing=f"reading {TEACHER_FILE}", kept="nothing was changed",
                           passthrough=(FileNotFoundError, NotADirectoryError)):
            text = _teacher_text(location)
    except (FileNotFoundError, NotADirectoryError):
        raise StoreError(
            f"no embedding store at {location}: {TEACHER_FILE} is missing; "
            "run `pipeline extract` first or check the path"
        ) from None
    spec, layout = read_teacher_json(text, where=location.join(TEACHER_FILE))
    if layout.backend not in BACKENDS:
        raise StoreError(
            f"{location.join(TEACHER_FILE)}: unknown store backend {layout.backend[:40]!r}; "
            f"this version reads {', '.join(BACKENDS.names())}"
        )
    return EmbeddingStore(location, spec, layout, mode)


def _teacher_text(location: Location) -> str:
    """``teacher.json``'s text; FileNotFoundError when absent (an object store's missing bucket included)."""
    if location.local is None and not location.exists(TEACHER_FILE):
        raise FileNotFoundError(location.join(TEACHER_FILE))
    return location.read_text(TEACHER_FILE)


def create_store(
    path: str | os.PathLike,
    spec: StoreSpec,
    *,
    backend: str = "zarr",
    overwrite: bool = False,
    chunk_frames: int | None = None,
    compression: str = "none",
) -> EmbeddingStore:
    """Create a store, or reopen an existing one with the same spec for appending (resume).

    Args:
        path: local folder of the store, or a URL (``s3://...``: objects of :mod:`.remote`).
        spec: what the frames are.
        backend: ``zarr`` (default) or ``hdf5`` (``memmap`` is written by exports).
        overwrite: delete an existing store at ``path`` first.
        chunk_frames: frames per chunk (default :func:`default_chunk_frames`: ~512 KiB, and
            never shorter than a 30 s window).
        compression: ``none`` (default) or ``zstd``.

    Raises:
        ProvenanceError: a store exists there with another spec (every difference is named).
        StoreError: a store exists with another backend or chunking, or ``path`` is a
            non-empty folder that is not a store.
    """
    layout = _layout(spec, backend, chunk_frames, compression)
    if is_url(path):
        return _create_object_store(str(path), spec, layout, overwrite=overwrite, chunk_frames=chunk_frames)
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise StoreError(f"store path {root} is a file; use another path")
    if overwrite and (root / TEACHER_FILE).is_file():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    # Check and initialise under the store lock: two extractors starting at once must
    # not see each other's half-created folder as "not a store".
    with store_lock(root):
        if not (root / TEACHER_FILE).is_file():
            return _init_local_store(root, spec, layout)
    store = open_store(root, mode="a")
    _check_resumable(store, spec, backend, chunk_frames)
    store.clean_tmp()
    log.info("resuming store %s: %d tracks in %d parts", root, len(store), len(store.parts()))
    return store


def _layout(spec: StoreSpec, backend: str, chunk_frames: int | None, compression: str) -> StoreLayout:
    """The layout a new store gets (the backend, chunking and compression checked first).

    Raises:
        UnknownNameError: an unknown backend.
        StoreError: an unknown compression or chunk_frames < 1.
    """
    get_backend(backend)
    if compression not in COMPRESSIONS:
        raise StoreError(f"store compression {compression!r} is not one of: {', '.join(COMPRESSIONS)}")
    if chunk_frames is not None and int(chunk_frames) < 1:
        raise StoreError(f"chunk_frames must be >= 1, got {chunk_frames!r}")
    return StoreLayout(backend, int(chunk_frames or default_chunk_frames(spec)), compression)


def _init_local_store(root: Path, spec: StoreSpec, layout: StoreLayout) -> EmbeddingStore:
    """Write an empty store into ``root`` (held under the store lock by the caller).

    Raises:
        StoreError: ``root`` holds files that are not a store's.
    """
    foreign = [p.name for p in root.iterdir() if p.name != LOCK_FILE]
    if foreign:
        raise StoreError(
            f"{root} exists and is not an embedding store (no {TEACHER_FILE}; holds "
            f"{', '.join(sorted(foreign)[:3])}); refusing to use it. Use another path"
        )
    (root / PARTS_DIR).mkdir(exist_ok=True)
    (root / INDEX_DIR).mkdir(exist_ok=True)
    write_atomic(root / PARTS_FILE, catalog_text([]))
    write_atomic(root / TEACHER_FILE, teacher_json_text(spec, layout))
    log.info("created %s store %s for %s (chunk %d frames)", layout.backend, root, spec.teacher, layout.chunk_frames)
    return EmbeddingStore(Location(root), spec, layout, "a")


def _create_object_store(url: str, spec: StoreSpec, layout: StoreLayout, *, overwrite: bool,
                         chunk_frames: int | None) -> EmbeddingStore:
    """:func:`create_store` for a URL (``s3://...``): the objects of :mod:`.remote`, checked as locally.

    Raises:
        FileFault: the bucket or credentials refused (one line).
        ProvenanceError, StoreError: as :func:`create_store`.
    """
    location = Location(url)
    with object_faults(url, doing="creating the store", kept="nothing was written"):
        if overwrite and location.exists(TEACHER_FILE):
            remove_object_store(location)
        if init_object_store(location, teacher_json_text(spec, layout), catalog_text([])):
            log.info("created %s store %s for %s (chunk %d frames)", layout.backend, url, spec.teacher,
                     layout.chunk_frames)
            return EmbeddingStore(location, spec, layout, "a")
    store = open_store(url, mode="a")
    _check_resumable(store, spec, layout.backend, chunk_frames)
    log.info("resuming store %s: %d tracks in %d parts", url, len(store), len(store.parts()))
    return store


def _check_resumable(store: EmbeddingStore, spec: StoreSpec, backend: str, chunk_frames: int | None) -> None:
    """Refuse to append to ``store`` with another spec, backend or chunking than asked for.

    Raises:
        ProvenanceError: naming every difference of the spec.
        StoreError: another backend or chunk size.
    """
    diffs = store.spec.differences(spec)
    if diffs:
        raise ProvenanceError(
            f"store {store.path} holds {store.spec.teacher} frames made with other settings than requested "
            f"(stored != requested): {'; '.join(diffs)}. Use another store path, or --overwrite to replace it"
        )
    if store.backend != backend:
        raise StoreError(
            f"store {store.path} uses the {store.backend!r} backend, not {backend!r}; use "
            f"`pipeline store convert` or another path, or --overwrite"
        )
    if chunk_frames is not None and int(chunk_frames) != store.layout.chunk_frames:
        raise StoreError(
            f"store {store.path} has chunks of {store.layout.chunk_frames} frames, not {chunk_frames}; "
            "leave chunk_frames unset to append, or use another path"
        )
