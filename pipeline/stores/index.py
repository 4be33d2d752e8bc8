"""Where frames are: per-part index JSON files and the store-level part list.

Layout (all JSON, written atomically with ``os.replace``)::

    <store>/parts.json                  {"format": ..., "parts": [{"name": "part-000000", ...}, ...]}
    <store>/parts/part-000000.json      {"name", "seq", "backend", "file", "n_frames", "dim", "dtype",
                                         "tracks": [[track_id, offset, n_frames, audio_sha256,
                                                     duration, checksum], ...]}

``parts.json`` is the commit point: a part exists for readers once it is listed there.
Part files are immutable once listed, so readers cache them forever.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from pipeline.errors import StoreError

PARTS_FILE = "parts.json"
PARTS_DIR = "parts"
INDEX_FORMAT = 1


@dataclass(frozen=True)
class TrackEntry:
    """Where one track's frames are.

    Attributes:
        track_id: the manifest's clip id.
        part: name of the part holding it (``part-000003``).
        offset: first row of the track in the part's (N, dim) array.
        n_frames: rows of the track.
        audio_sha256: fingerprint of the source audio the frames were computed from.
        duration: track duration in seconds.
        checksum: sha256 of the track's frame bytes (stored dtype, little-endian, C order).
    """

    track_id: str
    part: str
    offset: int
    n_frames: int
    audio_sha256: str
    duration: float
    checksum: str


@dataclass(frozen=True)
class PartIndex:
    """The index of one immutable part.

    Attributes:
        name: ``part-000003``.
        seq: commit sequence number (3).
        backend: backend that wrote the data file.
        file: data file or folder name inside ``parts/`` (``part-000003.zarr``).
        n_frames: rows of the part's array (tracks dropped at commit may leave unused rows).
        dim, dtype: array columns and stored dtype.
        entries: the tracks, in offset order.
    """

    name: str
    seq: int
    backend: str
    file: str
    n_frames: int
    dim: int
    dtype: str
    entries: tuple[TrackEntry, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": INDEX_FORMAT,
            "name": self.name,
            "seq": self.seq,
            "backend": self.backend,
            "file": self.file,
            "n_frames": self.n_frames,
            "dim": self.dim,
            "dtype": self.dtype,
            "tracks": [
                [e.track_id, e.offset, e.n_frames, e.audio_sha256, e.duration, e.checksum]
                for e in self.entries
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str) -> "PartIndex":
        try:
            name = str(data["name"])
            entries = tuple(
                TrackEntry(str(t[0]), name, int(t[1]), int(t[2]), str(t[3]), float(t[4]), str(t[5]))
                for t in data["tracks"]
            )
            return cls(
                name=name,
                seq=int(data["seq"]),
                backend=str(data["backend"]),
                file=str(data["file"]),
                n_frames=int(data["n_frames"]),
                dim=int(data["dim"]),
                dtype=str(data["dtype"]),
                entries=entries,
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise StoreError(
                f"part index {where} is malformed ({type(exc).__name__}: {exc}); run `pipeline store verify`"
            ) from None


def part_name(seq: int) -> str:
    """``part-000003`` for ``seq`` 3."""
    return f"part-{seq:06d}"


def part_seq(name: str) -> int | None:
    """3 for ``part-000003`` (with or without suffix), None for other names."""
    stem = name.split(".", 1)[0]
    if not stem.startswith("part-"):
        return None
    digits = stem[5:]
    return int(digits) if digits.isdigit() else None


def frames_checksum(frames: np.ndarray) -> str:
    """sha256 of ``frames``' bytes (C order; the array must already be in the stored dtype)."""
    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()


def parts_json_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """Text of ``parts.json`` for its rows (``name`` plus counts, for humans and tools), in commit order."""
    return json.dumps({"format": INDEX_FORMAT, "parts": list(rows)}, indent=1) + "\n"


def part_row(part: PartIndex) -> dict[str, Any]:
    """The ``parts.json`` row of ``part``."""
    return {"name": part.name, "tracks": len(part.entries), "n_frames": part.n_frames, "file": part.file}


def parse_parts_json(text: str, *, where: str) -> list[str]:
    """Part names listed in ``parts.json`` text, in commit order."""
    try:
        data = json.loads(text)
        return [str(row["name"]) for row in data["parts"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise StoreError(f"{where} is malformed ({exc}); run `pipeline store verify`") from None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, fsync and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


class StoreIndex:
    """The union of the committed parts' indices: track id -> :class:`TrackEntry`.

    Parts are added in commit order; a track id seen in an earlier part wins (commits
    dedupe under the store lock, so a repeat only happens in a damaged store, and
    :func:`~pipeline.stores.verify.verify_store` reports it).
    """

    def __init__(self) -> None:
        self.parts: dict[str, PartIndex] = {}
        self.entries: dict[str, TrackEntry] = {}
        self.duplicates: list[tuple[str, str, str]] = []  # (track id, kept part, ignored part)

    def add(self, part: PartIndex) -> None:
        """Add a committed part's entries."""
        self.parts[part.name] = part
        for entry in part.entries:
            kept = self.entries.get(entry.track_id)
            if kept is None:
                self.entries[entry.track_id] = entry
            else:
                self.duplicates.append((entry.track_id, kept.part, part.name))

    def __contains__(self, track_id: object) -> bool:
        return track_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)
