"""``pipeline store compact``: fold an object store's commits into one index segment; clear dead claims.

Every part an object-store writer commits adds one ``commits/idx-NNNNNN-NNNNNN.npz`` (:mod:`.remote`),
and a reader opens the store by listing ``commits/`` and reading each of them: thousands of GETs
for a store of a million tracks. Compaction, run by one process while writers may go on:

1. reads the index (``parts.json``'s segments and every commit), refusing a store with missing
   or refused parts (nothing is dropped silently);
2. uploads the merge of all of it as one segment ``index/idx-<first>-<last>.npz`` (new name, or
   the same content);
3. replaces ``parts.json`` with that one row: the switch (one PUT, atomic in S3);
4. deletes what the new segment covers: the folded commit objects, their claims and the old
   index segments. A reader that listed them before the switch re-reads ``parts.json``.

Writers are never blocked: a part committed during compaction, even one whose number is below
the folded range (claimed earlier, uploaded slowly), stays in ``commits/`` and readers still load
it (they read every commit whose part the index does not hold).

Claims with no commit older than ``dead_after`` seconds are a writer that died mid-part
(``kill -9``, a lost machine): their data objects and the claim are deleted. A writer alive but
slower than ``dead_after`` would lose that part (its rerun extracts the tracks again), so the
default is a day. Run one compaction at a time.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from pipeline.errors import StoreError
from pipeline.stores.catalog import INDEX_DIR, SegmentRow, catalog_text
from pipeline.stores.index import PARTS_DIR, PARTS_FILE, part_name, part_seq
from pipeline.stores.location import Location
from pipeline.stores.protocol import CLAIMS_DIR, COMMITS_DIR
from pipeline.stores.remote import commit_numbers, object_faults, uncommitted_claims
from pipeline.stores.segment import SEGMENT_FILE, Segment, merge_segments, rehash, segment_bytes, segment_file
from pipeline.stores.store import EmbeddingStore, open_store

log = logging.getLogger(__name__)

#: a claim with no commit is a dead writer's after this many seconds (``--dead-after``)
DEAD_AFTER_S = 86_400.0


@dataclass(frozen=True)
class CompactResult:
    """What :func:`compact_store` did."""

    url: str
    tracks: int
    parts: int
    commits_folded: int
    index_files_removed: int
    dead_claims: tuple[str, ...]
    live_claims: int

    def summary(self) -> str:
        """One line for the CLI."""
        dead = f"; removed {len(self.dead_claims)} dead claim(s) and their objects" if self.dead_claims else ""
        live = f"; {self.live_claims} claim(s) younger than --dead-after kept" if self.live_claims else ""
        if not self.commits_folded:
            return f"{self.url}: {self.tracks} tracks in {self.parts} parts; no commit objects to fold{dead}{live}"
        return (f"{self.url}: {self.tracks} tracks in {self.parts} parts, one index segment; folded "
                f"{self.commits_folded} commit object(s), replaced {self.index_files_removed} older segment(s)"
                f"{dead}{live}")


def compact_store(url: str, *, dead_after: float = DEAD_AFTER_S, now: float | None = None) -> CompactResult:
    """Fold the commits of the object store at ``url`` into one index segment (see the module).

    Args:
        url: an ``s3://`` (any fsspec) store URL.
        dead_after: seconds after which a claim without a commit is a dead writer's.
        now: the current time (seconds since the epoch; default ``time.time()``).

    Raises:
        StoreError: a local store (its commits already merge segments), or parts missing or refused.
        FileFault: the object store refused a request (one line; the store is readable as it was).
    """
    if "://" not in str(url):
        raise StoreError(f"{url} is a local store: each commit already merges its index (`pipeline store "
                         "upgrade` rewrites it as one segment); compact works on s3:// stores")
    store = open_store(url, mode="a")
    with object_faults(str(url), doing="compacting the index",
                       kept="the store reads as before (parts.json is replaced last, in one PUT)"):
        return _compact(store, dead_after, time.time() if now is None else now)


def _compact(store: EmbeddingStore, dead_after: float, now: float) -> CompactResult:
    store.refresh()
    broken = [*store.missing_parts, *store.refused_parts]
    if broken:
        raise StoreError(f"store {store.path}: {len(broken)} part(s) missing or refused ({', '.join(broken[:3])}); "
                         "compaction would drop their tracks. Run `pipeline store verify` first")
    location, index = store.location, store.index
    covered = index.part_seqs()
    dead, live = _dead_claims(location, covered, dead_after, now)
    kept = index.segments[:len(index.rows)]
    folded = _foldable(index.segments[len(index.rows):], kept, live)
    removed = 0
    if folded:
        parts = [*kept, *folded]
        merged = rehash(merge_segments(parts) if len(parts) > 1 else parts[0])
        _publish(location, merged)
        removed = _remove_covered(location, merged, [r.file for r in index.rows])
    for name in dead:
        _remove_claim(location, name)
    result = CompactResult(str(store.path), index.rows_total(), len(covered), len(folded), removed,
                           tuple(dead), len(live))
    log.info("%s", result.summary())
    return result


def _foldable(commits: list[Segment], kept: list[Segment], live: list[int]) -> list[Segment]:
    """The commit segments that can join the index: above its last part and below every live claim,
    so that the merged segment's parts stay in increasing order (a part committed later, below
    the folded range, stays a commit object; readers load it all the same)."""
    last = max((s.last for s in kept), default=-1)
    barrier = min(live, default=1 << 62)
    return [s for s in commits if last < s.first < barrier]


def _publish(location: Location, merged: Segment) -> None:
    """Upload ``merged`` to ``index/`` and then switch ``parts.json`` to it."""
    location.fs.pipe_file(location.fs_path(f"{INDEX_DIR}/{merged.file}"), segment_bytes(merged))
    row = SegmentRow(merged.file, merged.first, merged.last, len(merged))
    location.fs.pipe_file(location.fs_path(PARTS_FILE), catalog_text([row]).encode("utf-8"))


def _remove_covered(location: Location, merged: Segment, before: list[str]) -> int:
    """Delete the commits, claims and old index segments that ``merged`` now holds; returns how many
    old index segments went."""
    held = {int(q) for q in merged.part_seq.tolist()}
    paths = [location.fs_path(f"{COMMITS_DIR}/{segment_file(q, q)}") for q in commit_numbers(location) if q in held]
    paths += [location.fs_path(f"{CLAIMS_DIR}/{n}") for n in location.listdir(CLAIMS_DIR) if part_seq(n) in held]
    old = [location.fs_path(f"{INDEX_DIR}/{f}") for f in before if f != merged.file and SEGMENT_FILE.fullmatch(f)]
    if paths or old:
        location.fs.rm(paths + old)
    return len(old)


def _dead_claims(location: Location, covered: set[int], dead_after: float,
                 now: float) -> tuple[list[str], list[int]]:
    """``(claims with no commit older than dead_after, part numbers of the younger ones)``."""
    dead, live = [], []
    for name in uncommitted_claims(location, covered):
        age = _age_s(location.fs.info(location.fs_path(f"{CLAIMS_DIR}/{name}")), now)
        if age is not None and age >= dead_after:
            dead.append(name)
        else:
            live.append(part_seq(name) or 0)
    return dead, live


def _age_s(info: Mapping[str, Any], now: float) -> float | None:
    """Seconds since the object in ``info`` (an fsspec ``info`` dict) was written; None if not said."""
    stamp = info.get("LastModified", info.get("mtime", info.get("created")))
    if isinstance(stamp, datetime):
        return now - stamp.timestamp()
    if isinstance(stamp, (int, float)):
        return now - float(stamp)
    return None


def _remove_claim(location: Location, name: str) -> None:
    """Delete a dead writer's data objects (``parts/<name>.*``), then its claim."""
    seq = part_seq(name)
    prefix = location.fs_path(f"{PARTS_DIR}/{part_name(seq if seq is not None else -1)}")
    for path in location.fs.glob(prefix + ".*"):
        location.fs.rm(path, recursive=True)
    location.fs.rm(location.fs_path(f"{CLAIMS_DIR}/{name}"))
    log.info("store %s: removed the dead claim %s and its objects", location, name)
