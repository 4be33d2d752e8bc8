"""``pipeline store upgrade``: rewrite a store's index in the current format (2: npz segments).

A format-1 store (one JSON object per track in ``parts/part-NNNNNN.json``) becomes one index
segment; a format-2 store is compacted into one segment with its lookup hashes recomputed.
Frames are not touched: the part data files stay as they are, so the upgraded store reads
identical frames. The switch is atomic (``parts.json`` is replaced last, under the store lock);
the old index files are removed afterwards.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import StoreError
from pipeline.stores.catalog import INDEX_DIR, SegmentRow, catalog_text
from pipeline.stores.index import PARTS_DIR, PARTS_FILE, write_atomic
from pipeline.stores.protocol import store_lock
from pipeline.stores.segment import merge_segments, rehash, segment_writer
from pipeline.stores.store import open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpgradeResult:
    """What :func:`upgrade_store` did: formats before/after, tracks, parts and index files."""

    path: str
    before: int
    after: int
    tracks: int
    parts: int
    files_before: int
    files_after: int

    def summary(self) -> str:
        """One line for the CLI."""
        return (f"{self.path}: index format {self.before} -> {self.after}, {self.tracks} tracks in {self.parts} "
                f"parts; {self.files_before} index file(s) replaced by {self.files_after}")


def upgrade_store(path: str | os.PathLike) -> UpgradeResult:
    """Rewrite the index of the local store at ``path`` as one format-2 segment.

    Raises:
        StoreError: the store is remote, or parts are missing or refused (``pipeline store verify``
            names them; an upgrade never drops tracks silently).
    """
    root = Path(path)
    if "://" in str(path):
        raise StoreError(f"store upgrade works on a local store, not {path}; copy it locally first")
    store = open_store(root, mode="a")
    with store_lock(root):
        store.refresh()
        index = store.index
        broken = [*store.missing_parts, *store.refused_parts]
        if broken:
            raise StoreError(
                f"store {root}: {len(broken)} part(s) missing or refused ({', '.join(broken[:3])}); the upgrade "
                "would drop their tracks. Run `pipeline store verify` and restore or re-extract them first"
            )
        old_files = _index_files(root, index.format, store.listed_parts(), [r.file for r in index.rows])
        rows: list[SegmentRow] = []
        if index.segments:
            segment = rehash(merge_segments(index.segments) if len(index.segments) > 1 else index.segments[0])
            (root / INDEX_DIR).mkdir(exist_ok=True)
            write_atomic(root / INDEX_DIR / segment.file, segment_writer(segment))
            rows = [SegmentRow(segment.file, segment.first, segment.last, len(segment))]
        write_atomic(root / PARTS_FILE, catalog_text(rows))  # the switch
        kept = {r.file for r in rows}
        for file in old_files:
            if file.name not in kept:
                file.unlink(missing_ok=True)
    result = UpgradeResult(str(root), index.format, 2, index.rows_total(), len(store.listed_parts()),
                           len(old_files), len(rows))
    log.info("%s", result.summary())
    return result


def _index_files(root: Path, fmt: int, parts: list[str], segments: list[str]) -> list[Path]:
    """The index files a store of format ``fmt`` has now (part JSONs or segments)."""
    if fmt == 1:
        return [root / PARTS_DIR / f"{name}.json" for name in parts]
    return [root / INDEX_DIR / name for name in segments]
