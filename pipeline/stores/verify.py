"""``verify``: recompute every track's checksum and check the index against the data.

Checks, per store: every part listed in ``parts.json`` has its index and data; no track
id is listed twice. Per part: the data opens, its shape and dtype match the index and
``teacher.json``, every track's rows lie inside the array without overlapping another
track, and the sha256 of every track's frame bytes equals the one in the index. The part
is read chunk by chunk (NaN or Inf frames are findings too), so a chunk that fails to decode
(bad chunk checksum) names the tracks it holds and the others are still checked. Leftovers of interrupted writers are
reported as notes, not problems. :meth:`EmbeddingStore.verify_with_audio_cache
<pipeline.stores.store.EmbeddingStore.verify_with_audio_cache>` checks an embedding store and
the int16 audio cache extraction keeps inside it (``<store>/audio``), in one call.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import PipelineError
from pipeline.stores.backend import PartReader, get_backend
from pipeline.stores.index import PARTS_DIR, PartIndex, TrackEntry, part_name
from pipeline.stores.protocol import CLAIMS_DIR, TMP_DIR, StoreLike
from pipeline.stores.remote import uncommitted_claims

#: at most this many track ids are quoted per problem line
MAX_IDS = 20


def _ids(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:MAX_IDS])
    return shown + (f" and {len(ids) - MAX_IDS} more" if len(ids) > MAX_IDS else "")


@dataclass
class VerifyReport:
    """What :func:`verify_store` found.

    Attributes:
        store: the store's path or URL.
        parts, tracks, frames: what was checked.
        problems: one line per problem (empty when the store is clean).
        notes: harmless findings (leftovers of interrupted writers, removed by ``clean_tmp``).
        bad_tracks: part name -> ids of tracks whose frames are wrong or unreadable.
    """

    store: str
    parts: int = 0
    tracks: int = 0
    frames: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bad_tracks: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def summary(self) -> str:
        """One line: clean or how many problems."""
        state = "clean" if self.ok else f"{len(self.problems)} problem(s)"
        counts = f"{self.parts} parts, {self.tracks} tracks, {self.frames} frames"
        return f"{self.store}: {counts} checked: {state}"


def verify_store(store: StoreLike, *, checksums: bool = True) -> VerifyReport:
    """Check ``store`` (see the module docstring); never raises for a damaged store.

    Args:
        store: an open store.
        checksums: recompute the sha256 of every track (reads all frames).
    """
    store.refresh()
    report = VerifyReport(store=str(store.path))
    for name in store.missing_parts:
        report.problems.append(f"{name}: listed in parts.json but {PARTS_DIR}/{name}.json is missing")
    for name, reason in store.refused_parts.items():
        report.problems.append(f"{name}: refused ({reason}); its tracks are treated as absent")
    report.problems.extend(store.index.problems())  # ids the compact index could not find
    for track_id, kept, ignored in store.index.duplicates:
        where = f"twice in {kept}" if kept == ignored else f"in {kept} and again in {ignored}"
        if store.location.fs is not None and kept != ignored:  # two writers of an object store raced: harmless
            report.notes.append(f"track {track_id!r} was committed {where} by two writers; the copy in {kept} "
                                "is used and the other ignored")
        else:
            report.problems.append(f"track {track_id!r} is listed {where}; the copy in {kept} is used")
    for part in store.parts():
        report.parts += 1
        _verify_part(store, part, report, checksums=checksums)
    _note_leftovers(store, report)
    return report


def _bad(report: VerifyReport, part: str, ids: list[str]) -> None:
    report.bad_tracks.setdefault(part, []).extend(i for i in ids if i not in report.bad_tracks.get(part, []))


def _verify_part(store: StoreLike, part: PartIndex, report: VerifyReport, *, checksums: bool) -> None:
    spec = store.spec
    entries = sorted(part.entries, key=lambda e: (e.offset, e.n_frames))
    report.tracks += len(entries)
    all_ids = [e.track_id for e in entries]
    if part.backend != store.backend:
        report.problems.append(
            f"{part.name}: written by backend {part.backend!r}, store is {store.backend!r}"
        )
    if part.dim != spec.dim or part.dtype != spec.dtype:
        report.problems.append(
            f"{part.name}: index says ({part.dim}, {part.dtype}), "
            f"teacher.json says ({spec.dim}, {spec.dtype})"
        )
    try:
        reader = store.part_reader(part.name)
    except PipelineError as exc:
        report.problems.append(f"{part.name}: data cannot be opened ({exc}); tracks lost: {_ids(all_ids)}")
        _bad(report, part.name, all_ids)
        return
    if reader.n_frames != part.n_frames or reader.dim != spec.dim or reader.dtype != np.dtype(spec.dtype):
        report.problems.append(
            f"{part.name}: data is ({reader.n_frames}, {reader.dim}) {reader.dtype}, index says "
            f"({part.n_frames}, {spec.dim}) {spec.dtype}"
        )
    n_rows = min(reader.n_frames, part.n_frames)
    placed: list[TrackEntry] = []
    end = 0
    previous: TrackEntry | None = None
    for entry in entries:
        if entry.n_frames < 1 or entry.offset < 0 or entry.offset + entry.n_frames > n_rows:
            report.problems.append(
                f"{part.name}: track {entry.track_id!r} "
                f"rows [{entry.offset}, {entry.offset + entry.n_frames}) "
                f"lie outside the part's {n_rows} rows"
            )
            _bad(report, part.name, [entry.track_id])
            continue
        if previous is not None and entry.offset < end:
            report.problems.append(
                f"{part.name}: tracks {previous.track_id!r} and {entry.track_id!r} "
                f"overlap at row {entry.offset}"
            )
            _bad(report, part.name, [previous.track_id, entry.track_id])
        end = max(end, entry.offset + entry.n_frames)
        previous = entry
        placed.append(entry)
        report.frames += entry.n_frames
    if checksums:
        _verify_checksums(store, part, placed, reader, report)


def _verify_checksums(
    store: StoreLike,
    part: PartIndex,
    entries: list[TrackEntry],
    reader: PartReader,
    report: VerifyReport,
) -> None:
    """Hash every track from chunk-aligned blocks; undecodable blocks name their tracks."""
    block = get_backend(part.backend).chunk_rows(store.layout, part.n_frames)
    cache: dict[int, np.ndarray | str] = {}

    def get(index: int) -> np.ndarray | str:
        if index not in cache:
            lo = index * block
            try:
                cache[index] = np.ascontiguousarray(reader.read(lo, min(lo + block, reader.n_frames)))
            except Exception as exc:  # noqa: BLE001 - any decode failure is a finding
                cache[index] = f"{type(exc).__name__}: {exc}"
        return cache[index]

    failures: dict[str, list[str]] = {}
    mismatched: list[str] = []
    nonfinite: list[str] = []
    for entry in entries:
        first, last = entry.offset // block, (entry.offset + entry.n_frames - 1) // block
        for index in [i for i in cache if i < first]:
            del cache[index]
        digest = hashlib.sha256()
        error = None
        for index in range(first, last + 1):
            data = get(index)
            if isinstance(data, str):
                error = f"rows [{index * block}, {(index + 1) * block}) unreadable: {data}"
                break
            lo = max(entry.offset, index * block) - index * block
            hi = min(entry.offset + entry.n_frames, (index + 1) * block) - index * block
            digest.update(data[lo:hi].tobytes())
            if data.dtype.kind == "f" and not np.isfinite(data[lo:hi]).all() and entry.track_id not in nonfinite:
                nonfinite.append(entry.track_id)
        if error is not None:
            failures.setdefault(error, []).append(entry.track_id)
        elif digest.hexdigest() != entry.checksum:
            mismatched.append(entry.track_id)
    file = f"{PARTS_DIR}/{part.file}"
    for error, ids in failures.items():
        report.problems.append(f"{part.name} ({file}): {error}; tracks: {_ids(ids)}")
        _bad(report, part.name, ids)
    if mismatched:
        report.problems.append(
            f"{part.name} ({file}): checksum mismatch (frames changed) for tracks: {_ids(mismatched)}"
        )
        _bad(report, part.name, mismatched)
    if nonfinite:
        report.problems.append(f"{part.name} ({file}): NaN or Inf frames in tracks: {_ids(nonfinite)}")
        _bad(report, part.name, nonfinite)


def _note_leftovers(store: StoreLike, report: VerifyReport) -> None:
    for name in uncommitted_claims(store.location, store.index.part_seqs()):
        report.notes.append(f"{CLAIMS_DIR}/{name}: claimed by a writer that is running or died before its "
                            "commit; its objects are never read")
    root = store.location.root_path()
    if root is None:
        return
    listed = set(store.listed_parts())
    tmp = root / TMP_DIR
    for name in sorted(os.listdir(tmp)) if tmp.is_dir() else []:
        if not name.endswith(".lock"):
            report.notes.append(
                f"tmp/{name}: scratch of a writer (live or interrupted); clean_tmp removes dead ones"
            )
    parts = root / PARTS_DIR
    suffixes = (".json", get_backend(store.backend).suffix)
    for name in sorted(os.listdir(parts)) if parts.is_dir() else []:
        stem = name.split(".", 1)[0]
        if stem not in listed:
            report.notes.append(
                f"{PARTS_DIR}/{name}: not committed (an interrupted writer); clean_tmp removes it"
            )
        elif name not in {stem + s for s in suffixes}:
            report.notes.append(f"{PARTS_DIR}/{name}: unexpected file")
