"""Index segments: the compact index of a run of consecutive parts, as arrays in one ``.npz``.

A segment holds, for every track of its parts, in commit order (part, then offset):
the part it is in, its first row and row count, duration, frame checksum, audio sha256
and id; plus the ids' 64-bit hashes sorted (``lookup.hash``) with the row of each
(``lookup.row``), so ``id in store`` is one ``np.searchsorted`` per segment. Nothing is
pickled: the file is a ZIP of ``.npy`` arrays (``np.load(path)`` reads it) plus
``meta.json``. Loading checks every array's dtype and shape *before* reading it and then
every value with whole-array operations (:func:`load_segment`).
"""
from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from dataclasses import dataclass, replace
from typing import IO, Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from pipeline.errors import StoreError
from pipeline.stores.backend import get_backend
from pipeline.stores.columns import TextColumn, check_id_column, concat_columns, id_hash
from pipeline.stores.index import MAX_PART_ROWS, PartIndex, TrackEntry, part_name
from pipeline.stores.quant import check_params, is_quantised
from pipeline.stores.spec import MAX_DIM

#: ``idx-000000-000063.npz``: the segment covering parts 0 to 63
SEGMENT_FILE = re.compile(r"idx-([0-9]{6,12})-([0-9]{6,12})\.npz")
SEGMENT_FORMAT = 2
#: the arrays of a segment: name -> (dtype, dimensions)
ARRAYS: dict[str, tuple[str, int]] = {
    "part.seq": ("<i8", 1), "part.rows": ("<i8", 1), "track.part": ("<i4", 1), "track.offset": ("<i8", 1),
    "track.frames": ("<i8", 1), "track.duration": ("<f8", 1), "lookup.hash": ("<u8", 1), "lookup.row": ("<i4", 1),
    "id.blob": ("|u1", 1), "id.ends": ("<i8", 1), "checksum.blob": ("|u1", 1), "checksum.ends": ("<i8", 1),
    "checksum.digests": ("|u1", 2), "audio.blob": ("|u1", 1), "audio.ends": ("<i8", 1), "audio.digests": ("|u1", 2),
    "part.scale": ("<f4", 2), "part.shift": ("<f4", 2),
}
META_KEYS = frozenset({"format", "first", "last", "backend", "dim", "dtype", "tracks", "parts"})
#: most tracks one segment may hold (row numbers are int32)
MAX_SEGMENT_TRACKS = (1 << 31) - 1
#: largest segment file read (about 100 M tracks); an object store's is fetched whole, so it is checked first
MAX_SEGMENT_BYTES = 16 << 30


def segment_file(first: int, last: int) -> str:
    """``idx-000000-000063.npz`` for parts 0..63."""
    return f"idx-{first:06d}-{last:06d}.npz"


