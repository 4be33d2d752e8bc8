"""Provenance of a store: :class:`StoreSpec` (``<store>/teacher.json``) and its layout.

A store holds the frames of exactly one teacher configuration. ``teacher.json`` records
everything that changes the frames (teacher name, settings, weights sha256, geometry,
dtype) plus library versions (recorded, never compared) and the on-disk layout (backend,
chunk size, codec). It is plain JSON: nothing in a store is ever unpickled.
"""
from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from typing import Any, Mapping

from pipeline import __version__
from pipeline.errors import StoreError
from pipeline.frame_axis import FrameAxis

#: Format tag written into teacher.json; bumped when the layout changes incompatibly.
STORE_FORMAT = "east-store/1"
KINDS = ("embedding", "audio")
DTYPES = ("float16", "float32", "int16", "uint8")
#: dtypes an embedding store may hold (``uint8``: codes with per-part scale and shift, :mod:`.quant`)
EMBEDDING_DTYPES = ("float16", "float32", "uint8")
COMPRESSIONS = ("none", "zstd")
#: Libraries whose versions are recorded (read from package metadata; nothing is imported).
RECORDED_PACKAGES = ("numpy", "zarr", "h5py", "torch", "tensorflow", "musicnn", "openl3", "soxr", "soundfile")
#: Target size of one chunk in bytes (the unit of reading).
TARGET_CHUNK_BYTES = 512 << 10
#: Longest window (seconds) a reader is assumed to ask for; a chunk is at least this long.
MAX_WINDOW_SECONDS = 30.0
#: longest chunk a store may declare (2^24 rows: 17 minutes of 16 kHz audio)
MAX_CHUNK_FRAMES = 1 << 24


#: JSON type of every teacher.json field ("number": int or float, never bool)
_FIELD_TYPES = {
    "kind": "str", "teacher": "str", "config": "dict", "weights_sha256": "str", "sample_rate": "int",
    "hop_seconds": "number", "window_seconds": "number", "frame0_center_seconds": "number",
    "clip_level": "bool", "dim": "int", "dtype": "str", "versions": "dict",
}
#: widest embedding a store may declare
MAX_DIM = 1 << 16


def _is_type(value: Any, kind: str) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    types: dict[str, type | tuple[type, ...]] = {"str": str, "dict": dict, "int": int, "number": (int, float)}
    return isinstance(value, types[kind])


def _plain(value: Any) -> Any:
    """JSON-normalised copy (tuples -> lists, keys -> str), so specs compare after a round trip."""
    try:
        return json.loads(json.dumps(value, sort_keys=True))
    except TypeError as exc:
        raise StoreError(f"store settings must be JSON-able, got {value!r}: {exc}") from exc


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) > 16:
        return repr(value[:12] + "..")
    return repr(value)


def _diff(prefix: str, mine: Any, theirs: Any, out: list[str]) -> None:
    if isinstance(mine, dict) and isinstance(theirs, dict):
        for key in sorted(set(mine) | set(theirs), key=str):
            _diff(f"{prefix}.{key}", mine.get(key, "<missing>"), theirs.get(key, "<missing>"), out)
        return
    if isinstance(mine, float) and isinstance(theirs, (int, float)) and not isinstance(theirs, bool):
        if math.isclose(mine, theirs, rel_tol=1e-9, abs_tol=1e-12):
            return
    elif mine == theirs:
        return
    out.append(f"{prefix}: {_short(mine)} != {_short(theirs)}")


