"""OpenL3 teacher (Cramer et al. 2019): 1 s windows at 48 kHz -> 512 or 6144-d embeddings.

Weights are the official Keras files ``openl3_audio_<input_repr>_<content_type>.h5``
that ``pip install openl3`` places in the package folder (its build step fetches them,
so that needs internet access), or any copy of them given as ``teachers.openl3.weights``.
Two backends: ``torch`` (our port, :mod:`pipeline.teachers.openl3_net`, batched on the
device, no TensorFlow) and ``openl3`` (the package itself, TensorFlow); ``auto`` takes the
package when it is installed.

Geometry, as ``openl3.get_audio_embedding``: with ``center`` the track is preceded by
0.5 s of zeros, windows of 48 000 samples start every ``int(hop_seconds * 48000)``
samples, and the end is zero-padded to a whole hop (a short track gives one window).
Frame ``i`` is centered at ``i * hop`` seconds when centered (openl3's timestamps), at
``0.5 + i * hop`` otherwise (openl3 then reports window starts, ``i * hop``).
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.errors import ConfigError, TeacherError, WeightsNotFoundError
from pipeline.teachers.base import Teacher, WindowGrid, register_teacher
from pipeline.teachers.weights import package_dir, require_files, resolve_file

SAMPLE_RATE = 48000
CONTENT_TYPES = ("music", "env")
INPUT_REPRS = ("linear", "mel128", "mel256")
EMBEDDING_SIZES = (512, 6144)
FRONTENDS = ("librosa", "kapre", "kapre-0.1.4")
PAD_MODES = ("constant", "reflect")
BACKENDS = ("auto", "torch", "openl3")
#: Windows per forward pass inside :meth:`OpenL3Teacher.embed_windows` (bounds memory).
CHUNK_WINDOWS = 64
_OFFICIAL_NAME = re.compile(r"openl3_audio_(linear|mel128|mel256)_(music|env)")


def _choice(value: Any, valid: tuple[Any, ...], key: str) -> None:
    if value not in valid:
        raise ConfigError(f"teachers.openl3.{key} must be one of {', '.join(map(str, valid))}; got {value!r}")


@dataclass(frozen=True)
class OpenL3Config:
    """Settings of the OpenL3 teacher (``teachers.openl3`` in ``params.yaml``).

    Attributes:
        content_type: ``music`` or ``env`` (which training set the weights come from).
        input_repr: ``linear``, ``mel128`` or ``mel256`` spectrogram input.
        embedding_size: 512 or 6144 (max-pool sizes of openl3; same weights).
        hop_seconds: seconds between window starts (openl3 uses ``int(hop * 48000)`` samples).
        center: prepend half a window of zeros so frame ``i`` is centered at ``i * hop``.
        frontend: ``kapre`` (openl3 0.4.x default), ``librosa`` (openl3 0.4.x librosa front
            end) or ``kapre-0.1.4`` (openl3 <= 0.3.x; HTK mel); see :mod:`~pipeline.teachers.openl3_net`.
        pad_mode: centering pad of the ``librosa`` mel front end: ``constant`` (librosa >= 0.9)
            or ``reflect`` (librosa <= 0.8). Ignored by the other front ends.
        backend: ``torch``, ``openl3`` (the TensorFlow package) or ``auto`` (the package if installed).
        weights: an official ``.h5`` file or a folder holding ``openl3_audio_<repr>_<content>.h5``;
            ``None`` looks in the installed ``openl3`` package.
    """

    content_type: str = "music"
    input_repr: str = "mel128"
    embedding_size: int = 512
    hop_seconds: float = 0.96
    center: bool = True
    frontend: str = "kapre"
    pad_mode: str = "constant"
    backend: str = "auto"
    weights: str | None = None
    precision: str = "float32"

    def __post_init__(self) -> None:
        _choice(self.content_type, CONTENT_TYPES, "content_type")
        _choice(self.input_repr, INPUT_REPRS, "input_repr")
        _choice(self.embedding_size, EMBEDDING_SIZES, "embedding_size")
        _choice(self.frontend, FRONTENDS, "frontend")
        _choice(self.pad_mode, PAD_MODES, "pad_mode")
        _choice(self.backend, BACKENDS, "backend")
        if not self.hop_seconds > 0 or int(self.hop_seconds * SAMPLE_RATE) < 1:
            raise ConfigError(
                f"teachers.openl3.hop_seconds must be at least 1/48000 s; got {self.hop_seconds!r}"
            )


@register_teacher
class OpenL3Teacher(Teacher):
    """OpenL3 audio embeddings, one frame per 1 s window."""

    name: ClassVar[str] = "openl3"
    config_type: ClassVar[type] = OpenL3Config
    weights_hint: ClassVar[str] = (
        "install them with `pip install openl3` on a machine with internet access (its build downloads "
        "openl3_audio_<repr>_<content>.h5), or point teachers.openl3.weights / --weights at the official "
        ".h5 file(s)"
    )

    def __init__(self, config: OpenL3Config | None = None) -> None:
        super().__init__(config)
        self._model: Any = None
        self._backend: str | None = None

    # ---- geometry -------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def embedding_dim(self) -> int:
        return int(self.config.embedding_size)

    @property
    def grid(self) -> WindowGrid:
        hop = int(self.config.hop_seconds * SAMPLE_RATE)  # openl3: hop_len = int(hop_size * TARGET_SR)
        first = -(SAMPLE_RATE // 2) if self.config.center else 0
        return WindowGrid(sample_rate=SAMPLE_RATE, window=SAMPLE_RATE, hop=hop, first_start=first, tail="pad")

    # ---- weights --------------------------------------------------------------------
    @property
    def weights_filename(self) -> str:
        """Official file name of the configured model."""
        return f"openl3_audio_{self.config.input_repr}_{self.config.content_type}.h5"

    def weight_files(self) -> list[Path]:
        path = resolve_file(self.config.weights, self.weights_filename, package_dir("openl3"))
        if path is None:
            raise TeacherError(f"openl3 weights not configured and the openl3 package is not installed; "
                               f"{self.weights_hint}")
        return [path]

    def resolved_backend(self) -> str:
        """``torch`` or ``openl3``: what ``backend: auto`` means on this machine (no import)."""
        if self.config.backend != "auto":
            return str(self.config.backend)
        return "openl3" if package_dir("openl3") is not None else "torch"

    def _check_files(self) -> Path:
        try:
            files = self.weight_files()
        except TeacherError:
            raise WeightsNotFoundError(
                f"openl3 weights not found: teachers.openl3.weights is not set and the openl3 package "
                f"(which would hold {self.weights_filename}) is not installed; {self.weights_hint}"
            ) from None
        require_files(self.name, files, self.weights_hint)
        path = files[0]
        match = _OFFICIAL_NAME.search(path.name)
        if match and match.groups() != (self.config.input_repr, self.config.content_type):
            raise ConfigError(
                f"{str(path)!r} holds the {match.group(1)}/{match.group(2)} model but teachers.openl3 "
                f"asks for input_repr={self.config.input_repr!r}, content_type={self.config.content_type!r}; "
                f"fix one of them"
            )
        return path

    def _load(self, device: str) -> None:
        path = self._check_files()
        self._backend = self.resolved_backend()
        if self._backend == "openl3":
            if self.precision != "float32":
                raise ConfigError(f"teachers.openl3.precision {self.precision!r} needs backend: torch "
                                  "(the openl3 TensorFlow package runs in float32 only)")
            self._model = _load_keras(path, self.config)
            return
        from pipeline.teachers.openl3_net import OpenL3Model

        config = self.config
        model = OpenL3Model(config.input_repr, config.embedding_size, config.frontend, config.pad_mode)
        model.net.load_keras_h5(path)
        self._model = model.to(device).eval()

    # ---- inference ------------------------------------------------------------------
    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Embed 1 s windows.

        Args:
            windows: float32 (n, 48000) mono audio at 48 kHz.

        Returns:
            float32 (n, 1, embedding_size).
        """
        if self._model is None:
            raise TeacherError("the openl3 teacher is not loaded; call load() first")
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != SAMPLE_RATE:
            raise TeacherError(f"openl3 windows must be (n, {SAMPLE_RATE}) float32, got {windows.shape}")
        if self._backend == "openl3":
            out = _predict_keras(self._model, windows, self.config)
            return out.astype(np.float32, copy=False)[:, None, :]
        from pipeline.teachers.precision import forward_in_chunks

        return forward_in_chunks(self._model, windows, device=self.device, rows=CHUNK_WINDOWS,
                                 dim=self.embedding_dim, precision=self.precision)

    def describe(self) -> dict[str, Any]:
        """Provenance; ``backend: auto`` is replaced by the backend that actually runs.

        ``loader_normalization`` records the paper's load-time shift (``x - 2.24``);
        stored frames are raw embeddings.
        """
        info = super().describe()
        info["config"]["backend"] = self._backend or self.resolved_backend()
        info["config"]["loader_normalization"] = {"subtract": 2.24, "divide": 1.0}
        return info