@dataclass
class Segment:
    """The index of parts ``first..last`` (see the module docstring). Arrays are read-only views.

    Attributes:
        backend, dim, dtype: of every part in it.
        part_seq, part_rows: (k,) int64: each part's sequence number and array rows.
        track_part: (n,) int32 position in ``part_seq`` of each track (non-decreasing).
        offset, frames: (n,) int64 first row and row count; duration: (n,) float64 seconds.
        ids, checksum, audio: :class:`TextColumn` of n strings.
        lookup_hash: (n,) uint64 sorted hashes of the ids; lookup_row: (n,) int32 their rows.
        part_scale, part_shift: ``uint8`` segments only: (k, dim) float32 quantisation parameters of
            each part (:mod:`pipeline.stores.quant`); ``None`` otherwise.
    """

    backend: str
    dim: int
    dtype: str
    part_seq: np.ndarray
    part_rows: np.ndarray
    track_part: np.ndarray
    offset: np.ndarray
    frames: np.ndarray
    duration: np.ndarray
    ids: TextColumn
    checksum: TextColumn
    audio: TextColumn
    lookup_hash: np.ndarray
    lookup_row: np.ndarray
    part_scale: np.ndarray | None = None
    part_shift: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._bounds: np.ndarray | None = None

    @property
    def first(self) -> int:
        return int(self.part_seq[0])

    @property
    def last(self) -> int:
        return int(self.part_seq[-1])

    @property
    def file(self) -> str:
        return segment_file(self.first, self.last)

    def __len__(self) -> int:
        return len(self.track_part)

    def nbytes(self) -> int:
        """Bytes of the arrays held in memory."""
        plain = (self.part_seq, self.part_rows, self.track_part, self.offset, self.frames, self.duration,
                 self.lookup_hash, self.lookup_row)
        return int(sum(a.nbytes for a in plain)) + self.ids.nbytes() + self.checksum.nbytes() + self.audio.nbytes()

    # ---- lookups --------------------------------------------------------------------
    def find(self, key: bytes, hashed: int) -> int:
        """Row of the first track whose id is ``key`` (its hash ``hashed``), or -1."""
        at = int(np.searchsorted(self.lookup_hash, np.uint64(hashed)))
        while at < len(self.lookup_hash) and int(self.lookup_hash[at]) == hashed:
            row = int(self.lookup_row[at])
            if self.ids.key(row) == key:
                return row
            at += 1
        return -1

    def entry(self, row: int) -> TrackEntry:
        """The :class:`TrackEntry` of ``row``."""
        return TrackEntry(
            self.ids[row], part_name(int(self.part_seq[self.track_part[row]])), int(self.offset[row]),
            int(self.frames[row]), self.audio[row], float(self.duration[row]), self.checksum[row],
        )

    def part_bounds(self) -> np.ndarray:
        """(k + 1,) rows where each part's tracks start (and the end)."""
        if self._bounds is None:
            self._bounds = np.searchsorted(self.track_part, np.arange(len(self.part_seq) + 1), side="left")
        return self._bounds

    def entries(self, lo: int, hi: int) -> tuple[TrackEntry, ...]:
        """The :class:`TrackEntry` of rows ``[lo, hi)``, converted column by column."""
        names = [part_name(int(s)) for s in self.part_seq[self.track_part[lo:hi]]]
        columns = (self.ids.slice(lo, hi).strings(), names, self.offset[lo:hi].tolist(), self.frames[lo:hi].tolist(),
                   self.audio.slice(lo, hi).strings(), self.duration[lo:hi].tolist(),
                   self.checksum.slice(lo, hi).strings())
        return tuple(TrackEntry(*row) for row in zip(*columns))

    def part(self, position: int, *, entries: bool = True) -> PartIndex:
        """The :class:`PartIndex` of the part at ``position`` (``entries=False``: its header only)."""
        lo, hi = (int(b) for b in self.part_bounds()[position:position + 2])
        name = part_name(int(self.part_seq[position]))

        return PartIndex(
            name=name, seq=int(self.part_seq[position]), backend=self.backend,
            file=name + get_backend(self.backend).suffix, n_frames=int(self.part_rows[position]),
            dim=self.dim, dtype=self.dtype, entries=self.entries(lo, hi) if entries else (),
            scale=None if self.part_scale is None else self.part_scale[position],
            shift=None if self.part_shift is None else self.part_shift[position],
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array saved in the segment file."""
        out = {"part.seq": self.part_seq, "part.rows": self.part_rows, "track.part": self.track_part,
               "track.offset": self.offset, "track.frames": self.frames, "track.duration": self.duration,
               "lookup.hash": self.lookup_hash, "lookup.row": self.lookup_row}
        for name, column in (("id", self.ids), ("checksum", self.checksum), ("audio", self.audio)):
            out.update(column.arrays(name))
        if self.part_scale is not None and self.part_shift is not None:
            out.update({"part.scale": self.part_scale, "part.shift": self.part_shift})
        return out

    def meta(self) -> dict[str, Any]:
        return {"format": SEGMENT_FORMAT, "first": self.first, "last": self.last, "backend": self.backend,
                "dim": self.dim, "dtype": self.dtype, "tracks": len(self), "parts": len(self.part_seq)}


def _lookup(ids: TextColumn) -> tuple[np.ndarray, np.ndarray]:
    hashes = np.fromiter((id_hash(ids.key(i)) for i in range(len(ids))), dtype=np.uint64, count=len(ids))
    order = np.argsort(hashes, kind="stable")
    return hashes[order], order.astype(np.int32)


def build_segment(part: PartIndex) -> Segment:
    """The one-part segment of ``part`` (its entries in offset order)."""
    entries = sorted(part.entries, key=lambda e: (e.offset, e.n_frames))
    ids = TextColumn.build([e.track_id for e in entries], allow_digests=False)
    hashes, rows = _lookup(ids)
    return Segment(
        backend=part.backend, dim=part.dim, dtype=part.dtype,
        part_seq=np.array([part.seq], np.int64), part_rows=np.array([part.n_frames], np.int64),
        track_part=np.zeros(len(entries), np.int32), offset=np.array([e.offset for e in entries], np.int64),
        frames=np.array([e.n_frames for e in entries], np.int64),
        duration=np.array([e.duration for e in entries], np.float64), ids=ids,
        checksum=TextColumn.build([e.checksum for e in entries]),
        audio=TextColumn.build([e.audio_sha256 for e in entries]),
        lookup_hash=hashes, lookup_row=rows,
        part_scale=None if part.scale is None else np.asarray(part.scale, np.float32).reshape(1, -1),
        part_shift=None if part.shift is None else np.asarray(part.shift, np.float32).reshape(1, -1),
    )


def merge_segments(segments: Sequence[Segment]) -> Segment:
    """One segment holding ``segments`` (consecutive, in commit order) one after the other."""
    first = segments[0]
    shift = np.cumsum([0] + [len(s.part_seq) for s in segments[:-1]])
    starts = np.cumsum([0] + [len(s) for s in segments[:-1]])
    hashes = np.concatenate([s.lookup_hash for s in segments])
    rows = np.concatenate([s.lookup_row.astype(np.int64) + b for s, b in zip(segments, starts)])
    order = np.argsort(hashes, kind="stable")  # equal hashes keep commit order: the first copy wins
    if starts[-1] + len(segments[-1]) > MAX_SEGMENT_TRACKS:
        raise StoreError(f"an index segment may hold at most {MAX_SEGMENT_TRACKS} tracks")
    return Segment(
        backend=first.backend, dim=first.dim, dtype=first.dtype,
        part_seq=np.concatenate([s.part_seq for s in segments]),
        part_rows=np.concatenate([s.part_rows for s in segments]),
        track_part=np.concatenate([s.track_part + np.int32(k) for s, k in zip(segments, shift)]).astype(np.int32),
        offset=np.concatenate([s.offset for s in segments]), frames=np.concatenate([s.frames for s in segments]),
        duration=np.concatenate([s.duration for s in segments]),
        ids=concat_columns([s.ids for s in segments]), checksum=concat_columns([s.checksum for s in segments]),
        audio=concat_columns([s.audio for s in segments]), lookup_hash=hashes[order],
        lookup_row=rows[order].astype(np.int32), **_merged_params(segments),
    )


def _merged_params(segments: Sequence[Segment]) -> dict[str, np.ndarray | None]:
    """The quantisation parameters of merged ``segments`` (all of them have them, or none)."""
    have = [s.part_scale is not None and s.part_shift is not None for s in segments]
    if not any(have):
        return {"part_scale": None, "part_shift": None}
    if not all(have):
        raise StoreError("cannot merge index segments with and without quantisation parameters")
    return {"part_scale": np.concatenate([s.part_scale for s in segments]),  # type: ignore[misc]
            "part_shift": np.concatenate([s.part_shift for s in segments])}  # type: ignore[misc]


def write_members(handle: IO[bytes], meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``meta.json`` and ``arrays`` as an uncompressed npz to the open binary ``handle``."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        archive.writestr("meta.json", json.dumps(dict(meta)))
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def write_segment(handle: IO[bytes], segment: Segment) -> None:
    """Write ``segment`` (its ``meta.json`` and arrays) to the open binary ``handle``."""
    write_members(handle, segment.meta(), segment.arrays())


def segment_bytes(segment: Segment) -> bytes:
    """The file ``segment`` is written as (for one PUT to object storage)."""
    buffer = io.BytesIO()
    write_segment(buffer, segment)
    return buffer.getvalue()


def rehash(segment: Segment) -> Segment:
    """``segment`` with its lookup arrays recomputed from the ids (repairs a lookup that misses ids)."""
    hashes, rows = _lookup(segment.ids)
    return replace(segment, lookup_hash=hashes, lookup_row=rows)


def segment_writer(segment: Segment) -> Callable[[IO[bytes]], None]:
    """A callable writing ``segment`` to a handle (for :func:`~pipeline.stores.index.write_atomic`)."""
    return lambda handle: write_segment(handle, segment)


def _npy_header(head: bytes, name: str, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """``(shape, dtype, data offset)`` of the ``.npy`` header at the start of ``head``, checked against
    :data:`ARRAYS` (nothing is allocated from it before this check)."""
    dtype_name, ndim = ARRAYS[name]
    buffer = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(buffer)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(buffer)
    except (ValueError, SyntaxError, TypeError, EOFError) as exc:
        raise StoreError(f"{where}: array {name!r} has a bad header ({str(exc)[:80]}); refusing the index") from None
    if dtype != np.dtype(dtype_name) or fortran or len(shape) != ndim:
        raise StoreError(f"{where}: array {name!r} is {dtype} {shape}, expected {dtype_name} with {ndim} dims")
    return shape, dtype, buffer.tell()


def _npy(raw: bytes, name: str, where: str) -> np.ndarray:
    """The array in ``raw`` (``.npy`` bytes), checked against :data:`ARRAYS` before it is read."""
    shape, dtype, offset = _npy_header(raw[:65536], name, where)
    count = int(np.prod(shape, dtype=object))
    if len(raw) - offset != count * dtype.itemsize:
        raise StoreError(f"{where}: array {name!r} declares {shape} but holds {len(raw) - offset} bytes")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)


def _read_stored(handle: IO[bytes], info: zipfile.ZipInfo, size: int, where: str) -> np.ndarray:
    """A stored ``.npy`` member read straight into its array (one copy), its CRC checked.

    ``size`` is the file's real size: a member the central directory places beyond it is refused
    before anything is allocated.
    """
    name = info.filename[:-4]
    handle.seek(info.header_offset)
    local = handle.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise StoreError(f"{where}: member {info.filename!r} has no local header; refusing the index")
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    if start + info.file_size > size:
        raise StoreError(f"{where}: member {info.filename!r} ends past the file; refusing the index")
    handle.seek(start)
    head = handle.read(min(info.file_size, 65536))
    shape, dtype, offset = _npy_header(head, name, where)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if info.file_size - offset != nbytes:
        raise StoreError(f"{where}: array {name!r} declares {shape} but holds {info.file_size - offset} bytes")
    array = np.empty(shape, dtype=dtype)
    handle.seek(start + offset)
    view = array.reshape(-1).view(np.uint8).data
    done = 0
    while done < nbytes:
        got = handle.readinto(view[done:])  # type: ignore[attr-defined]
        if not got:
            raise StoreError(f"{where}: array {name!r} is truncated; refusing the index")
        done += got
    if zlib.crc32(view, zlib.crc32(head[:offset])) != info.CRC:
        raise StoreError(f"{where}: array {name!r} fails its CRC (damaged bytes); refusing the index")
    return array


def read_members(handle: IO[bytes], where: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``meta.json`` and the arrays of a segment file (stored members only: no zip bombs)."""
    try:
        size = handle.seek(0, io.SEEK_END)
        with zipfile.ZipFile(handle) as archive:
            meta: Any = None
            arrays: dict[str, np.ndarray] = {}
            for info in archive.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise StoreError(f"{where}: member {info.filename[:60]!r} is compressed; refusing the index")
                if info.filename == "meta.json" and info.file_size <= 4096:
                    meta = json.loads(archive.read(info))
                elif info.filename.endswith(".npy") and info.filename[:-4] in ARRAYS:
                    arrays[info.filename[:-4]] = _read_stored(handle, info, size, where)
                else:
                    raise StoreError(f"{where}: unexpected member {info.filename[:60]!r}; refusing the index")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, json.JSONDecodeError, UnicodeDecodeError, EOFError) as exc:
        raise StoreError(f"{where} is not a valid index segment ({str(exc)[:80]}); refusing it") from None
    if not isinstance(meta, dict):
        raise StoreError(f"{where}: meta.json is missing or not a JSON object; refusing the index")
    return meta, arrays


