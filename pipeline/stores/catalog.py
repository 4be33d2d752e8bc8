"""The store's index in memory (:class:`StoreIndex`) and ``parts.json``, the commit point.

Format 2 (written since index format 2)::

    <store>/parts.json          {"format": 2, "segments": [{"file": "idx-000000-000063.npz",
                                                            "first": 0, "last": 63, "tracks": 16384}, ...]}
    <store>/index/idx-*.npz     index segments (:mod:`.segment`), each covering consecutive parts

Each commit writes one new segment holding its part, merged with the newest segments while
they are no larger (a binary counter: at most log2(parts) segments, every track rewritten at
most log2(parts) times), then replaces ``parts.json``. Superseded segments are removed after
the commit; a reader that finds one gone re-reads ``parts.json``.

Format 1 (``{"format": 1, "parts": [{"name": ...}]}`` plus ``parts/part-NNNNNN.json``, one JSON
row per track) is still read; ``pipeline store upgrade`` rewrites it as format 2.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from pipeline.errors import StoreError
from pipeline.stores.columns import id_hash
from pipeline.stores.index import PARTS_DIR, INDEX_FORMAT, PartIndex, TrackEntry, parse_parts_json, part_name
from pipeline.stores.segment import (
    MAX_SEGMENT_BYTES, SEGMENT_FILE, Segment, build_segment, hash_problems, load_segment, merge_segments,
)

if TYPE_CHECKING:
    from pipeline.stores.location import Location
    from pipeline.stores.spec import StoreSpec

INDEX_DIR = "index"
#: most parts one segment row of ``parts.json`` may cover
MAX_SEGMENT_SPAN = 10**7


@dataclass(frozen=True)
class SegmentRow:
    """One row of a format-2 ``parts.json``: the segment file and the parts it covers."""

    file: str
    first: int
    last: int
    tracks: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "first": self.first, "last": self.last, "tracks": self.tracks}

    @property
    def label(self) -> str:
        """``part-000000..part-000063`` (how a refused segment is named)."""
        return f"{part_name(self.first)}..{part_name(self.last)}"


def _segment_row(row: Any, where: str) -> SegmentRow:
    if not isinstance(row, dict) or set(row) != {"file", "first", "last", "tracks"}:
        raise StoreError(f"{where}: segment row {str(row)[:80]} is not {{file, first, last, tracks}}")
    match = SEGMENT_FILE.fullmatch(row["file"]) if isinstance(row["file"], str) else None
    if match is None or (int(match[1]), int(match[2])) != (row["first"], row["last"]):
        raise StoreError(f"{where}: segment file {str(row['file'])[:80]!r} is not idx-<first>-<last>.npz; "
                         "the store is damaged or hostile, refusing it")
    tracks = row["tracks"]
    if isinstance(tracks, bool) or not isinstance(tracks, int) or not 0 <= tracks < 1 << 31:
        raise StoreError(f"{where}: segment {row['file']} has tracks = {str(tracks)[:20]!r}")
    if not row["first"] <= row["last"] < row["first"] + MAX_SEGMENT_SPAN:
        raise StoreError(f"{where}: segment {row['file']} covers an absurd range of parts; refusing it")
    return SegmentRow(row["file"], row["first"], row["last"], tracks)


def parse_catalog(text: str, *, where: str) -> tuple[int, list[str], list[SegmentRow]]:
    """``(format, part names, segment rows)`` of ``parts.json`` text: names for format 1, rows for 2.

    Raises:
        StoreError: malformed JSON, an unknown format, bad names, overlapping or unordered segments.
    """
    try:
        data = json.loads(text)
        fmt = data.get("format", 1) if isinstance(data, dict) else None
    except json.JSONDecodeError as exc:
        raise StoreError(f"{where} is malformed ({exc}); run `pipeline store verify`") from None
    if fmt == 1:
        return 1, parse_parts_json(text, where=where), []
    if fmt != INDEX_FORMAT or set(data) != {"format", "segments"} or not isinstance(data["segments"], list):
        raise StoreError(f"{where}: index format {str(fmt)[:20]!r} or its fields are not readable by this version "
                         f"(format 1 or {INDEX_FORMAT} with 'segments'); refusing it")
    rows = [_segment_row(row, where) for row in data["segments"]]
    for before, after in zip(rows, rows[1:]):
        if after.first <= before.last:
            raise StoreError(f"{where}: segments {before.file} and {after.file} overlap or are out of order")
    return INDEX_FORMAT, [], rows


def catalog_text(rows: list[SegmentRow]) -> str:
    """Text of a format-2 ``parts.json`` listing ``rows``."""
    return json.dumps({"format": INDEX_FORMAT, "segments": [r.to_json() for r in rows]}, indent=1) + "\n"


def plan_commit(
    rows: list[SegmentRow], loaded: Mapping[str, Segment], new: Segment
) -> tuple[list[SegmentRow], Segment]:
    """The rows after committing ``new``, and the one segment to write.

    The newest loaded segments no larger than the growing new one are merged into it
    (binary counter), so a store keeps O(log parts) segments and a commit writes one file.
    """
    kept, merged = list(rows), [new]
    while kept and kept[-1].file in loaded and len(loaded[kept[-1].file]) <= sum(len(s) for s in merged):
        merged.insert(0, loaded[kept.pop().file])
    segment = merged[0] if len(merged) == 1 else merge_segments(merged)
    return kept + [SegmentRow(segment.file, segment.first, segment.last, len(segment))], segment


class StoreIndex:
    """The committed tracks: track id -> :class:`TrackEntry`, over loaded :class:`Segment` s.

    Lookups search the segments in commit order (``np.searchsorted`` on sorted id hashes);
    a track id seen in an earlier part wins, later copies are :attr:`duplicates` (only in a
    damaged store: commits dedupe under the store lock).

    Attributes:
        format: 1 (a JSON index per part) or 2 (segments).
        rows: format 2: the segment rows of ``parts.json``.
        segments: the loaded segments, in commit order.
        listed: part names ``parts.json`` lists (for a segment that could not be loaded: its range).
    """

    def __init__(self, fmt: int = INDEX_FORMAT, rows: list[SegmentRow] | None = None,
                 segments: list[Segment] | None = None, listed: list[str] | None = None) -> None:
        self.format = fmt
        self.rows = rows or []
        self.segments = segments or []
        self.listed = listed if listed is not None else [
            part_name(int(s)) for seg in self.segments for s in seg.part_seq
        ]
        self._duplicates: list[tuple[str, str, str]] | None = None
        self._part_at: dict[str, tuple[Segment, int]] | None = None

    # ---- tracks ---------------------------------------------------------------------
    def find(self, track_id: object) -> tuple[Segment, int] | None:
        """``(segment, row)`` of the first committed copy of ``track_id``, or None."""
        if not isinstance(track_id, str):
            return None
        key = track_id.encode("utf-8", "surrogatepass")
        hashed = id_hash(key)
        for seg in self.segments:
            row = seg.find(key, hashed)
            if row >= 0:
                return seg, row
        return None

    def contains_many(self, track_ids: Sequence[str]) -> np.ndarray:
        """(n,) bool: which of ``track_ids`` are committed (one vectorised search per segment)."""
        keys = [t.encode("utf-8", "surrogatepass") for t in track_ids]
        hashes = np.fromiter((id_hash(k) for k in keys), dtype=np.uint64, count=len(keys))
        found = np.zeros(len(keys), dtype=bool)
        for seg in self.segments:
            at = np.minimum(np.searchsorted(seg.lookup_hash, hashes), max(len(seg) - 1, 0))
            maybe = (seg.lookup_hash[at] == hashes) & ~found if len(seg) else found & False
            for i in np.flatnonzero(maybe).tolist():  # equal hashes: compare the ids themselves
                found[i] = seg.find(keys[i], int(hashes[i])) >= 0
        return found

    def get(self, track_id: str) -> TrackEntry | None:
        """The entry of ``track_id`` (None when absent)."""
        found = self.find(track_id)
        return None if found is None else found[0].entry(found[1])

    def __contains__(self, track_id: object) -> bool:
        return self.find(track_id) is not None

    def rows_total(self) -> int:
        """Track rows in all loaded segments (duplicates included)."""
        return sum(len(s) for s in self.segments)

    def __len__(self) -> int:
        return self.rows_total() - len(self.duplicates)

    def __iter__(self) -> Iterator[str]:
        """Track ids in commit order (first copies only)."""
        repeated = {track for track, _kept, _ignored in self.duplicates}
        seen: set[str] = set()
        for seg in self.segments:
            for track in seg.ids.strings():
                if track in repeated:
                    if track in seen:
                        continue
                    seen.add(track)
                yield track

    @property
    def duplicates(self) -> list[tuple[str, str, str]]:
        """``(track id, kept part, ignored part)`` for every later copy of a committed id."""
        if self._duplicates is None:
            self._duplicates = self._find_duplicates()
        return self._duplicates

    def _find_duplicates(self) -> list[tuple[str, str, str]]:
        if not self.segments:
            return []
        hashes = np.sort(np.concatenate([s.lookup_hash for s in self.segments]))
        repeated = np.unique(hashes[1:][hashes[1:] == hashes[:-1]])
        out = []
        for value in repeated.tolist():
            copies: dict[str, str] = {}
            for seg in self.segments:
                lo = int(np.searchsorted(seg.lookup_hash, np.uint64(value), side="left"))
                hi = int(np.searchsorted(seg.lookup_hash, np.uint64(value), side="right"))
                for at in range(lo, hi):
                    row = int(seg.lookup_row[at])
                    track, part = seg.ids[row], part_name(int(seg.part_seq[seg.track_part[row]]))
                    if track in copies:
                        out.append((track, copies[track], part))
                    else:
                        copies[track] = part
        return out

    # ---- parts ----------------------------------------------------------------------
    def _positions(self) -> dict[str, tuple[Segment, int]]:
        if self._part_at is None:
            self._part_at = {
                part_name(int(s)): (seg, k) for seg in self.segments for k, s in enumerate(seg.part_seq)
            }
        return self._part_at

    @property
    def parts(self) -> "PartsView":
        """Loaded parts by name (each :class:`PartIndex` is built when asked for)."""
        return PartsView(self)

    def part(self, name: str, *, entries: bool = True) -> PartIndex | None:
        """The :class:`PartIndex` of part ``name`` (None when not loaded; ``entries=False``: header only)."""
        found = self._positions().get(name)
        return None if found is None else found[0].part(found[1], entries=entries)

    def part_names(self) -> list[str]:
        """Loaded part names in commit order."""
        return list(self._positions())

    def totals(self) -> tuple[int, float]:
        """``(frames, seconds)`` over all loaded rows."""
        frames = sum(int(s.frames.sum()) for s in self.segments)
        return frames, float(sum(float(s.duration.sum()) for s in self.segments))

    def part_seqs(self) -> set[int]:
        """The part numbers the loaded segments hold."""
        return {int(q) for seg in self.segments for q in seg.part_seq.tolist()}

    def max_seq(self) -> int:
        """Highest part number listed (-1 for none)."""
        listed = [r.last for r in self.rows] + [int(s.part_seq[-1]) for s in self.segments]
        return max(listed, default=-1)

    def problems(self) -> list[str]:
        """Index problems only a full pass finds (ids whose lookup hash is wrong); for ``verify``."""
        return [p for seg in self.segments for p in hash_problems(seg)]

    def nbytes(self) -> int:
        """Bytes of the loaded index arrays."""
        return sum(s.nbytes() for s in self.segments)


class PartsView(Mapping[str, PartIndex]):
    """Read-only mapping part name -> :class:`PartIndex`, built on access."""

    def __init__(self, index: StoreIndex) -> None:
        self._index = index

    def __getitem__(self, name: str) -> PartIndex:
        part = self._index.part(name)
        if part is None:
            raise KeyError(name)
        return part

    def __iter__(self) -> Iterator[str]:
        return iter(self._index.part_names())

    def __len__(self) -> int:
        return len(self._index.part_names())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._index._positions()


# ---- loading ---------------------------------------------------------------------------
def _load_v1_part(location: "Location", spec: "StoreSpec", name: str) -> PartIndex:
    """The checked format-1 index of part ``name``; FileNotFoundError when its JSON is absent."""
    rel = f"{PARTS_DIR}/{name}.json"
    where = location.join(rel)
    try:
        data = json.loads(location.read_text(rel))
    except json.JSONDecodeError as exc:
        raise StoreError(f"part index {where} is not JSON ({exc}); run `pipeline store verify`") from None
    part = PartIndex.from_json(data, where=where, expect_name=name)
    if part.dim != spec.dim or part.dtype != spec.dtype:
        raise StoreError(
            f"part index {where} says ({part.dim}, {part.dtype}), teacher.json says ({spec.dim}, {spec.dtype})"
        )
    return part


def load_v1(location: "Location", spec: "StoreSpec", backend: str, names: list[str],
            cache: dict[str, Segment]) -> tuple[StoreIndex, list[str], dict[str, str]]:
    """A format-1 store's index (one JSON per part), merged into one segment for lookups.

    Returns:
        ``(index, missing part names, refused part name -> reason)``; ``cache`` keeps parsed parts.
    """
    missing, refused = [], {}
    for name in names:
        if name in cache:
            continue
        try:
            part = _load_v1_part(location, spec, name)
        except FileNotFoundError:
            missing.append(name)
            continue
        except StoreError as exc:
            refused[name] = str(exc)
            continue
        if part.backend != backend:
            refused[name] = f"written by backend {part.backend[:40]!r}, store is {backend!r}"
        elif part.entries:
            cache[name] = build_segment(part)
    loaded = [cache[n] for n in names if n in cache]
    merged = [merge_segments(loaded)] if len(loaded) > 1 else loaded
    return StoreIndex(1, [], merged, listed=list(names)), missing, refused


def _load_segment(location: "Location", row: SegmentRow, spec: "StoreSpec", backend: str) -> Segment:
    rel = f"{INDEX_DIR}/{row.file}"
    where = location.join(rel)
    with location.open_whole(rel, MAX_SEGMENT_BYTES) as handle:
        seg = load_segment(handle, where=where, first=row.first, last=row.last)
    if len(seg) != row.tracks:
        raise StoreError(f"{where} holds {len(seg)} tracks, parts.json says {row.tracks}")
    if (seg.dim, seg.dtype) != (spec.dim, spec.dtype) or seg.backend != backend:
        raise StoreError(f"index segment {where} says ({seg.dim}, {seg.dtype}) {seg.backend}, teacher.json says "
                         f"({spec.dim}, {spec.dtype}) {backend}")
    return seg


def load_v2(location: "Location", spec: "StoreSpec", backend: str, rows: list[SegmentRow],
            cache: dict[str, Segment]) -> tuple[StoreIndex, list[SegmentRow], dict[str, str]]:
    """A format-2 store's index: the segments ``rows`` lists (``cache``: file -> segment already loaded).

    Returns:
        ``(index, rows whose file is missing, refused part range -> reason)``.
    """
    missing, refused = [], {}
    for row in rows:
        if row.file in cache:
            continue
        try:
            cache[row.file] = _load_segment(location, row, spec, backend)
        except FileNotFoundError:
            missing.append(row)
        except StoreError as exc:
            refused[row.label] = str(exc)
    for stale in {key for key in cache if "/" not in key} - {r.file for r in rows}:  # commits/...: see .remote
        del cache[stale]
    listed: list[str] = []
    for row in rows:
        seg = cache.get(row.file)
        seqs = seg.part_seq.tolist() if seg is not None else range(row.first, row.last + 1)
        listed.extend(part_name(int(s)) for s in seqs)
    segments = [cache[r.file] for r in rows if r.file in cache]
    return StoreIndex(INDEX_FORMAT, list(rows), segments, listed=listed), missing, refused