@dataclass(frozen=True)
class StoreSpec:
    """What a store's frames are: teacher, settings, weights and geometry.

    Attributes:
        kind: ``"embedding"`` or ``"audio"`` (decoded int16 audio cache, same machinery).
        teacher: teacher name, or ``"audio"``.
        config: teacher settings that change frames (JSON-able mapping).
        weights_sha256: sha256 of the teacher's weight files (``""`` for audio).
        sample_rate: Hz the teacher ran at (audio: the cached rate).
        hop_seconds: seconds between frame centers (audio: ``1 / sample_rate``; clip-level: 0.0).
        window_seconds: seconds of audio one frame sees.
        frame0_center_seconds: center time of frame 0 in seconds.
        clip_level: one frame per track, centered at half the duration.
        dim: embedding size (audio: 1).
        dtype: stored dtype: ``"float16"`` (default), ``"float32"``, ``"uint8"`` (8-bit codes that
            readers return as float32, see :mod:`pipeline.stores.quant`) or ``"int16"`` (audio).
        versions: library versions (recorded, not compared).
    """

    kind: str
    teacher: str
    config: dict
    weights_sha256: str
    sample_rate: int
    hop_seconds: float
    window_seconds: float
    frame0_center_seconds: float
    clip_level: bool
    dim: int
    dtype: str = "float16"
    versions: dict = field(default_factory=dict)

    @property
    def axis(self) -> FrameAxis:
        """The time axis of the stored frames (clip-level: one frame per track, hop 0)."""
        return FrameAxis(0.0 if self.clip_level else self.hop_seconds, self.frame0_center_seconds,
                         self.window_seconds)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise StoreError(f"store kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.dtype not in DTYPES:
            raise StoreError(
                f"store dtype {self.dtype!r} is not one of {', '.join(DTYPES)}; float16 is the default"
            )
        if self.dtype == "uint8" and self.kind != "embedding":
            raise StoreError("the 8-bit form (dtype uint8) is for embedding stores; an audio cache is int16")
        if not 1 <= int(self.dim) <= MAX_DIM:
            raise StoreError(f"store dim must be in [1, {MAX_DIM}], got {self.dim!r}")
        if self.hop_seconds < 0 or (not self.clip_level and self.hop_seconds <= 0):
            raise StoreError(f"hop_seconds must be > 0 for a frame-level store, got {self.hop_seconds!r}")
        object.__setattr__(self, "config", _plain(dict(self.config)))
        object.__setattr__(self, "versions", _plain(dict(self.versions)))

    # ---- origin -----------------------------------------------------------------------
    @property
    def imported(self) -> bool:
        """Whether ``pipeline store import`` made the store (no extraction, no extract report)."""
        return self.config.get("provenance") == "imported"

    def fill_hint(self, *, one: bool = False) -> str:
        """What adds missing tracks (``one``: a missing track) to a store of this origin, as a phrase."""
        them, files = ("it", "its file") if one else ("them", "their files")
        if self.imported:
            return f"give `pipeline store import` {files} (it lists the files it refused) and import again"
        return f"run `pipeline extract` for {them}"

    # ---- comparison -----------------------------------------------------------------
    def differences(self, other: "StoreSpec") -> list[str]:
        """Every field that differs from ``other``, as ``"name: mine != theirs"``; ignores versions.

        Example: ``["config.layer: 'penultimate' != 'max_pool'", "weights_sha256: 'ab12..' != 'cd34..'"]``.
        """
        out: list[str] = []
        for f in fields(self):
            if f.name == "versions":
                continue
            _diff(f.name, getattr(self, f.name), getattr(other, f.name), out)
        return out

    # ---- construction ---------------------------------------------------------------
    @classmethod
    def from_teacher(cls, teacher: Any, *, dtype: str = "float16") -> "StoreSpec":
        """The spec of ``teacher``'s frames (uses ``teacher.describe()``).

        Args:
            teacher: a :class:`~pipeline.teachers.base.Teacher` (weights must be present:
                the weights sha256 is part of the spec).
            dtype: stored frame dtype, ``"float16"``, ``"float32"`` or ``"uint8"``.
        """
        if dtype not in EMBEDDING_DTYPES:
            raise StoreError(f"embedding dtype {dtype!r} must be one of {', '.join(EMBEDDING_DTYPES)}")
        info = dict(teacher.describe())
        versions = library_versions()
        versions.update(info.get("versions", {}) or {})
        return cls(
            kind="embedding",
            teacher=str(info["name"]),
            config=dict(info.get("config", {})),
            weights_sha256=str(info.get("weights_sha256", "")),
            sample_rate=int(info["sample_rate"]),
            hop_seconds=float(info["hop_seconds"]),
            window_seconds=float(info["window_seconds"]),
            frame0_center_seconds=float(info["frame0_center_seconds"]),
            clip_level=bool(info.get("clip_level", False)),
            dim=int(info["dim"]),
            dtype=dtype,
            versions=versions,
        )

    @classmethod
    def for_audio(cls, sample_rate: int) -> "StoreSpec":
        """The spec of a decoded mono int16 audio cache at ``sample_rate`` Hz (frames = samples)."""
        if int(sample_rate) <= 0:
            raise StoreError(f"audio cache sample rate must be > 0 Hz, got {sample_rate!r}")
        sr = int(sample_rate)
        return cls(
            kind="audio",
            teacher="audio",
            config={"sample_rate": sr, "channels": 1, "encoding": "pcm16"},
            weights_sha256="",
            sample_rate=sr,
            hop_seconds=1.0 / sr,
            window_seconds=1.0 / sr,
            frame0_center_seconds=0.0,
            clip_level=False,
            dim=1,
            dtype="int16",
            versions=library_versions(),
        )

    def to_json(self) -> dict[str, Any]:
        """Plain JSON mapping of every field."""
        return _plain(asdict(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "teacher.json") -> "StoreSpec":
        """Parse the mapping written by :meth:`to_json`; unknown fields, wrong types and absurd values are refused."""
        names = {f.name for f in fields(cls)}
        missing = sorted(names - set(data) - {"versions", "dtype"})
        if missing:
            raise StoreError(f"{where}: missing field(s) {', '.join(missing)}; is this an embedding store?")
        unknown = sorted(set(data) - names - {"store"})
        if unknown:
            raise StoreError(
                f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; written by another program or "
                "a newer version, refusing it"
            )
        for name, value in data.items():
            if name in _FIELD_TYPES and not _is_type(value, _FIELD_TYPES[name]):
                raise StoreError(
                    f"{where}: field {name!r} = {str(value)[:60]!r} is not {_FIELD_TYPES[name]}; the store is damaged"
                )
        for name in ("hop_seconds", "window_seconds", "frame0_center_seconds"):
            if not math.isfinite(data[name]) or abs(data[name]) > 1e6:
                raise StoreError(f"{where}: {name} = {data[name]!r} is not a finite number of seconds")
        if not 0 < data["sample_rate"] <= 10**6 or not 0 < data["dim"] <= MAX_DIM:
            raise StoreError(
                f"{where}: sample_rate {data['sample_rate']!r} or dim {data['dim']!r} out of range "
                f"(1..1000000 Hz, 1..{MAX_DIM})"
            )
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def itemsize(self) -> int:
        """Bytes of one stored value."""
        return {"float16": 2, "float32": 4, "int16": 2, "uint8": 1}[self.dtype]

    @property
    def quantised(self) -> bool:
        """Whether the frames are stored as 8-bit codes (``dtype: uint8``) that readers dequantise."""
        return self.dtype == "uint8"

    @property
    def frame_dtype(self) -> str:
        """The dtype reads return: the stored dtype, or ``float32`` for the 8-bit form."""
        return "float32" if self.quantised else self.dtype


@dataclass(frozen=True)
class StoreLayout:
    """How a store lays its frames out on disk (recorded in ``teacher.json`` under ``"store"``).

    Attributes:
        backend: ``zarr``, ``hdf5`` or ``memmap`` (read-only exports).
        chunk_frames: frames per chunk (the unit of reading); at least the longest window read.
        compression: ``none`` (default: embeddings barely compress) or ``zstd``.
    """

    backend: str
    chunk_frames: int
    compression: str = "none"

    def to_json(self) -> dict[str, Any]:
        return {"format": STORE_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, where: str = "teacher.json") -> "StoreLayout":
        if not isinstance(data, Mapping):
            raise StoreError(f"{where}: the 'store' section is not a JSON object")
        unknown = sorted(set(data) - {"format", "backend", "chunk_frames", "compression"})
        if unknown:
            raise StoreError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))} in 'store'; refusing it")
        fmt = data.get("format")
        if fmt != STORE_FORMAT:
            raise StoreError(
                f"{where}: store format {fmt!r} is not {STORE_FORMAT!r}; this version cannot read it"
            )
        try:
            backend, chunk, compression = data["backend"], data["chunk_frames"], data.get("compression", "none")
        except KeyError as exc:
            raise StoreError(f"{where}: store layout lacks {exc.args[0]!r}") from None
        if not isinstance(backend, str) or compression not in COMPRESSIONS:
            raise StoreError(f"{where}: store backend {backend!r} or compression {compression!r} is not valid")
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= MAX_CHUNK_FRAMES:
            raise StoreError(f"{where}: chunk_frames {str(chunk)[:40]!r} is not an integer in [1, {MAX_CHUNK_FRAMES}]")
        return cls(backend=backend, chunk_frames=chunk, compression=compression)


