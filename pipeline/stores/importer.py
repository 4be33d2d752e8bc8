"""``pipeline store import``: embedding caches made elsewhere, as an ordinary store.

Three layouts are read, one file (or pair) per track:

- ``openl3``: ``<name>.npz`` as the openl3 CLI writes them, ``embedding`` (T, D) and
  ``timestamps`` (T,) in **seconds**;
- ``hear``: what hear-eval-kit's embedding runner (``heareval.embeddings.runner``, 2021.1.3)
  writes for an ``event`` task: ``<name>.embedding.npy`` (T, D) with ``<name>.timestamps.json``
  (a JSON list of T numbers) in **milliseconds**; a ``<name>.timestamps.npy`` (T,) is read
  when there is no JSON file. Its other files (labels, split memmaps) are ignored;
- ``npy``: a folder of ``<name>.npy`` (T, D) frames on a known grid (``hop`` and ``frame0``
  in seconds).

``<name>`` is matched to the manifests: the clip id, the audio path without its extension
(relative to the audio root), or the audio file's stem when that is unique; hear-eval-kit
names that keep the audio extension (``x.wav.embedding.npy``) match too. Every file that
cannot be used (no such clip, other dimension, timestamps not increasing or off the grid,
unreadable, non-finite) is reported in one line and skipped; the store never holds a
half-written track. The store's teacher is ``imported:<label>`` and its provenance
``{"provenance": "imported", "format", "fingerprint"}`` (sha256 over the names and bytes of
the imported files), so stage two (``--teacher imported:<label>``) treats it like any other.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator, Sequence

import numpy as np

from pipeline.errors import StoreError
from pipeline.manifests import Clip
from pipeline.stores.spec import StoreSpec, library_versions
from pipeline.stores.store import EmbeddingStore, create_store

FORMATS = ("openl3", "hear", "npy")
#: Allowed deviation of a timestamp from the store's grid, as a fraction of the hop.
GRID_TOLERANCE = 0.01
_HEAR_EMB = ".embedding.npy"
#: Timestamp files of a hear-eval-kit embedding, in order of preference (the runner writes JSON).
_HEAR_TS = (".timestamps.json", ".timestamps.npy")


class FileRefused(StoreError):
    """One source file cannot be imported (the message is the one-line reason)."""


@dataclass
class ImportReport:
    """What ``import_cache`` did.

    Attributes:
        store: the store folder.
        teacher: ``imported:<label>``.
        imported: track ids written.
        skipped: track ids already in the store (a rerun).
        refused: ``(file, reason)`` for every file not imported, incl. unmatched names.
        missing: manifest clip ids that no file provided.
    """

    store: str
    teacher: str
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file was refused."""
        return not self.refused


@dataclass(frozen=True)
class _Source:
    name: str  # the matching key: path relative to the source folder, suffixes removed
    files: tuple[Path, ...]


def _sources(root: Path, fmt: str) -> list[_Source]:
    """The per-track files of ``fmt`` under ``root`` (recursively), sorted."""
    if fmt == "openl3":
        return [_Source(_rel(root, p, ".npz"), (p,)) for p in sorted(root.rglob("*.npz"))]
    if fmt == "hear":
        out = []
        for emb in sorted(root.rglob(f"*{_HEAR_EMB}")):
            out.append(_Source(_rel(root, emb, _HEAR_EMB), (emb, _hear_timestamps(emb))))
        return out
    if fmt == "npy":
        return [_Source(_rel(root, p, ".npy"), (p,)) for p in sorted(root.rglob("*.npy"))]
    raise StoreError(f"import format {fmt!r} is not one of {', '.join(FORMATS)}")


def _hear_timestamps(embedding: Path) -> Path:
    """The timestamps file beside a hear-eval-kit ``<name>.embedding.npy``: JSON if present, else ``.npy``.

    When neither exists the JSON name is returned (and reported missing).
    """
    stem = embedding.name[: -len(_HEAR_EMB)]
    candidates = [embedding.with_name(stem + suffix) for suffix in _HEAR_TS]
    return next((path for path in candidates if path.is_file()), candidates[0])


def _read_hear_timestamps(path: Path) -> np.ndarray:
    """Timestamps in seconds, float64 (T,), from a ``.timestamps.json`` list or ``.timestamps.npy`` (milliseconds).

    Raises:
        FileRefused: the file is missing, not valid JSON, or not a flat list of numbers.
        OSError, ValueError: an unreadable ``.npy`` (reported by the caller).
    """
    if not path.is_file():
        raise FileRefused(f"its timestamps file {path.name} (or {_HEAR_TS[1]}) is missing")
    if path.suffix == ".npy":
        return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64) / 1000.0
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FileRefused(f"its timestamps file {path.name} is not JSON ({exc})") from None
    if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise FileRefused(f"its timestamps file {path.name} is not a JSON list of numbers (milliseconds)")
    return np.asarray(values, dtype=np.float64) / 1000.0


