"""Where frames are: names, checks and the per-track record shared by both index formats.

Index format 2 (:mod:`.catalog`, :mod:`.segment`) keeps the index as arrays in a few ``.npz``
segments. Format 1, still read (and converted by ``pipeline store upgrade``), is JSON::

    <store>/parts.json                  {"format": 1, "parts": [{"name": "part-000000", ...}, ...]}
    <store>/parts/part-000000.json      {"name", "seq", "backend", "file", "n_frames", "dim", "dtype",
                                         "tracks": [[track_id, offset, n_frames, audio_sha256,
                                                     duration, checksum], ...]}

In both, ``parts.json`` is the commit point: a part exists for readers once it is listed there.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping

import numpy as np

from pipeline.errors import StoreError
from pipeline.files import rendered, replace_atomically
from pipeline.stores.spec import MAX_DIM

PARTS_FILE = "parts.json"
PARTS_DIR = "parts"
#: index format written by this version (2: npz segments); format 1 (JSON per part) is read
INDEX_FORMAT = 2
LEGACY_INDEX_FORMAT = 1
#: ``part-000003``: the only part names a store may list (six or more digits).
PART_NAME = re.compile(r"part-[0-9]{6,12}")
#: a part's data file: its name plus a backend suffix.
PART_FILE = re.compile(r"(part-[0-9]{6,12})\.(zarr|h5|npy)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_part_name(name: object, *, where: str) -> str:
    """``name`` when it is a part name (``part-NNNNNN``), else a :class:`StoreError` naming ``where``."""
    if not isinstance(name, str) or not PART_NAME.fullmatch(name):
        raise StoreError(
            f"{where}: part name {str(name)[:80]!r} is not of the form part-NNNNNN; "
            "the store is damaged or hostile, refusing it"
        )
    return name


def check_track_id(track_id: object, *, where: str) -> str:
    """``track_id`` when it is a usable id: a non-empty string, not absolute, no ``..`` part,
    no backslash or control character (ids become file names in exports).

    Raises:
        StoreError: naming the id and ``where``.
    """
    ok = isinstance(track_id, str) and 0 < len(track_id) <= 1024
    if isinstance(track_id, str) and ok:
        ok = not (
            track_id.startswith("/")
            or ".." in track_id.split("/")
            or "\\" in track_id
            or _CONTROL.search(track_id)
        )
    if not ok:
        raise StoreError(
            f"{where}: track id {str(track_id)[:80]!r} is not allowed (empty, absolute, '..', backslash "
            "or control characters); refusing it"
        )
    return track_id  # type: ignore[return-value]


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
        scale, shift: ``uint8`` parts only: (dim,) float32 quantisation parameters (frames =
            codes * scale + shift, :mod:`pipeline.stores.quant`); ``None`` otherwise.
    """

    name: str
    seq: int
    backend: str
    file: str
    n_frames: int
    dim: int
    dtype: str
    entries: tuple[TrackEntry, ...]
    scale: np.ndarray | None = field(default=None, compare=False, repr=False)
    shift: np.ndarray | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": LEGACY_INDEX_FORMAT,
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
    def from_json(cls, data: Mapping[str, Any], *, where: str, expect_name: str | None = None) -> "PartIndex":
        """Parse and check a part index; every field is typed and every row lies inside the part.

        Raises:
            StoreError: a missing or mistyped field, a bad part or file name, a bad track id,
                or sizes out of range (a store is input from someone else).
        """
        if not isinstance(data, Mapping):
            raise StoreError(f"part index {where} is not a JSON object; run `pipeline store verify`")
        unknown = sorted(set(data) - PART_KEYS)
        if unknown:
            raise StoreError(f"part index {where} has unknown field(s) {', '.join(map(repr, unknown))}; refusing it")
        try:
            name = check_part_name(data["name"], where=where)
            if expect_name is not None and name != expect_name:
                raise StoreError(f"part index {where} names itself {name!r}, parts.json lists {expect_name!r}")
            file = data["file"]
            if not isinstance(file, str) or PART_FILE.fullmatch(file) is None or not file.startswith(name + "."):
                raise StoreError(f"part index {where}: data file {str(file)[:80]!r} is not {name}.<zarr|h5|npy>")
            n_frames = _count(data["n_frames"], "n_frames", where, MAX_PART_ROWS)
            dim = _count(data["dim"], "dim", where, MAX_DIM, low=1)
            entries = tuple(_entry(row, name, n_frames, where) for row in _list(data["tracks"], "tracks", where))
            return cls(
                name=name, seq=_count(data["seq"], "seq", where, 10**12), backend=_text(data["backend"], where),
                file=file, n_frames=n_frames, dim=dim, dtype=_text(data["dtype"], where), entries=entries,
            )
        except KeyError as exc:
            raise StoreError(
                f"part index {where} lacks the field {exc.args[0]!r}; run `pipeline store verify`"
            ) from None