def _int(meta: Mapping[str, Any], key: str, where: str, high: int, low: int = 0) -> int:
    value = meta.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StoreError(f"{where}: {key} = {repr(value)[:40]} is not an integer in [{low}, {high}]")
    return value


def _check_meta(meta: Mapping[str, Any], where: str) -> tuple[int, int]:
    """(tracks, parts) of a checked ``meta.json``."""
    unknown = sorted(set(meta) - META_KEYS)
    if unknown:
        raise StoreError(f"{where} has unknown field(s) {', '.join(map(repr, unknown))}; refusing it")
    if meta.get("format") != SEGMENT_FORMAT:
        raise StoreError(f"{where}: segment format {str(meta.get('format'))[:20]!r} is not {SEGMENT_FORMAT}")
    for key in ("backend", "dtype"):
        if not isinstance(meta.get(key), str) or len(meta[key]) > 64:
            raise StoreError(f"{where}: {key} {str(meta.get(key))[:40]!r} is not a short string")
    _int(meta, "dim", where, MAX_DIM, low=1)
    return _int(meta, "tracks", where, MAX_SEGMENT_TRACKS), _int(meta, "parts", where, 10**9, low=1)


def _need(arrays: Mapping[str, np.ndarray], name: str, n: int, where: str) -> np.ndarray:
    array = arrays.get(name)
    if array is None or array.shape != (n,):
        found = None if array is None else array.shape
        raise StoreError(f"{where}: array {name!r} is {found}, expected ({n},); refusing the index")
    return array


