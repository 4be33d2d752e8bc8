"""The part writer of stores in object storage: the commit protocol of :mod:`.remote`.

Each process or dask worker has its own :class:`ObjectPartWriter`; nothing of it lives on a
shared file system. Tracks are buffered (and long ones spooled) in a private scratch folder
under ``TMPDIR``, each part is written there with the store's backend, then claimed, uploaded
and committed (:mod:`.remote`).
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from pipeline.errors import StoreError
from pipeline.interrupts import signals_deferred
from pipeline.stores.backend import get_backend
from pipeline.stores.protocol import StoreLike
from pipeline.stores.remote import (
    claim_part, object_faults, part_objects_prefix, publish_segment, remove_scratch, scratch_folder, upload_part,
)
from pipeline.stores.segment import build_segment
from pipeline.stores.writer import PartWriter, TrackBuffer, _part_index, _Pending, _pieces, _token, check_format

log = logging.getLogger(__name__)


class ObjectPartWriter(PartWriter):
    """A :class:`~pipeline.stores.writer.PartWriter` for a store behind a URL (``s3://...``).

    Same use (``add``, ``open_track`` / ``add_buffer``, ``commit``, context manager); a commit
    claims a part number, uploads the part's data objects, then its index segment (the commit
    point). Tracks committed meanwhile by another writer are left out of the new part.

    Raises:
        FileFault: (from ``commit``) the object store refused a request: one line, the store
            keeps every track committed before.
    """

    def _writable_root(self, store: StoreLike) -> Path:
        """A private scratch folder for spooled tracks and parts before upload (removed on close)."""
        if store.location.fs is None:
            raise StoreError(f"store {store.path} is a local folder; use its PartWriter")
        check_format(store)  # before the scratch folder is made
        self._scratch_guard = threading.Lock()
        return scratch_folder()

    def _spool_path(self) -> Path:
        with self._scratch_guard:
            self._spool_count += 1
            return self.root / f"{self._spool_count}.spool"

    def _release_spool_lock(self) -> None:
        remove_scratch(self.root)

    def commit(self) -> list[str]:
        """Upload the buffered tracks as one part now; returns the ids committed (see the class)."""
        items = self._buffer
        self._buffer, self._ids, self._bytes = [], set(), 0
        where = str(self.store.path)
        with signals_deferred(), object_faults(
            where, doing=f"committing a part of {len(items)} track(s)",
            kept="the store keeps every track committed before (an upload cut short is never listed)",
        ):
            try:
                return self._commit(items)
            finally:
                for item in items:
                    if isinstance(item.frames, TrackBuffer):
                        item.frames.close()

    def _commit(self, items: list[_Pending]) -> list[str]:
        store = self.store
        store.refresh()
        fresh = self._fresh(items)
        if not fresh:
            return []
        backend = get_backend(store.backend)
        local = self.root / f"{_token()}{backend.suffix}"
        offsets = np.cumsum([0] + [len(t.frames) for t in fresh])
        n_frames = int(offsets[-1])
        params = None
        try:
            if store.spec.quantised:  # 8-bit: the part's codes and its per-dimension scale and shift
                params = self._write_codes(backend, local, fresh, n_frames)
            elif all(isinstance(t.frames, np.ndarray) for t in fresh):
                backend.write_part(local, np.concatenate([t.frames for t in fresh], axis=0),  # type: ignore[misc]
                                   store.layout)
            else:
                dtype = np.dtype(store.spec.dtype).newbyteorder("<")
                backend.write_part_pieces(local, _pieces(fresh), n_frames, store.spec.dim, dtype, store.layout)
            done = self._publish_object(fresh, offsets, n_frames, local, backend.suffix, backend.name, params)
        finally:
            if local.is_dir():
                remove_scratch(local)
            else:
                local.unlink(missing_ok=True)
        store.refresh()
        self.committed.extend(done)
        return done

    def _fresh(self, items: list[_Pending]) -> list[_Pending]:
        """``items`` not committed yet (by the last refresh); the others go to :attr:`dropped`."""
        present = self.store.index.contains_many([t.track_id for t in items])
        self.dropped.extend(t.track_id for t, there in zip(items, present) if there)
        return [t for t, there in zip(items, present) if not there]

    def _publish_object(self, items: list[_Pending], offsets: np.ndarray, n_frames: int, local: Path,
                        suffix: str, backend: str, params: tuple[np.ndarray, np.ndarray] | None = None) -> list[str]:
        """Claim a part number, upload the data at ``local``, then its segment (the commit point)."""
        store, location = self.store, self.store.location
        seq = claim_part(location, store.index.max_seq() + 1, _token())
        upload_part(location, local, part_objects_prefix(seq, suffix))
        store.refresh()  # the last look before committing: a track another writer committed meanwhile is left out
        present = store.index.contains_many([t.track_id for t in items])
        keep = [(t, int(o)) for t, o, there in zip(items, offsets[:-1], present) if not there]
        self.dropped.extend(t.track_id for t, there in zip(items, present) if there)
        if not keep:
            return []  # the claim and data stay unlisted (verify notes them)
        part = _part_index(store, seq, backend, suffix, n_frames, keep, params)
        segment = build_segment(part)
        publish_segment(location, segment)
        store.remember_commit(segment)
        log.debug("store %s: committed %s with %d tracks", store.path, part.name, len(keep))
        return [t.track_id for t, _o in keep]
