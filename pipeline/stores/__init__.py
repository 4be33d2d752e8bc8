"""Embedding stores: time-stamped teacher frames (or decoded audio) in immutable, chunked parts.

Zarr v3 (default) and HDF5 backends share one concatenated layout and one compact index
(numpy arrays in a few ``.npz`` segments, :mod:`pipeline.stores.catalog`);
see :mod:`pipeline.stores.store` for the layout and :mod:`pipeline.stores.writer` for
the commit protocol that makes parallel writers and interrupted runs safe.

Typical use::

    store = create_store("stores/musicnn", StoreSpec.from_teacher(teacher))
    with store.writer() as writer:
        writer.add("clip-1", frames, audio_sha256=sha, duration=10.0)
    frames, times = open_store("stores/musicnn").read_window("clip-1", 2.0, 5.0)
"""
from __future__ import annotations

from pipeline.stores.backend import BACKENDS, WRITABLE_BACKENDS, get_backend
from pipeline.stores.convert import EXPORT_FORMATS, convert_store, export_store
from pipeline.stores.index import PartIndex, TrackEntry
from pipeline.stores.spec import StoreLayout, StoreSpec, default_chunk_frames
from pipeline.stores.store import EmbeddingStore, create_store, open_store
from pipeline.stores.verify import VerifyReport, verify_store
from pipeline.stores.writer import PartWriter

__all__ = [
    "BACKENDS",
    "EXPORT_FORMATS",
    "WRITABLE_BACKENDS",
    "EmbeddingStore",
    "PartIndex",
    "PartWriter",
    "StoreLayout",
    "StoreSpec",
    "TrackEntry",
    "VerifyReport",
    "convert_store",
    "create_store",
    "default_chunk_frames",
    "export_store",
    "get_backend",
    "open_store",
    "verify_store",
]
