"""The musicnn teachers (Pons & Serra 2019): a PyTorch port of the TF1 checkpoints that the
``musicnn`` package ships (MTT_musicnn, MSD_musicnn, MTT_vgg, MSD_vgg).

Weights are read straight from the TF tensor bundle with numpy
(:mod:`pipeline.teachers.tf_checkpoint`): no TensorFlow at run time. The networks live in
:mod:`pipeline.teachers.musicnn_net`; ``tests/test_teacher_musicnn_tf.py`` checks them against
the original TF graph.

Geometry (16 kHz). musicnn's input is a librosa-style log-mel (n_fft 512, hop 256, 96 Slaney
bands to 8 kHz, power 2, periodic Hann, ``log10(10000 * S + 1)``), cut into patches of 187 mel
frames (2.992 s). A window is ``186 * 256 + 512 = 48 128`` samples starting at sample
``-256 + k * hop``, so its mel computed without centering equals frames ``k * hop / 256 ...
+187`` of upstream's whole-clip ``center=True`` mel (librosa >= 0.10 pads with zeros, as the
grid does). The patch hop is ``round(hop_seconds * 62.5)`` mel frames. Only whole windows are
kept (``tail="drop"``; upstream also keeps a last patch that reaches up to 256 samples into
its end padding, so a clip may get one patch fewer here); a clip shorter than one window
gives one zero-padded window.

Layers (``teachers.musicnn.layer``):

============  =====  ================================================================
layer         dim    what
============  =====  ================================================================
penultimate   200    BN'd ReLU dense before the tag layer (musicnn); for VGG = pool5
max_pool      753    max over the patch of [front end 561 + mid end 3 x 64]
mean_pool     753    mean over the patch of the same
logits        50     tag logits
taggram       50     sigmoid of the logits (tag names: :attr:`MusicnnTeacher.tags`)
pool5         256    VGG only: last pooled map, flattened (time, freq, channel)
timbral       408    frame level (62.5 Hz): the two timbral front-end branches
temporal      153    frame level: the three temporal front-end branches
cnn1..cnn3    64     frame level: mid-end layers (cnn2/cnn3 with residuals)
============  =====  ================================================================

Patch-level layers give one frame per window, centered on the window. Frame-level layers give
the 187 frames of each window and need non-overlapping patches (``hop_seconds`` = 187 mel
frames, 2.992 s); frame ``i`` is mel frame ``i``, centered at ``i * 0.016`` s.

float16: upstream casts the mel power to float16 before ``log10(10000 * S + 1)``, which
overflows (inf) for loud input and then returns garbage tags. By default the port computes in
float32 (no cast); ``float16_cast: true`` rounds the mel power to float16 and back to float32
(the training data's quantisation, without the overflow).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, TeacherError, WeightsNotFoundError
from pipeline.teachers.base import Teacher, WindowGrid, register_teacher
from pipeline.teachers.tf_checkpoint import CheckpointReader, checkpoint_prefix
from pipeline.teachers.weights import package_dir

SAMPLE_RATE = 16000
MEL_HOP = 256
PATCH_FRAMES = 187
WINDOW_SAMPLES = (PATCH_FRAMES - 1) * MEL_HOP + 512  # 48 128

MODELS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
MUSICNN_LAYERS = {
    "penultimate": 200, "max_pool": 753, "mean_pool": 753, "logits": 50, "taggram": 50,
    "timbral": 408, "temporal": 153, "cnn1": 64, "cnn2": 64, "cnn3": 64,
}
VGG_LAYERS = {"penultimate": 256, "pool5": 256, "logits": 50, "taggram": 50}
FRAME_LEVEL_LAYERS = ("timbral", "temporal", "cnn1", "cnn2", "cnn3")

MTT_TAGS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
    "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing",
    "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal",
    "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance",
    "male voice", "female vocal", "beats", "harp", "cello", "no voice", "weird", "country", "metal",
    "female voice", "choral",
)
MSD_TAGS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock",
    "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill", "instrumental",
    "punk", "oldies", "blues", "hard rock", "ambient", "acoustic", "experimental", "female vocalist",
    "guitar", "Hip-Hop", "70s", "party", "country", "easy listening", "sexy", "catchy", "funk",
    "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House", "happy",
)

INSTALL_HINT = (
    "install the weights with `pip install --no-deps musicnn==0.1.0`, or set teachers.musicnn.weights "
    "to a folder holding the checkpoint's .index and .data-00000-of-00001 files"
)


@dataclass(frozen=True)
class MusicnnConfig:
    """Settings of the musicnn teacher (``params.yaml: teachers.musicnn``).

    Attributes:
        model: ``MTT_musicnn``, ``MSD_musicnn``, ``MTT_vgg`` or ``MSD_vgg``.
        layer: which activations become the embedding (see the module docstring).
        hop_seconds: hop between 3-s patches, rounded to whole mel frames (16 ms).
        weights: folder (or prefix) of a TF checkpoint; ``None`` = the installed ``musicnn``
            package's ``musicnn/<model>/``.
        float16_cast: round the mel power through float16 before the log (training data).
        precision: ``float32``, ``tf32``, ``bfloat16`` or ``float16`` for the network (the
            log-mel front end always runs in float32); see :mod:`pipeline.teachers.precision`.
    """

    model: str = "MTT_musicnn"
    layer: str = "penultimate"
    hop_seconds: float = 1.0
    weights: str | None = None
    float16_cast: bool = False
    precision: str = "float32"


@register_teacher
class MusicnnTeacher(Teacher):
    """musicnn / VGG tagger from the ``musicnn`` package, run in PyTorch."""

    name = "musicnn"
    config_type = MusicnnConfig
    weights_hint = INSTALL_HINT

    def __init__(self, config: MusicnnConfig | None = None) -> None:
        super().__init__(config)
        cfg: MusicnnConfig = self.config
        if cfg.model not in MODELS:
            raise ConfigError(f"teachers.musicnn.model {cfg.model!r} is unknown; valid: {', '.join(MODELS)}")
        layers = VGG_LAYERS if self.is_vgg else MUSICNN_LAYERS
        if cfg.layer not in layers:
            raise ConfigError(
                f"teachers.musicnn.layer {cfg.layer!r} is not a layer of {cfg.model}; "
                f"valid: {', '.join(layers)}"
            )
        self.layer = "pool5" if self.is_vgg and cfg.layer == "penultimate" else cfg.layer
        self._dim = layers[cfg.layer]
        if not cfg.hop_seconds > 0:
            raise ConfigError(f"teachers.musicnn.hop_seconds must be > 0, got {cfg.hop_seconds!r}")
        self.hop_frames = max(1, round(cfg.hop_seconds * SAMPLE_RATE / MEL_HOP))
        if self.frame_level and self.hop_frames != PATCH_FRAMES:
            raise ConfigError(
                f"teachers.musicnn.layer {cfg.layer!r} is frame-level and needs non-overlapping patches: "
                f"set teachers.musicnn.hop_seconds to {PATCH_FRAMES * MEL_HOP / SAMPLE_RATE} "
                f"(got {cfg.hop_seconds!r})"
            )
        self._grid = WindowGrid(SAMPLE_RATE, WINDOW_SAMPLES, self.hop_frames * MEL_HOP, first_start=-MEL_HOP,
                                tail="drop")
        #: windows per forward pass (bounds memory: ~25 MB per window on the musicnn front end).
        self.max_batch = 8
        #: compute shared mel frames / timbral rows of overlapping windows once (exact). The CPU
        #: path; on CUDA windows run as independent patches in a few batched kernels instead
        #: (3x the timbral FLOPs at hop 1 s, but fixed shapes and no per-run work).
        self.share_overlap = True
        self._net: Any = None
        self._logmel: Any = None

    # ---- geometry -------------------------------------------------------------------
    @property
    def is_vgg(self) -> bool:
        """Whether the model is a VGG (fixed 187-frame input) rather than musicnn."""
        return self.config.model.endswith("_vgg")

    @property
    def frame_level(self) -> bool:
        """Whether the layer gives one frame per mel frame (187 per window)."""
        return self.config.layer in FRAME_LEVEL_LAYERS

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def embedding_dim(self) -> int:
        return self._dim

    @property
    def grid(self) -> WindowGrid:
        return self._grid

    @property
    def frames_per_window(self) -> int:
        return PATCH_FRAMES if self.frame_level else 1

    @property
    def frame0_center_seconds(self) -> float:
        if self.frame_level:
            return 0.0  # mel frame 0 is centered on sample 0 (center=True convention)
        return super().frame0_center_seconds

    @property
    def tags(self) -> tuple[str, ...]:
        """The 50 tag names of the logits / taggram, in order."""
        return MTT_TAGS if self.config.model.startswith("MTT") else MSD_TAGS

    # ---- weights --------------------------------------------------------------------
    def checkpoint_prefix(self) -> str:
        """Prefix of the TF checkpoint (``<folder>/`` for musicnn's layout).

        Raises:
            WeightsNotFoundError: no ``weights`` path and no installed ``musicnn`` package.
        """
        if self.config.weights:
            return checkpoint_prefix(Path(self.config.weights).expanduser())
        folder = package_dir("musicnn")
        if folder is None:
            raise WeightsNotFoundError(
                f"musicnn weights for {self.config.model!r} not found "
                "(the musicnn package is not installed): "
                f"{INSTALL_HINT}"
            )
        return str(folder / self.config.model) + os.sep

    def weight_files(self) -> list[Path]:
        prefix = self.checkpoint_prefix()
        return [Path(prefix + ".index"), Path(prefix + ".data-00000-of-00001")]

    def _load(self, device: str) -> None:
        import torch

        from pipeline.teachers.musicnn_net import MUSICNN_VARIABLES, VGG_VARIABLES, LogMel, MusicnnNet, VggNet

        files = self.weight_files()
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise WeightsNotFoundError(
                f"musicnn weights for {self.config.model!r} not found (missing {', '.join(missing)}): "
                f"{INSTALL_HINT}"
            )
        reader = CheckpointReader(self.checkpoint_prefix())
        expected = VGG_VARIABLES if self.is_vgg else MUSICNN_VARIABLES
        found = reader.shapes()
        absent = sorted(set(expected) - set(found))
        wrong = sorted(n for n in expected if n in found and tuple(found[n]) != expected[n])
        if absent or wrong:
            details = [f"missing {absent[:5]}"] if absent else []
            details += [f"{n}: expected {expected[n]}, found {tuple(found[n])}" for n in wrong[:5]]
            raise TeacherError(
                f"checkpoint {reader.prefix!r} does not hold a {self.config.model} model "
                f"({'; '.join(details)}); "
                f"check teachers.musicnn.model and teachers.musicnn.weights"
            )
        variables = reader.read(list(expected))
        net = VggNet(variables, self.config.model) if self.is_vgg else MusicnnNet(variables)
        torch_device = torch.device(device)
        self._net = net.to(torch_device).eval()
        self._logmel = LogMel(self.config.float16_cast).to(torch_device).eval()
        if torch_device.type != "cpu":
            self.max_batch = 128

    # ---- inference ------------------------------------------------------------------
    def _check(self, windows: np.ndarray) -> np.ndarray:
        if self._net is None:
            raise TeacherError("musicnn teacher is not loaded; call .load(device) first")
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise TeacherError(
                f"musicnn expects windows of shape (n, {WINDOW_SAMPLES}) at 16 kHz, got {windows.shape}"
            )
        return windows

    def log_mel(self, windows: np.ndarray) -> np.ndarray:
        """The model input of each window.

        Args:
            windows: float32 (n, 48128) audio at 16 kHz.

        Returns:
            float32 (n, 187, 96) ``log10(10000 * mel + 1)``.
        """
        import torch

        windows = self._check(windows)
        with torch.inference_mode():
            mel = self._logmel(torch.from_numpy(windows).to(self.device))
        return mel.cpu().numpy()

    def runs(self, windows: np.ndarray) -> list[tuple[int, int]]:
        """Split windows into runs of consecutive windows of one track.

        Window ``i`` continues the run of window ``i - 1`` when its first ``window - hop``
        samples equal the last ones of window ``i - 1`` (what :meth:`WindowGrid.cut` gives
        for consecutive windows). The mel frames and timbral front end of a run are then
        computed once (exact: a run's audio holds each of its windows sample for sample).

        Returns:
            ``[(first, stop), ...]`` row ranges covering ``0 .. len(windows)``.
        """
        hop = self.grid.hop
        bounds = [0]
        for i in range(1, len(windows)):
            joined = (
                self.share_overlap
                and self.hop_frames <= PATCH_FRAMES
                and i - bounds[-1] < self.max_batch
                and np.array_equal(windows[i, : WINDOW_SAMPLES - hop], windows[i - 1, hop:])
            )
            if not joined:
                bounds.append(i)
        bounds.append(len(windows))
        return list(zip(bounds[:-1], bounds[1:]))

    def embed_windows(self, windows: np.ndarray) -> np.ndarray:
        """Embed windows of 48 128 samples; see :meth:`Teacher.embed_windows`.

        Windows go through the network in groups of at most :attr:`max_batch`; runs of
        consecutive windows (see :meth:`runs`) share their mel frames and timbral rows.

        Returns:
            float32 (n, frames_per_window, embedding_dim).
        """
        import torch

        windows = self._check(windows)
        n = windows.shape[0]
        out = np.empty((n, self.frames_per_window, self.embedding_dim), dtype=np.float32)
        if n == 0:
            return out
        from pipeline.teachers.precision import precision_mode

        with torch.inference_mode(), precision_mode(self.precision, self.device):
            if self._batched():
                self._embed_batched(windows, out)
                return out
            groups: list[list[tuple[int, int]]] = [[]]
            for first, stop in self.runs(windows):
                if groups[-1] and stop - groups[-1][0][0] > self.max_batch:
                    groups.append([])
                groups[-1].append((first, stop))
            self._embed_groups(windows, groups, out)
        return out

    def _batched(self) -> bool:
        """Whether windows run as independent patches in batched kernels (CUDA, or no sharing asked)."""
        return str(self.device).startswith("cuda") or not self.share_overlap

    def _embed_batched(self, windows: np.ndarray, out: np.ndarray) -> None:
        """GPU shape: per chunk of :attr:`max_batch` windows one async copy, one batched STFT/mel
        (float32), and the network on independent patches (batched convs, cuDNN autotuned for
        the fixed shape)."""
        import torch

        device_type = "cuda" if str(self.device).startswith("cuda") else "cpu"
        cudnn = torch.backends.cudnn
        with cudnn.flags(enabled=cudnn.enabled, benchmark=device_type == "cuda",
                         deterministic=cudnn.deterministic, allow_tf32=cudnn.allow_tf32):
            for lo in range(0, len(windows), self.max_batch):
                chunk = torch.from_numpy(windows[lo : lo + self.max_batch]).to(self.device, non_blocking=True)
                with torch.autocast(device_type=device_type, enabled=False):
                    mel = self._logmel(chunk)  # (n, 187, 96) float32
                result = self._net.forward_patches(mel, self.layer)
                out[lo : lo + len(chunk)] = result.reshape(len(chunk), self.frames_per_window, -1).float().cpu().numpy()

    def _embed_groups(
        self, windows: np.ndarray, groups: list[list[tuple[int, int]]], out: np.ndarray
    ) -> None:
        """Fill ``out`` group by group (each group: runs of at most ``max_batch`` windows in all)."""
        import torch

        tail = WINDOW_SAMPLES - self.grid.hop
        device_type = "cuda" if str(self.device).startswith("cuda") else "cpu"
        for group in groups:
            mels = []
            for first, stop in group:
                rows = [windows[first]] + [row[tail:] for row in windows[first + 1 : stop]]
                audio = np.concatenate(rows)
                with torch.autocast(device_type=device_type, enabled=False):  # the front end stays float32
                    mels.append(self._logmel(torch.from_numpy(audio).to(self.device)[None])[0])
            result = self._net.forward_runs(mels, PATCH_FRAMES, self.hop_frames, self.layer)
            lo, hi = group[0][0], group[-1][1]
            out[lo:hi] = result.reshape(hi - lo, self.frames_per_window, -1).float().cpu().numpy()
