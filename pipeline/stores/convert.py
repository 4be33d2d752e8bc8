"""Backend conversion and exports.

``convert_store`` copies a store part by part into another backend (same spec, same
parts, same chunking, checksums re-checked), so zarr <-> hdf5 round trips are exact; it can
also change the stored dtype (to or from the 8-bit form) and the compression.
``export_store`` writes ``npy`` (one ``<track_id>.npy`` (frames, dim) per track, the
layout HEAR-style tools and the official EAsT code load) or ``memmap`` (one raw ``.npy``
per part plus the index: a store ``open_store`` reads, the hot-loop fast path).
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.errors import StoreError
from pipeline.files import write_json, write_rendered
from pipeline.stores.index import PartIndex, frames_checksum
from pipeline.stores.quant import dequantise
from pipeline.stores.spec import EMBEDDING_DTYPES, StoreSpec, default_chunk_frames
from pipeline.stores.store import EmbeddingStore, create_store, open_store

EXPORT_FORMATS = ("npy", "memmap")


def _source(src: EmbeddingStore | str | os.PathLike) -> EmbeddingStore:
    return src if isinstance(src, EmbeddingStore) else open_store(src)


def _part_frames(store: EmbeddingStore, part: PartIndex) -> tuple[np.ndarray, int]:
    """All rows of ``part`` that hold tracks, and the row the block starts at."""
    lo = min(e.offset for e in part.entries)
    hi = max(e.offset + e.n_frames for e in part.entries)
    try:
        return store.part_reader(part.name).read(lo, hi), lo
    except StoreError:
        raise
    except Exception as exc:  # a chunk that fails its checksum or does not decode
        raise StoreError(
            f"{part.name} of {store.path} cannot be read ({type(exc).__name__}: {exc}); "
            "run `pipeline store verify` to name the damaged tracks"
        ) from None


def _checked(store: EmbeddingStore, entry, frames: np.ndarray) -> np.ndarray:  # noqa: ANN001
    if frames_checksum(frames) != entry.checksum:
        raise StoreError(
            f"track {entry.track_id!r} in {entry.part} of {store.path} does not match its checksum; "
            "run `pipeline store verify` and re-extract the damaged tracks before converting"
        )
    return frames


def convert_store(
    src: EmbeddingStore | str | os.PathLike, dst: str | os.PathLike, *, backend: str, overwrite: bool = False,
    dtype: str | None = None, compression: str | None = None,
) -> EmbeddingStore:
    """Copy ``src`` into a new store at ``dst`` with ``backend``, part by part.

    Parts, track order and checksums are kept when the dtype is (chunking too); a ``dst``
    already holding some of the tracks (an interrupted conversion) is completed, not redone.
    Another ``dtype`` converts the frames: to ``uint8`` each part is quantised with its own
    range (:mod:`pipeline.stores.quant`), from ``uint8`` the frames are dequantised first;
    uint8 -> uint8 copies the codes and their parameters exactly.

    Args:
        dtype: stored dtype of the copy (``float16``, ``float32``, ``uint8``); default the source's.
        compression: ``none`` or ``zstd`` (zarr: a zstd codec per chunk); default the source's.

    Returns:
        The destination store, open for appending.

    Raises:
        StoreError: a source track does not match its checksum, ``dst`` is not usable, or
            ``dtype`` is not an embedding dtype.
    """
    source = _source(src)
    if not isinstance(dst, str) or "://" not in dst:
        if Path(dst).resolve() == Path(str(source.path)).resolve():
            raise StoreError(f"convert: destination {dst} is the source store; choose another --out folder")
    spec = source.spec if dtype in (None, source.spec.dtype) else _retyped(source.spec, str(dtype))
    target = create_store(
        dst, spec, backend=backend, overwrite=overwrite,
        chunk_frames=source.layout.chunk_frames if spec is source.spec else default_chunk_frames(spec),
        compression=compression or source.layout.compression,
    )
    for part in source.parts():
        todo = [e for e in sorted(part.entries, key=lambda e: e.offset) if e.track_id not in target]
        if todo:
            _convert_part(source, target, part, todo)
    return target


def _retyped(spec: StoreSpec, dtype: str) -> StoreSpec:
    """``spec`` with another stored dtype (embedding stores only)."""
    if spec.kind != "embedding" or dtype not in EMBEDDING_DTYPES:
        raise StoreError(f"convert: a {spec.kind} store cannot become {dtype!r}; embedding stores take "
                         f"{', '.join(EMBEDDING_DTYPES)}")
    return replace(spec, dtype=dtype)


def _convert_part(source: EmbeddingStore, target: EmbeddingStore, part: PartIndex, todo: list) -> None:
    """Write the ``todo`` tracks of the source ``part`` as one part of ``target``."""
    block, lo = _part_frames(source, part)
    coded = source.spec.quantised and target.spec.quantised
    params = source.quant_params(part.name) if source.spec.quantised else None
    writer = target.writer(part_tracks=len(todo) + 1, part_bytes=1 << 62, coded=params if coded else None)
    with writer:
        for entry in todo:
            rows = _checked(source, entry, block[entry.offset - lo : entry.offset - lo + entry.n_frames])
            frames = dequantise(rows, *params) if params is not None and not coded else rows
            writer.add(entry.track_id, frames, audio_sha256=entry.audio_sha256, duration=entry.duration)


def _npy_path(out: Path, track_id: str) -> Path:
    parts = track_id.split("/")
    if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise StoreError(f"track id {track_id!r} cannot be used as a file name; export with --format memmap")
    return out.joinpath(*parts[:-1], parts[-1] + ".npy")


def export_store(
    src: EmbeddingStore | str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    format: str,
    dtype: str | None = None,
) -> Path:
    """Export ``src`` for other tools.

    Args:
        src: store or its path/URL.
        out_dir: destination folder (created; an existing export is completed/overwritten).
        format: ``npy`` -> ``<out>/<track_id>.npy`` (frames, dim) per track plus ``index.json``
            (track -> file, frames, duration, and the frame-time convention);
            ``memmap`` -> a read-only store with one raw ``.npy`` per part.
        dtype: ``npy`` only: cast to this dtype (e.g. ``float32``); default the stored dtype
            (an 8-bit store exports its dequantised float32 frames).

    Returns:
        ``out_dir`` as a Path.
    """
    if format not in EXPORT_FORMATS:
        raise StoreError(f"export format {format!r} is not one of: {', '.join(EXPORT_FORMATS)}")
    source = _source(src)
    out = Path(out_dir)
    if format == "memmap":
        if dtype is not None and dtype != source.spec.dtype:
            raise StoreError("a memmap export keeps the stored dtype; drop --dtype or use --format npy")
        convert_store(source, out, backend="memmap")
        return out
    out.mkdir(parents=True, exist_ok=True)
    spec = source.spec
    tracks = _export_npy_tracks(source, out, dtype)
    index = {
        "teacher": spec.to_json(),
        "dtype": dtype or spec.frame_dtype,
        "frame_times": (
            "t_i = duration / 2 (one frame per clip)"
            if spec.clip_level
            else f"t_i = {spec.frame0_center_seconds!r} + i * {spec.hop_seconds!r} seconds (frame centers)"
        ),
        "tracks": tracks,
    }
    write_json(out / "index.json", index, indent=1, what="the export's index",
               kept="the store is unchanged; the exported tracks are whole", todo="free space and export again")
    return out


def _export_npy_tracks(source: EmbeddingStore, out: Path, dtype: str | None) -> dict[str, dict]:
    """Write ``<out>/<track_id>.npy`` per track (dequantised from an 8-bit store, cast to ``dtype``).

    Returns:
        track id -> its ``index.json`` entry (file, frames, duration, audio fingerprint).
    """
    tracks: dict[str, dict] = {}
    for part in source.parts():
        block, lo = _part_frames(source, part)
        for entry in part.entries:
            frames = _checked(source, entry, block[entry.offset - lo : entry.offset - lo + entry.n_frames])
            if source.spec.quantised:
                frames = dequantise(frames, *source.quant_params(part.name))
            path = _npy_path(out, entry.track_id)
            array = frames if dtype is None else frames.astype(dtype)
            write_rendered(path, lambda handle: np.save(handle, array, allow_pickle=False), what="an exported track",
                           kept="the store is unchanged; the files exported so far are whole",
                           todo="free space (or fix the folder) and export again")
            tracks[entry.track_id] = {
                "file": path.relative_to(out).as_posix(),
                "n_frames": entry.n_frames,
                "duration": entry.duration,
                "audio_sha256": entry.audio_sha256,
            }
    return tracks
