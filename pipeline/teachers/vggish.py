"""VGGish teacher (Hershey et al. 2017; AudioSet): 0.96 s examples at 16 kHz -> 128-d embeddings.

The paper ran torchvggish from torch.hub with ``postprocess=True``: PCA + whitening and
8-bit quantisation, the format of the released AudioSet embeddings. This teacher stores
those post-processed values as floats in 0..255 (exact in float16); the paper's
load-time normalisation ``(x - 128) / 256`` is *not* applied to the stored frames but
recorded in ``teacher.json`` (``config.loader_normalization``) for the loader to apply.

Weights are never downloaded. Give the torchvggish release files ``vggish-10086976.pth``
and ``vggish_pca_params-970ea276.pth`` (``teachers.vggish.weights`` / ``pca_weights``, a
file or a folder), or the AudioSet TF-slim files ``vggish_model.ckpt`` and
``vggish_pca_params.npz`` (reading the checkpoint imports TensorFlow). By default they
are looked for in the torch hub cache, where ``torch.hub`` would have put them.

Geometry: VGGish frames the whole track into 25 ms / 10 ms STFT frames and groups 96 of
them into non-overlapping examples, dropping the incomplete rest. Example ``k`` sees
samples ``[15360 k, 15360 k + 15600)``: a window of 15 600 samples (96 frames of 400
samples, hop 160) every 15 360 samples (0.96 s), centered at ``0.4875 + 0.96 k`` s.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.errors import TeacherError
from pipeline.teachers.base import Teacher, WindowGrid, register_teacher
from pipeline.teachers.weights import require_files, torch_hub_checkpoints

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 15600  # (96 - 1) * 160 + 400
HOP_SAMPLES = 15360  # 96 * 160
EMBEDDING_SIZE = 128
TORCH_WEIGHTS = "vggish-10086976.pth"
TORCH_PCA = "vggish_pca_params-970ea276.pth"
SLIM_WEIGHTS = "vggish_model.ckpt"
SLIM_PCA = "vggish_pca_params.npz"
#: Windows per forward pass inside :meth:`VGGishTeacher.embed_windows`.
CHUNK_WINDOWS = 256


@dataclass(frozen=True)
class VGGishConfig:
    """Settings of the VGGish teacher (``teachers.vggish`` in ``params.yaml``).

    Attributes:
        postprocess: apply the AudioSet PCA + 8-bit quantisation (values 0..255), as the paper did.
        weights: ``vggish-10086976.pth`` (torchvggish), ``vggish_model.ckpt`` (TF-slim) or a folder
            holding one of them; ``None`` looks in the torch hub cache (``~/.cache/torch/hub/checkpoints``).
        pca_weights: ``vggish_pca_params-970ea276.pth`` or ``vggish_pca_params.npz``, or a folder;
            ``None`` looks next to the weights. Unused without ``postprocess``.
    """

    postprocess: bool = True
    weights: str | None = None
    pca_weights: str | None = None
    precision: str = "float32"


def _pick(folder: Path, names: tuple[str, ...]) -> Path:
    """First of ``names`` present in ``folder`` (else the first name, reported as missing)."""
    for name in names:
        if (folder / name).exists() or (folder / f"{name}.index").exists():
            return folder / name
    return folder / names[0]


def _checkpoint_files(path: Path) -> list[Path]:
    """Files of a TF checkpoint prefix: the V1 single file, or the V2 ``.index`` + data shards."""
    if path.is_file() or not Path(f"{path}.index").is_file():
        return [path]
    return [Path(f"{path}.index"), *sorted(path.parent.glob(f"{path.name}.data-*"))]


@register_teacher
class VGGishTeacher(Teacher):
    """VGGish embeddings, one frame per non-overlapping 0.96 s example."""

    name: ClassVar[str] = "vggish"
    config_type: ClassVar[type] = VGGishConfig
    weights_hint: ClassVar[str] = (
        f"get the torchvggish v0.1 release files {TORCH_WEIGHTS} and {TORCH_PCA} (or the AudioSet TF-slim "
        f"{SLIM_WEIGHTS} and {SLIM_PCA}) and point teachers.vggish.weights / pca_weights (or --weights) "
        f"at them "
        f"or their folder; by default they are looked for in the torch hub cache"
    )

    def __init__(self, config: VGGishConfig | None = None) -> None:
        super().__init__(config)
        self._model: Any = None

    # ---- geometry -------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def embedding_dim(self) -> int:
        return EMBEDDING_SIZE

    @property
    def grid(self) -> WindowGrid:
        return WindowGrid(sample_rate=SAMPLE_RATE, window=WINDOW_SAMPLES, hop=HOP_SAMPLES,
                          first_start=0, tail="drop")

    # ---- weights --------------------------------------------------------------------
    def _weights_path(self) -> Path:
        configured = Path(self.config.weights).expanduser() if self.config.weights else None
        if configured is None or configured.is_dir():
            return _pick(configured or torch_hub_checkpoints(), (TORCH_WEIGHTS, SLIM_WEIGHTS))
        return configured

    def _pca_path(self, weights: Path) -> Path:
        slim = weights.name.startswith(SLIM_WEIGHTS)
        names = (SLIM_PCA, TORCH_PCA) if slim else (TORCH_PCA, SLIM_PCA)
        configured = Path(self.config.pca_weights).expanduser() if self.config.pca_weights else None
        if configured is not None and not configured.is_dir():
            return configured
        return _pick(configured or weights.parent, names)

    def weight_files(self) -> list[Path]:
        weights = self._weights_path()
        files = _checkpoint_files(weights) if weights.name.endswith(".ckpt") else [weights]
        if self.config.postprocess:
            files.append(self._pca_path(weights))
        return files

    def _load(self, device: str) -> None:
        require_files(self.name, self.weight_files(), self.weights_hint)
        from pipeline.teachers.vggish_net import Postprocessor, VGGishModel, load_net, read_pca

        weights = self._weights_path()
        pca = read_pca(self._pca_path(weights)) if self.config.postprocess else None  # the small file first
        model = VGGishModel(postprocess=False)
        load_net(model.net, weights)
        if pca is not None:
            model.pproc = Postprocessor(*pca)
        self._model = model.to(device).eval()

    # ---- inference ------------------------------------------------------------------
    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Embed 0.96 s examples.

        Args:
            windows: float32 (n, 15600) mono audio at 16 kHz.

        Returns:
            float32 (n, 1, 128): post-processed values in 0..255 with ``postprocess``, else raw
            (non-negative) embeddings.
        """
        if self._model is None:
            raise TeacherError("the vggish teacher is not loaded; call load() first")
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise TeacherError(f"vggish windows must be (n, {WINDOW_SAMPLES}) float32, got {windows.shape}")
        from pipeline.teachers.precision import forward_in_chunks

        return forward_in_chunks(self._model, windows, device=self.device, rows=CHUNK_WINDOWS,
                                 dim=EMBEDDING_SIZE, precision=self.precision)

    def describe(self) -> dict[str, Any]:
        """Provenance, plus the loader normalisation the paper applies to post-processed frames."""
        info = super().describe()
        info["config"].pop("pca_weights", None)  # a path; the sha256 covers the file
        post = self.config.postprocess
        info["config"]["loader_normalization"] = {
            "subtract": 128.0 if post else 0.0, "divide": 256.0 if post else 1.0}
        return info
