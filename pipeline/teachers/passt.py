"""PaSST teacher (``hear21passt`` ``passt_s_swa_p16_128_ap476``, "embed_only"), as the paper used it.

768-d frames from 0.96 s windows with a 0.96 s hop, frame ``k`` centered at ``k * 0.96`` s
(paper section 2: a locally modified ``hear21passt.load_model(mode="embed_only",
timestamp_window=960, timestamp_hop=960)``). Each window goes through PaSST's own mel
front end and the PaSST-S transformer; the embedding is the mean of the CLS and
distillation tokens after the final LayerNorm (:mod:`pipeline.teachers.passt_net`).

Frame count: like hear21passt's ``get_timestamp_embeddings`` (pad ``window // 2`` on both
sides, then slide), a track of ``n`` samples gives ``1 + (n + 2 * (window // 2) - window) // hop``
frames, i.e. one per window center in ``[0, n]`` samples (11 for a 10 s clip, 31 for 29.1 s).

**Difference from the original at the clip edges:** hear21passt *reflect*-pads the
half windows before the first and after the last sample; the window grid of this project
pads with *zeros*, so that long files can be cut into blocks and batched (and tracks
shorter than half a window still work, where reflect padding raises). Frames whose
window lies inside the track are identical; the first and the last frame (more with a
hop shorter than the window) see silence instead of mirrored audio in their outer part.

Weights: the release checkpoint ``passt-s-f128-p16-s10-ap.476-swa.pt`` (GitHub release
``v0.0.1-audioset`` of kkoutini/PaSST), read from ``teachers.passt.weights`` or, when that
is null, from the torch hub cache where hear21passt leaves it
(``$TORCH_HOME/hub/checkpoints/``, default ``~/.cache/torch/hub/checkpoints/``). Nothing
is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.errors import ConfigError, TeacherError
from pipeline.teachers.base import Teacher, WindowGrid, register_teacher
from pipeline.teachers.weights import require_files, resolve_file, torch_hub_checkpoints

CHECKPOINT_NAME = "passt-s-f128-p16-s10-ap.476-swa.pt"
CHECKPOINT_URL = f"https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/{CHECKPOINT_NAME}"
SAMPLE_RATE = 32000
# The paper's model: PaSST-S, 768-d tokens, 12 blocks of 12 heads, 527 AudioSet classes.
ARCHITECTURE: dict[str, Any] = {"embed_dim": 768, "depth": 12, "num_heads": 12, "num_classes": 527}


@dataclass(frozen=True)
class PasstConfig:
    """``teachers.passt`` settings.

    Attributes:
        weights: path of ``passt-s-f128-p16-s10-ap.476-swa.pt`` (or a folder holding it);
            null looks in the torch hub cache (``$TORCH_HOME/hub/checkpoints``).
        window_seconds: audio each embedding sees (paper 0.96; at most 9.9).
        hop_seconds: seconds between frame centers (paper 0.96).
    """

    weights: str | None = None
    window_seconds: float = 0.96
    hop_seconds: float = 0.96
    precision: str = "float32"


@dataclass(frozen=True)
class CenteredGrid(WindowGrid):
    """A window grid that keeps every window whose center lies in ``[0, n_samples]``.

    hear21passt's count for ``first_start = -(window // 2)``: ``1 + (n - first_start * 2
    - window) // hop``. ``tail`` is recorded as ``"center"``; cutting is inherited
    (zero padding outside the track).
    """

    tail: str = "center"

    def num_windows(self, n_samples: int) -> int:
        """Number of windows for a track of ``n_samples`` samples (>= 1)."""
        span = n_samples - 2 * self.first_start - self.window
        return 1 if span < 0 else 1 + span // self.hop


@register_teacher
class PasstTeacher(Teacher):
    """PaSST-S AudioSet teacher: 768-d frames every 0.96 s, centered at ``k * 0.96`` s."""

    name: ClassVar[str] = "passt"
    config_type: ClassVar[type] = PasstConfig
    weights_hint: ClassVar[str] = (
        f"download {CHECKPOINT_NAME} (the checkpoint hear21passt's passt_s_swa_p16_128_ap476 loads) "
        f"from {CHECKPOINT_URL} and set teachers.passt.weights to its path"
    )
    #: Architecture hyper-parameters; tests shrink them in a subclass for speed.
    architecture: ClassVar[dict[str, Any]] = ARCHITECTURE
    #: Windows per forward pass inside :meth:`embed_windows` (bounds memory, not results).
    batch_windows: ClassVar[int] = 64

    def __init__(self, config: PasstConfig | None = None) -> None:
        super().__init__(config)
        cfg: PasstConfig = self.config
        window = round(cfg.window_seconds * SAMPLE_RATE)
        hop = round(cfg.hop_seconds * SAMPLE_RATE)
        if not 0.5 <= cfg.window_seconds <= 9.9:
            raise ConfigError(
                f"teachers.passt.window_seconds must be within 0.5..9.9 s (PaSST's positional "
                f"embedding covers 10 s), got {cfg.window_seconds!r}"
            )
        if hop <= 0:
            raise ConfigError(f"teachers.passt.hop_seconds must be positive, got {cfg.hop_seconds!r}")
        self._grid = CenteredGrid(SAMPLE_RATE, window, hop, first_start=-(window // 2))
        self._net: Any = None
        self._mel: Any = None

    # ---- geometry -------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def embedding_dim(self) -> int:
        return int(self.architecture["embed_dim"])

    @property
    def grid(self) -> WindowGrid:
        return self._grid

    # ---- weights --------------------------------------------------------------------
    def weight_files(self) -> list[Path]:
        """The checkpoint file (``teachers.passt.weights``, or the torch hub cache)."""
        path = resolve_file(self.config.weights, CHECKPOINT_NAME, torch_hub_checkpoints())
        assert path is not None  # a default folder is always given
        return [path]

    def _load(self, device: str) -> None:
        from pipeline.teachers import passt_net

        (path,) = self.weight_files()
        require_files("PaSST", [path], self.weights_hint)
        net = passt_net.PaSST(**self.architecture)
        passt_net.load_weights(net, passt_net.read_state_dict(path), path)
        self._net = net.eval().to(device)
        self._mel = passt_net.PasstMel().to(device)

    # ---- inference ------------------------------------------------------------------
    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Embed windows of ``grid.window`` samples at 32 kHz.

        Args:
            windows: float32 (n, grid.window).

        Returns:
            float32 (n, 1, embedding_dim).
        """
        if self._net is None:
            raise TeacherError("the PaSST teacher is not loaded; call load() first")
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self._grid.window:
            raise TeacherError(
                f"PaSST expects windows of shape (n, {self._grid.window}), got {windows.shape}"
            )
        from pipeline.teachers.precision import forward_in_chunks

        return forward_in_chunks(lambda batch: self._net.embed(self._mel(batch)), windows, device=self.device,
                                 rows=self.batch_windows, dim=self.embedding_dim,
                                 precision=self.precision)