def _load_keras(path: Path, config: OpenL3Config) -> Any:
    """The openl3 package's own Keras model for ``path`` (TensorFlow is imported here only)."""
    if config.frontend == "kapre-0.1.4":
        raise ConfigError("teachers.openl3.frontend 'kapre-0.1.4' needs backend: torch "
                          "(the openl3 package only has 'kapre' and 'librosa')")
    try:
        import openl3.models
    except ImportError as exc:
        raise TeacherError(f"teachers.openl3.backend 'openl3' needs the openl3 package ({exc}); "
                           f"install it or use backend: torch") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return openl3.models.load_audio_embedding_model_from_path(
            str(path), config.input_repr, config.embedding_size, frontend=config.frontend)


def _predict_keras(model: Any, windows: np.ndarray, config: OpenL3Config) -> np.ndarray:
    """Run the package's model on already-cut windows (one openl3 frame each, ``center=False``)."""
    import openl3

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openl3 warns about all-zero windows
        inputs = [
            openl3.preprocess_audio(w, SAMPLE_RATE, hop_size=1.0, center=False,
                                    input_repr=config.input_repr if config.frontend == "librosa" else None)
            for w in windows
        ]
    return np.asarray(model.predict(np.concatenate(inputs), verbose=0, batch_size=CHUNK_WINDOWS))