def _rel(root: Path, path: Path, suffix: str) -> str:
    rel = path.relative_to(root).as_posix()
    return rel[: -len(suffix)]


def match_table(clips: Sequence[Clip]) -> dict[str, Clip]:
    """Name -> clip: ids, audio paths without extension, and unique audio stems."""
    table: dict[str, Clip] = {}
    stems: dict[str, list[Clip]] = {}
    for clip in clips:
        path = PurePosixPath(str(clip.audio_path).replace("\\", "/"))
        table.setdefault(str(path.with_suffix("")), clip)
        stems.setdefault(path.stem, []).append(clip)
    for stem, owners in stems.items():
        if len(owners) == 1:
            table.setdefault(stem, owners[0])
    for clip in clips:
        table[clip.id] = clip  # ids win
    return table


def _lookup(name: str, table: dict[str, Clip]) -> Clip | None:
    candidates = [name, PurePosixPath(name).name]
    for key in list(candidates):
        stripped = PurePosixPath(key).with_suffix("").as_posix() if PurePosixPath(key).suffix else None
        if stripped:
            candidates.append(stripped)
    for key in candidates:
        if key in table:
            return table[key]
    return None


def _load(source: _Source, fmt: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames (T, D) float32 and timestamps (T,) in seconds (``None`` for ``npy``)."""
    try:
        if fmt == "openl3":
            with np.load(source.files[0], allow_pickle=False) as data:
                if "embedding" not in data or "timestamps" not in data:
                    raise FileRefused(
                        f"has keys {sorted(data.files)}, not 'embedding' and 'timestamps' (openl3 .npz)")
                frames, stamps = np.asarray(data["embedding"]), np.asarray(data["timestamps"], dtype=np.float64)
        elif fmt == "hear":
            stamps = _read_hear_timestamps(source.files[1])
            frames = np.load(source.files[0], allow_pickle=False)
            if frames.ndim == 1:
                raise FileRefused(f"embedding has shape {frames.shape}: a scene embedding (one vector per file); "
                                  "import needs timestamp embeddings (a task with embedding_type 'event')")
        else:
            frames, stamps = np.load(source.files[0], allow_pickle=False), None
    except FileRefused:
        raise
    except (OSError, ValueError, EOFError) as exc:
        raise FileRefused(f"cannot be read as .npy/.npz ({type(exc).__name__}: {exc})") from None
    if frames.ndim != 2 or frames.shape[0] < 1:
        raise FileRefused(f"embedding has shape {frames.shape}; expected (frames, dim)")
    if not np.issubdtype(frames.dtype, np.floating) or not np.isfinite(frames).all():
        raise FileRefused("embedding is not finite floating point")
    if stamps is not None:
        stamps = stamps.reshape(-1)
        if len(stamps) != len(frames):
            raise FileRefused(f"{len(stamps)} timestamps for {len(frames)} frames")
        steps = np.diff(stamps)
        if len(steps) and not (steps > 0).all():
            i = int(np.flatnonzero(steps <= 0)[0]) + 1
            raise FileRefused(
                f"timestamps are not increasing at frame {i} ({stamps[i - 1]:.6g} s then {stamps[i]:.6g} s)")
    return frames.astype(np.float32), stamps


def _check_grid(stamps: np.ndarray, hop: float, frame0: float) -> None:
    expected = frame0 + hop * np.arange(len(stamps))
    bad = np.flatnonzero(np.abs(stamps - expected) > GRID_TOLERANCE * hop)
    if len(bad):
        i = int(bad[0])
        raise FileRefused(
            f"frame {i} at {stamps[i]:.6g} s is off the store's grid ({frame0:.6g} s + k * {hop:.6g} s)")


def fingerprint(sources: Sequence[_Source], root: Path) -> str:
    """sha256 over every source file's relative name and bytes, in sorted order."""
    digest = hashlib.sha256()
    for source in sources:
        for path in source.files:
            if path.is_file():
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _geometry(
    sources: Sequence[_Source], fmt: str, hop: float | None, frame0: float | None
) -> tuple[float, float, int]:
    """hop, frame0 (seconds) and dim from the options or the first readable file with two frames."""
    dim = 0
    for source in sources:
        try:
            frames, stamps = _load(source, fmt)
        except FileRefused:
            continue
        dim = dim or frames.shape[1]
        if stamps is None or len(stamps) < 2:
            continue
        return (hop or float(np.median(np.diff(stamps)))), (frame0 if frame0 is not None else float(stamps[0])), dim
    if not dim:
        reasons = []
        for source in sources[:1]:
            try:
                _load(source, fmt)
            except FileRefused as exc:
                reasons.append(f"{source.files[0]}: {exc}")
        first = reasons[0] if reasons else "?"
        raise StoreError(f"none of the {len(sources)} {fmt} files can be read (first: {first})")
    if hop is None or frame0 is None:
        raise StoreError(f"the {fmt} files do not say their frame times; pass --hop and --frame0 (seconds)")
    return hop, frame0, dim


def import_cache(
    source: Path | str,
    out: Path | str,
    clips: Sequence[Clip],
    *,
    fmt: str,
    label: str,
    hop: float | None = None,
    frame0: float | None = None,
    window: float | None = None,
    sample_rate: int = 0,
    dtype: str = "float16",
    backend: str = "zarr",
    overwrite: bool = False,
) -> ImportReport:
    """Import the ``fmt`` files under ``source`` as store ``out`` of teacher ``imported:<label>``.

    Args:
        source: folder of the files.
        out: store folder to create (or to resume: a rerun skips tracks already imported).
        clips: the manifests' clips (every split) the names are matched against.
        fmt: ``openl3``, ``hear`` or ``npy``.
        label: names the teacher ``imported:<label>``.
        hop, frame0: seconds between frame centers and center of frame 0; required for ``npy``,
            otherwise measured from the first file and then checked on every file.
        window: seconds of audio a frame sees (default: the hop).
        sample_rate: the teacher's rate in Hz when known (recorded only). 0 = unknown: the
            clips' own rate is recorded and ``config.sample_rate_known`` is false.

    Returns:
        The report (written tracks, refused files with reasons, clips with no file).

    Raises:
        StoreError: no files, no geometry, or an existing store with other provenance.
    """
    root = Path(source)
    if not root.is_dir():
        raise StoreError(f"import source {str(root)!r} is not a folder")
    sources = _sources(root, fmt)
    if not sources:
        raise StoreError(f"no {fmt} files under {root} (looked for {_pattern(fmt)})")
    hop, frame0, dim = _geometry(sources, fmt, hop, frame0)
    if not (hop > 0 and math.isfinite(hop)):
        raise StoreError(f"hop must be > 0 seconds, got {hop!r}")
    spec = StoreSpec(
        kind="embedding", teacher=f"imported:{label}",
        config={"provenance": "imported", "format": fmt, "fingerprint": fingerprint(sources, root),
                "sample_rate_known": int(sample_rate) > 0},
        weights_sha256="", sample_rate=_recorded_rate(sample_rate, clips), hop_seconds=float(hop),
        window_seconds=float(window if window is not None else hop), frame0_center_seconds=float(frame0),
        clip_level=False, dim=int(dim), dtype=dtype, versions=library_versions(),
    )
    store = create_store(out, spec, backend=backend, overwrite=overwrite)
    report = ImportReport(store=str(out), teacher=spec.teacher)
    _write_tracks(store, sources, clips, fmt, report, dim=dim, hop=hop, frame0=frame0)
    return report


def _recorded_rate(sample_rate: int, clips: Sequence[Clip]) -> int:
    """The rate (Hz) an imported store records: the teacher's when known (> 0), else the clips' median.

    A store records some rate; ``config.sample_rate_known`` says whether it is the teacher's.
    16000 when no clip has a rate either.
    """
    if int(sample_rate) > 0:
        return int(sample_rate)
    rates = sorted(int(c.sample_rate) for c in clips if c.sample_rate) or [16000]
    return rates[len(rates) // 2]


def _write_tracks(
    store: EmbeddingStore, sources: Sequence[_Source], clips: Sequence[Clip], fmt: str, report: ImportReport,
    *, dim: int, hop: float, frame0: float,
) -> None:
    """Write each source matched to a clip into ``store``, filling ``report``.

    Tracks already in the store are skipped; a file that cannot be used (a second file for one
    clip, a dimension other than ``dim``, off the grid ``frame0 + k * hop`` seconds, unreadable)
    is refused.
    """
    seen: set[str] = set()
    with store.writer() as writer:
        for item, clip in _matched(sources, match_table(clips), report):
            if clip.id in seen:
                report.refused.append((str(item.files[0]), f"a second file for clip {clip.id!r}"))
                continue
            seen.add(clip.id)
            if clip.id in store:
                report.skipped.append(clip.id)
                continue
            try:
                frames, stamps = _load(item, fmt)
                if frames.shape[1] != dim:
                    raise FileRefused(f"dimension {frames.shape[1]}, but the store's is {dim} (the first file's)")
                if stamps is not None:
                    _check_grid(stamps, hop, frame0)
            except FileRefused as exc:
                report.refused.append((str(item.files[0]), str(exc)))
                continue
            writer.add(clip.id, frames, audio_sha256="", duration=float(clip.duration))
            report.imported.append(clip.id)
    report.missing = [c.id for c in clips if c.id not in seen]


def _matched(
    sources: Sequence[_Source], table: dict[str, Clip], report: ImportReport
) -> Iterator[tuple[_Source, Clip]]:
    for item in sources:
        clip = _lookup(item.name, table)
        if clip is None:
            reason = f"no clip in the manifests has the id or audio file {item.name!r}"
            report.refused.append((str(item.files[0]), reason))
            continue
        yield item, clip


def _pattern(fmt: str) -> str:
    return {"openl3": "*.npz", "hear": f"*{_HEAR_EMB} + *{_HEAR_TS[0]} (or *{_HEAR_TS[1]})", "npy": "*.npy"}[fmt]