#: fields of a part index file
PART_KEYS = frozenset({"format", "name", "seq", "backend", "file", "n_frames", "dim", "dtype", "tracks"})
#: rows a part may have (a 10^12-frame track is refused before anything is allocated)
MAX_PART_ROWS = 1 << 34


def _count(value: Any, what: str, where: str, high: int, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StoreError(f"part index {where}: {what} = {repr(value)[:40]} is not an integer in [{low}, {high}]")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or len(value) > 256:
        raise StoreError(f"part index {where}: {str(value)[:40]!r} is not a short string")
    return value


def _list(value: Any, what: str, where: str) -> list:
    if not isinstance(value, list):
        raise StoreError(f"part index {where}: {what} is not a list")
    return value


def _entry(row: Any, part: str, rows: int, where: str) -> "TrackEntry":
    if not isinstance(row, list) or len(row) != 6:
        raise StoreError(
            f"part index {where}: track row {str(row)[:80]} is not [id, offset, frames, sha, duration, checksum]"
        )
    track_id = check_track_id(row[0], where=where)
    offset = _count(row[1], f"offset of {track_id!r}", where, rows)
    n_frames = _count(row[2], f"n_frames of {track_id!r}", where, rows - offset, low=1)
    duration = row[4]
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not 0 <= duration < 1e9:
        raise StoreError(f"part index {where}: duration of {track_id!r} = {str(duration)[:40]!r} is not a finite "
                         "number of seconds >= 0")
    return TrackEntry(track_id, part, offset, n_frames, _text(row[3], where), float(duration), _text(row[5], where))


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
    """Text of a format-1 ``parts.json`` for its rows (``name`` plus counts), in commit order."""
    return json.dumps({"format": LEGACY_INDEX_FORMAT, "parts": list(rows)}, indent=1) + "\n"


def part_row(part: PartIndex) -> dict[str, Any]:
    """The ``parts.json`` row of ``part``."""
    return {"name": part.name, "tracks": len(part.entries), "n_frames": part.n_frames, "file": part.file}


def parse_parts_json(text: str, *, where: str) -> list[str]:
    """Part names listed in ``parts.json`` text, in commit order."""
    try:
        data = json.loads(text)
        names = [row["name"] for row in data["parts"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise StoreError(f"{where} is malformed ({exc}); run `pipeline store verify`") from None
    for name in names:
        check_part_name(name, where=where)
    if len(set(names)) != len(names):
        raise StoreError(f"{where} lists a part twice; the store is damaged, run `pipeline store verify`")
    return names


def write_atomic(path: Path, content: str | Callable[[IO[bytes]], None]) -> None:
    """Write ``content`` (text, or a function writing to a binary handle) to ``path`` through a
    temporary file, fsync and ``os.replace`` (:func:`pipeline.files.replace_atomically`).

    Raises:
        OSError: as the file system reports it (the part writer words it); no temporary file remains.
    """
    replace_atomically(path, content.encode("utf-8") if isinstance(content, str) else rendered(content))