def _check_parts(seq: np.ndarray, rows: np.ndarray, first: int, last: int, where: str) -> None:
    if (np.diff(seq) <= 0).any() or seq[0] != first or seq[-1] != last or seq[0] < 0 or seq[-1] > 10**12:
        raise StoreError(f"{where}: part numbers {seq[:3].tolist()}.. are not increasing from {first} to {last}")
    if (rows < 0).any() or (rows > MAX_PART_ROWS).any():
        at = int(np.argmax((rows < 0) | (rows > MAX_PART_ROWS)))
        raise StoreError(f"{where}: n_frames = {int(rows[at])} of {part_name(int(seq[at]))} is not an integer "
                         f"in [0, {MAX_PART_ROWS}]")


def _check_tracks(seg: Segment, where: str) -> None:
    n, k = len(seg), len(seg.part_seq)
    part = seg.track_part
    if n and (part.min() < 0 or part.max() >= k or (np.diff(part) < 0).any()):
        raise StoreError(f"{where}: track parts are not in commit order within [0, {k}); refusing the index")
    limit = seg.part_rows[part] if n else seg.offset
    bad = (seg.offset < 0) | (seg.frames < 1) | (seg.offset > limit) | (seg.frames > limit - seg.offset)
    if bad.any():
        row = int(np.argmax(bad))
        raise StoreError(f"{where}: n_frames of {seg.ids[row]!r} = {int(seg.frames[row])} at offset "
                         f"{int(seg.offset[row])} is not an integer in [1, {int(limit[row]) - int(seg.offset[row])}]")
    bad = ~np.isfinite(seg.duration) | (seg.duration < 0) | (seg.duration >= 1e9)
    if bad.any():
        row = int(np.argmax(bad))
        raise StoreError(f"{where}: duration of {seg.ids[row]!r} = {float(seg.duration[row])!r} is not a finite "
                         "number of seconds >= 0")
    rows = seg.lookup_row
    if n and (seg.lookup_hash[1:] < seg.lookup_hash[:-1]).any():
        raise StoreError(f"{where}: lookup hashes are not sorted; refusing the index")
    if n and (rows.min() < 0 or rows.max() >= n or (np.bincount(rows, minlength=n) != 1).any()):
        raise StoreError(f"{where}: lookup rows are not a permutation of the tracks; refusing the index")