def default_chunk_frames(spec: StoreSpec, *, max_window_seconds: float = MAX_WINDOW_SECONDS) -> int:
    """Frames per chunk: about :data:`TARGET_CHUNK_BYTES`, and never shorter than a window.

    A window of ``w`` frames touches at most two chunks when ``w <= chunk_frames + 1``; the
    chunk is therefore made at least ``max_window_seconds / hop`` frames long (OpenL3-6144
    at 0.1 s gets 301 frames, 3.5 MiB). Audio caches get 2^18 samples (16 s at 16 kHz), and
    at least ``max_window_seconds`` of samples.
    """
    frame_bytes = spec.dim * spec.itemsize
    by_size = max(1, TARGET_CHUNK_BYTES // frame_bytes)
    if spec.clip_level or spec.hop_seconds <= 0:
        return int(by_size)
    by_window = int(math.ceil(max_window_seconds / spec.hop_seconds)) + 1
    return int(max(by_size, by_window))


def library_versions() -> dict[str, str]:
    """Versions of the recorded libraries that are installed, plus Python and the pipeline."""

    out = {"python": platform.python_version(), "pipeline": __version__}
    for name in RECORDED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def read_teacher_json(text: str, *, where: str) -> tuple[StoreSpec, StoreLayout]:
    """Parse ``teacher.json`` text into its spec and layout."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoreError(f"{where} is not valid JSON ({exc}); the store is damaged") from None
    if not isinstance(data, dict) or "store" not in data:
        raise StoreError(f"{where} has no 'store' section; it was not written by this pipeline")
    return StoreSpec.from_json(data, where=where), StoreLayout.from_json(data["store"], where=where)


def teacher_json_text(spec: StoreSpec, layout: StoreLayout) -> str:
    """The text of ``teacher.json`` for ``spec`` and ``layout``."""
    return json.dumps({**spec.to_json(), "store": layout.to_json()}, indent=2, sort_keys=False) + "\n"
