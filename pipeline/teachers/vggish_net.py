"""VGGish in PyTorch: log-mel front end, the VGG network, PCA post-processing, weight readers.

Shapes use ``n`` windows of 15 600 samples at 16 kHz: the 96 STFT frames of one
0.96 s example (frame ``j`` covers samples ``[160 j, 160 j + 400)``).

Front end (AudioSet ``mel_features.py``): periodic Hann window of 400 samples (25 ms),
hop 160 (10 ms), FFT 512, magnitude; 64 triangular mel bands, linear in HTK mel
(``1127 ln(1 + f/700)``) between 125 and 7500 Hz, the DC bin weighted 0; ``log(mel + 0.01)``.

Network (torchvggish ``VGG`` / AudioSet ``vggish_slim``): Conv3x3 64 - pool - 128 - pool -
256, 256 - pool - 512, 512 - pool, each conv followed by ReLU; flatten in (time, freq,
channel) order; FC 12288 -> 4096 -> 4096 -> 128, each followed by ReLU (torchvggish keeps
the ReLU after the last layer, as the first AudioSet release did).

Post-processing (the released AudioSet embeddings): ``PCA (x - mean)``, clip to [-2, 2],
quantise to ``round((x + 2) * 255 / 4)`` in 0..255.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from torch import nn

from pipeline.errors import TeacherError

SAMPLE_RATE = 16000
STFT_WINDOW = 400
STFT_HOP = 160
FFT_LENGTH = 512
NUM_FRAMES = 96
NUM_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EMBEDDING_SIZE = 128
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0
#: Samples one example sees: the spans of its 96 STFT frames.
EXAMPLE_SAMPLES = (NUM_FRAMES - 1) * STFT_HOP + STFT_WINDOW  # 15 600
#: Samples between consecutive examples (0.96 s).
EXAMPLE_HOP = NUM_FRAMES * STFT_HOP  # 15 360

#: torchvggish state_dict keys -> TF-slim checkpoint variables (``vggish/...``).
SLIM_NAMES = {
    "features.0": "vggish/conv1",
    "features.3": "vggish/conv2",
    "features.6": "vggish/conv3/conv3_1",
    "features.8": "vggish/conv3/conv3_2",
    "features.11": "vggish/conv4/conv4_1",
    "features.13": "vggish/conv4/conv4_2",
    "embeddings.0": "vggish/fc1/fc1_1",
    "embeddings.2": "vggish/fc1/fc1_2",
    "embeddings.4": "vggish/fc2",
}


def mel_matrix(num_bands: int = NUM_BANDS, num_bins: int = FFT_LENGTH // 2 + 1,
               sample_rate: int = SAMPLE_RATE, low_hz: float = MEL_MIN_HZ,
               high_hz: float = MEL_MAX_HZ) -> np.ndarray:
    """Mel weights, triangles linear in HTK mel (1127 ln(1 + f/700)); the DC row is zero.

    Returns:
        float64 (num_bins, num_bands): ``mel = spectrogram @ matrix``.
    """
    def to_mel(hz: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)

    bins_mel = to_mel(np.linspace(0.0, sample_rate / 2.0, num_bins))
    edges = np.linspace(to_mel(low_hz), to_mel(high_hz), num_bands + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


class VGGishFrontend(nn.Module):
    """(n, samples) float32 at 16 kHz -> (n, 1, frames, 64) log-mel; frames = 1 + (samples - 400) // 160."""
    window: torch.Tensor
    mel: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(STFT_WINDOW, periodic=True, dtype=torch.float64))
        self.register_buffer("mel", torch.from_numpy(mel_matrix()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.to(torch.float64).unfold(-1, STFT_WINDOW, STFT_HOP) * self.window
        magnitude = torch.fft.rfft(frames, n=FFT_LENGTH).abs()
        return torch.log(magnitude @ self.mel + LOG_OFFSET).to(torch.float32).unsqueeze(1)


def make_features() -> nn.Sequential:
    """The VGG conv stack with torchvggish's module indices (0, 3, 6, 8, 11, 13 are convs)."""
    layers: list[nn.Module] = []
    c_in = 1
    for item in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c_in, int(item), 3, padding=1), nn.ReLU(inplace=True)]
            c_in = int(item)
    return nn.Sequential(*layers)