def load_segment(handle: IO[bytes], *, where: str, first: int, last: int) -> Segment:
    """Read and check the segment in ``handle`` that ``parts.json`` lists for parts ``first..last``.

    Raises:
        StoreError: a malformed file, a wrong dtype or shape (checked before reading), an id that
            :func:`~pipeline.stores.index.check_track_id` refuses, rows outside their part, absurd sizes.
    """
    meta, arrays = read_members(handle, where)
    n, k = _check_meta(meta, where)
    if (meta.get("first"), meta.get("last")) != (first, last):
        raise StoreError(f"{where} covers parts {meta.get('first')!r}..{meta.get('last')!r}, parts.json says "
                         f"{first}..{last}")
    seg = Segment(
        backend=meta["backend"], dim=meta["dim"], dtype=meta["dtype"],
        part_seq=_need(arrays, "part.seq", k, where), part_rows=_need(arrays, "part.rows", k, where),
        track_part=_need(arrays, "track.part", n, where), offset=_need(arrays, "track.offset", n, where),
        frames=_need(arrays, "track.frames", n, where), duration=_need(arrays, "track.duration", n, where),
        ids=TextColumn.from_arrays(arrays, "id", n, where=where, max_chars=1024),
        checksum=TextColumn.from_arrays(arrays, "checksum", n, where=where, max_chars=256),
        audio=TextColumn.from_arrays(arrays, "audio", n, where=where, max_chars=256),
        lookup_hash=_need(arrays, "lookup.hash", n, where), lookup_row=_need(arrays, "lookup.row", n, where),
    )
    _load_params(seg, arrays, k, where)
    if seg.ids.digests is not None:
        raise StoreError(f"{where}: track ids must be text; refusing the index")
    _check_parts(seg.part_seq, seg.part_rows, first, last, where)
    check_id_column(seg.ids, where=where)
    _check_tracks(seg, where)
    return seg


