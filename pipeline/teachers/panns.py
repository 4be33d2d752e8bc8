"""PANNs teacher: CNN14 (32 kHz, ``Cnn14_mAP=0.431.pth``), its 2048-d ``embedding`` output.

``level: clip`` (default, the paper's setting, docs/method.md, "Teachers and their frames"): one 2048-d frame
per clip, centered at half its duration, as ``panns_inference.AudioTagging.inference``
gives for a batch of one. The whole clip goes through the network at once, so clips
longer than ``max_clip_seconds`` are refused with a hint to use ``level: frame``
(a one-hour file must not be pushed through CNN14 in one piece).

``level: frame`` (an option for long recordings and time-aligned distillation):
windows of ``window_seconds`` every ``hop_seconds``, centered on the hop cells, so frame
``k`` is centered at ``(k + 0.5) * hop_seconds`` and sees ``(window - hop) / 2`` seconds
of context on each side (zeros beyond the track); the last frame covers the end of the
track. Defaults 2 s / 1 s: 10 frames for a 10 s clip, one per second, each with a
second of context (CNN14 pools time by 32, so 2 s windows keep 6 time steps before
the global pooling, where 1 s windows would keep 3).

Clips shorter than 0.31 s (the shortest input CNN14's five poolings accept; the
original raises there) are zero-padded at the end to 0.31 s.

Weights: ``Cnn14_mAP=0.431.pth`` of the PANNs release on Zenodo (record 3987831), from
``teachers.panns.weights`` or, when that is null, ``~/panns_data/`` where
``panns_inference`` keeps it. Nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from pipeline.errors import ConfigError, TeacherError
from pipeline.teachers.base import Teacher, WindowGrid, register_teacher
from pipeline.teachers.weights import require_files, resolve_file

CHECKPOINT_NAME = "Cnn14_mAP=0.431.pth"
CHECKPOINT_URL = "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth"
SAMPLE_RATE = 32000
MIN_SAMPLES = 31 * 320  # panns_net.MIN_SAMPLES, kept here so importing stays torch-free
#: The paper's model: CNN14 blocks of 64 .. 2048 channels, 527 AudioSet classes.
ARCHITECTURE: dict[str, Any] = {"widths": (64, 128, 256, 512, 1024, 2048), "num_classes": 527}
LEVELS = ("clip", "frame")


@dataclass(frozen=True)
class PannsConfig:
    """``teachers.panns`` settings.

    Attributes:
        weights: path of ``Cnn14_mAP=0.431.pth`` (or a folder holding it); null looks in
            ``~/panns_data`` (where ``panns_inference`` keeps it).
        level: ``clip`` (one frame per clip, the paper) or ``frame`` (windows).
        window_seconds: frame level: audio each frame sees (>= 0.32).
        hop_seconds: frame level: seconds between frame centers.
        max_clip_seconds: clip level: longest clip embedded in one piece; longer ones are
            an error suggesting ``level: frame``.
    """

    weights: str | None = None
    level: str = "clip"
    window_seconds: float = 2.0
    hop_seconds: float = 1.0
    max_clip_seconds: float = 60.0
    precision: str = "float32"


@register_teacher
class PannsTeacher(Teacher):
    """CNN14 AudioSet teacher: a 2048-d embedding per clip (or per window at frame level)."""

    name: ClassVar[str] = "panns"
    config_type: ClassVar[type] = PannsConfig
    weights_hint: ClassVar[str] = (
        f"download {CHECKPOINT_NAME} from the PANNs Zenodo release ({CHECKPOINT_URL}) "
        "and set teachers.panns.weights to its path"
    )
    #: Architecture hyper-parameters; tests shrink them in a subclass for speed.
    architecture: ClassVar[dict[str, Any]] = ARCHITECTURE
    #: Audio seconds per forward pass inside :meth:`embed_windows` (bounds memory, not results).
    pass_seconds: ClassVar[float] = 64.0

    def __init__(self, config: PannsConfig | None = None) -> None:
        super().__init__(config)
        cfg: PannsConfig = self.config
        if cfg.level not in LEVELS:
            raise ConfigError(f"teachers.panns.level must be one of {', '.join(LEVELS)}, got {cfg.level!r}")
        if cfg.max_clip_seconds <= 0:
            raise ConfigError(
                f"teachers.panns.max_clip_seconds must be positive, got {cfg.max_clip_seconds!r}"
            )
        self._grid: WindowGrid | None = None
        if cfg.level == "frame":
            window = round(cfg.window_seconds * SAMPLE_RATE)
            hop = round(cfg.hop_seconds * SAMPLE_RATE)
            if window < MIN_SAMPLES + 320:
                raise ConfigError(
                    f"teachers.panns.window_seconds must be at least 0.32 (CNN14 pools time by 32), "
                    f"got {cfg.window_seconds!r}"
                )
            if not 0 < hop <= window:
                raise ConfigError(
                    f"teachers.panns.hop_seconds must be in (0, window_seconds={cfg.window_seconds}], "
                    f"got {cfg.hop_seconds!r}"
                )
            self._grid = WindowGrid(SAMPLE_RATE, window, hop, first_start=-((window - hop) // 2), tail="pad")
        self._net: Any = None

    # ---- geometry -------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def embedding_dim(self) -> int:
        return int(self.architecture["widths"][-1])

    @property
    def grid(self) -> WindowGrid | None:
        return self._grid

    # ---- weights --------------------------------------------------------------------
    def weight_files(self) -> list[Path]:
        """The checkpoint file (``teachers.panns.weights``, or ``~/panns_data``)."""
        path = resolve_file(self.config.weights, CHECKPOINT_NAME, Path.home() / "panns_data")
        assert path is not None  # a default folder is always given
        return [path]

    def _load(self, device: str) -> None:
        from pipeline.teachers import panns_net

        (path,) = self.weight_files()
        require_files("PANNs", [path], self.weights_hint)
        net = panns_net.Cnn14(**self.architecture)
        panns_net.load_weights(net, panns_net.read_state_dict(path), path)
        self._net = net.eval().to(device)

    # ---- inference ------------------------------------------------------------------
    def check_clip(self, n_samples: int) -> None:
        """Refuse a clip too long for clip-level embedding (callers may check before decoding).

        Args:
            n_samples: clip length in samples at 32 kHz.

        Raises:
            TeacherError: longer than ``max_clip_seconds``; the message suggests ``level: frame``.
        """
        limit = self.config.max_clip_seconds
        if n_samples > limit * SAMPLE_RATE:
            raise TeacherError(
                f"a {n_samples / SAMPLE_RATE:.1f} s clip is longer than "
                f"teachers.panns.max_clip_seconds={limit} "
                "(clip level runs the whole clip through CNN14 at once); set teachers.panns.level: frame "
                "for long recordings, or raise max_clip_seconds"
            )

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Embed whole clips (``level: clip``) or windows of ``grid.window`` samples (``level: frame``).

        Args:
            windows: float32 (n, samples) mono audio at 32 kHz.

        Returns:
            float32 (n, 1, embedding_dim).

        Raises:
            TeacherError: not loaded, a clip longer than ``max_clip_seconds``, or a bad shape.
        """
        if self._net is None:
            raise TeacherError("the PANNs teacher is not loaded; call load() first")
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2:
            raise TeacherError(f"PANNs expects (n, samples) audio, got shape {windows.shape}")
        n, samples = windows.shape
        if self._grid is not None and samples != self._grid.window:
            raise TeacherError(
                f"PANNs frame level expects windows of {self._grid.window} samples, got {samples}"
            )
        if self._grid is None:
            self.check_clip(samples)
        if samples < MIN_SAMPLES:
            windows = np.pad(windows, ((0, 0), (0, MIN_SAMPLES - samples)))
        from pipeline.teachers.precision import forward_in_chunks

        rows = max(1, int(self.pass_seconds * SAMPLE_RATE) // windows.shape[1])
        return forward_in_chunks(self._net.embed, windows, device=self.device, rows=rows, dim=self.embedding_dim,
                                 precision=self.precision)