class VGGishNet(nn.Module):
    """(n, 1, 96, 64) log-mel examples -> (n, 128) raw embeddings. state_dict keys equal torchvggish's."""

    def __init__(self) -> None:
        super().__init__()
        self.features = make_features()
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True),
            nn.Linear(4096, 4096), nn.ReLU(True),
            nn.Linear(4096, EMBEDDING_SIZE), nn.ReLU(True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (n, 512, 6, 4)
        return self.embeddings(x.permute(0, 2, 3, 1).flatten(1))  # flatten as (time, freq, channel)


class Postprocessor(nn.Module):
    """PCA (with whitening) + 8-bit quantisation of the AudioSet release: (n, 128) -> (n, 128) in 0..255."""
    eigen_vectors: torch.Tensor
    means: torch.Tensor

    def __init__(self, eigen_vectors: np.ndarray | None = None, means: np.ndarray | None = None) -> None:
        super().__init__()
        vectors = np.eye(EMBEDDING_SIZE) if eigen_vectors is None else eigen_vectors
        center = np.zeros(EMBEDDING_SIZE) if means is None else means
        self.register_buffer("eigen_vectors", torch.as_tensor(np.asarray(vectors), dtype=torch.float32))
        self.register_buffer("means", torch.as_tensor(np.asarray(center).reshape(-1), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = (x - self.means) @ self.eigen_vectors.T
        clipped = torch.clamp(projected, QUANTIZE_MIN, QUANTIZE_MAX)
        return torch.round((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN)))


class VGGishModel(nn.Module):
    """Front end + network (+ post-processing): (n, 15600) windows -> (n, 128)."""

    def __init__(self, postprocess: bool = True) -> None:
        super().__init__()
        self.frontend = VGGishFrontend()
        self.net = VGGishNet()
        self.pproc = Postprocessor() if postprocess else None

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        x = self.net(self.frontend(windows))
        return x if self.pproc is None else self.pproc(x)


# ---- weight readers ---------------------------------------------------------------------
def _torch_load(path: Path) -> Any:
    """``torch.load`` without arbitrary unpickling; numpy arrays (the PCA file) are allowed."""
    allowed: list[Any] = [np.ndarray, np.dtype]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            allowed.append(__import__(module, fromlist=["_reconstruct"])._reconstruct)
        except (ImportError, AttributeError):
            pass
    allowed += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32")]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user error
        raise TeacherError(f"cannot read {str(path)!r} as a VGGish weight file: {exc}") from None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A torchvggish ``vggish-*.pth`` state_dict, or the variables of a TF-slim ``vggish_model.ckpt``.

    TF-slim kernels (HWIO, and (in, out) for FC) are transposed to torch layouts.

    Raises:
        TeacherError: unreadable file or missing keys.
    """
    if path.suffix == ".ckpt" or path.name.endswith(".ckpt.index"):
        return _read_slim(path)
    state = _torch_load(path)
    if not isinstance(state, dict):
        raise TeacherError(f"{str(path)!r} does not hold a state_dict (got {type(state).__name__})")
    return {k: torch.as_tensor(v) for k, v in state.items()}


def _read_slim(path: Path) -> dict[str, torch.Tensor]:
    import tensorflow as tf  # only for the TF-slim checkpoint format

    prefix = str(path)[: -len(".index")] if str(path).endswith(".index") else str(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as exc:  # noqa: BLE001
        raise TeacherError(f"cannot read TF checkpoint {prefix!r}: {exc}") from None
    state = {}
    for key, scope in SLIM_NAMES.items():
        try:
            weights = reader.get_tensor(f"{scope}/weights")
            biases = reader.get_tensor(f"{scope}/biases")
        except Exception:  # noqa: BLE001
            raise TeacherError(f"{prefix!r} lacks variable {scope}/weights or /biases; "
                               f"give the AudioSet vggish_model.ckpt") from None
        kernel = torch.from_numpy(np.asarray(weights, dtype=np.float32))
        state[f"{key}.weight"] = kernel.permute(3, 2, 0, 1) if kernel.ndim == 4 else kernel.T
        state[f"{key}.bias"] = torch.from_numpy(np.asarray(biases, dtype=np.float32))
    return state


def read_pca(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """PCA parameters from torchvggish's ``vggish_pca_params-*.pth`` or AudioSet's ``vggish_pca_params.npz``.

    Returns:
        (eigen_vectors (128, 128), means (128,)).
    """
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                params = {k: data[k] for k in data.files}
        except Exception as exc:  # noqa: BLE001
            raise TeacherError(f"cannot read {str(path)!r} as VGGish PCA parameters: {exc}") from None
    else:
        params = _torch_load(path)
    try:
        vectors = np.asarray(params["pca_eigen_vectors"], dtype=np.float64)
        means = np.asarray(params["pca_means"], dtype=np.float64).reshape(-1)
    except (KeyError, TypeError, IndexError):
        raise TeacherError(f"{str(path)!r} lacks 'pca_eigen_vectors'/'pca_means'; "
                           f"give vggish_pca_params-970ea276.pth or vggish_pca_params.npz") from None
    if vectors.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE) or means.shape != (EMBEDDING_SIZE,):
        raise TeacherError(
            f"{str(path)!r}: PCA shapes {vectors.shape}/{means.shape}, expected (128, 128)/(128,)"
        )
    return vectors, means


def load_net(net: VGGishNet, path: Path) -> None:
    """Load ``path`` (torch state_dict or TF-slim checkpoint) into ``net``, checking every key and shape."""
    state = read_state_dict(path)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise TeacherError(f"{str(path)!r} does not fit the VGGish network: "
                           f"{' '.join(line.strip() for line in first)[:400]}") from None


__all__ = [
    "EXAMPLE_HOP", "EXAMPLE_SAMPLES", "SAMPLE_RATE", "Postprocessor", "VGGishFrontend", "VGGishModel",
    "VGGishNet", "load_net", "mel_matrix", "read_pca", "read_state_dict",
]