def _load_params(seg: Segment, arrays: Mapping[str, np.ndarray], k: int, where: str) -> None:
    """Attach and check ``part.scale``/``part.shift``: required (k, dim) for ``uint8``, absent otherwise."""
    scale, shift = arrays.get("part.scale"), arrays.get("part.shift")
    if not is_quantised(seg.dtype):
        if scale is not None or shift is not None:
            raise StoreError(f"{where}: a {seg.dtype} segment holds quantisation parameters; refusing the index")
        return
    if scale is None or shift is None:
        raise StoreError(f"{where}: a uint8 segment lacks 'part.scale' or 'part.shift'; refusing the index")
    check_params(scale, shift, (k, seg.dim), where)
    seg.part_scale, seg.part_shift = scale, shift


def hash_problems(seg: Segment) -> list[str]:
    """Rows whose stored lookup hash is not the hash of their id (a lookup would miss them)."""
    stored = np.empty(len(seg), dtype=np.uint64)
    stored[seg.lookup_row] = seg.lookup_hash
    ids = seg.ids.strings()
    wrong = [track for track, h in zip(ids, stored.tolist()) if id_hash(track.encode("utf-8")) != h]
    if not wrong:
        return []
    shown = ", ".join(repr(i) for i in wrong[:20]) + (f" and {len(wrong) - 20} more" if len(wrong) > 20 else "")
    return [f"index segment {seg.file}: lookup hashes do not match the ids of tracks {shown}; "
            "they cannot be found (run `pipeline store upgrade` to rebuild the index)"]


def iter_parts(segments: Sequence[Segment]) -> Iterator[PartIndex]:
    """Every part of ``segments``, in commit order, built one at a time."""
    for seg in segments:
        for position in range(len(seg.part_seq)):
            yield seg.part(position)


def part_numbers(handle: IO[bytes], *, where: str) -> list[int]:
    """The part numbers of a segment file, reading its ``part.seq`` array alone."""
    try:
        with zipfile.ZipFile(handle) as archive:
            info = archive.getinfo("part.seq.npy")
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > 8 * 10**7 + 4096:
                raise StoreError(f"{where}: part.seq is compressed or too large")
            return _npy(archive.read(info), "part.seq", where).tolist()
    except (zipfile.BadZipFile, KeyError) as exc:
        raise StoreError(f"{where} is not a valid index segment ({str(exc)[:80]})") from None
