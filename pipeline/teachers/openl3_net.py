"""OpenL3 audio network in PyTorch: spectrogram front ends, the conv net, and the Keras ``.h5`` reader.

Everything runs batched on the device. Shapes below use ``n`` windows of one second at
48 kHz (48 000 samples).

Front ends (all end with ``10 log10(max(S, 1e-10))``, minus the per-window maximum,
floored at -80 dB, which is what ``librosa.power_to_db(S, ref=1, amin=1e-10, top_db=80)``
followed by ``S -= S.max()`` and kapre 0.1.4's ``amplitude_to_decibel`` both compute):

============  ===============================================================================
``librosa``   openl3 0.4.x ``frontend="librosa"``: ``|librosa.stft(n_fft=2048, hop=242,
              center=True)|`` (frame ``t`` centered on sample ``242 t``; ``pad_mode`` zeros
              as librosa >= 0.9, or ``reflect`` as librosa <= 0.8), Slaney mel filters.
              ``linear``: ``|stft(n_fft=512, hop=242, center=False)|``.
``kapre``     openl3 0.4.x ``frontend="kapre"`` (its default, kapre >= 0.3.5 layers):
              ``tf.signal.stft(pad_end=True)`` frames start at ``242 t`` and the end is
              zero-padded; magnitude; Slaney mel filters. ``linear`` as above.
``kapre-0.1.4``  openl3 <= 0.3.x (kapre 0.1.4, the front end the weights were trained
              with): Keras 'same' padding (982 zeros each side for mel), HTK mel scale with
              area normalisation, ``sqrt(mel @ |X|^2)``. ``linear`` as above.
============  ===============================================================================

Network (openl3/models.py): BN(1) -> [Conv3x3 'same' -> BN -> ReLU] x2 -> MaxPool 2 ->
x2 (128) -> MaxPool -> x2 (256) -> MaxPool -> Conv 512 -> BN -> ReLU -> Conv 512
(``audio_embedding_layer``, linear). Keras BatchNormalization epsilon is 1e-3. The
embedding is a max-pool ('same', stride = pool size) flattened in Keras (H, W, C) order.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

import torch.nn.functional as F
from torch import nn

from pipeline.errors import TeacherError

SAMPLE_RATE = 48000
WINDOW = 48000
STFT_HOP = 242
INPUT_REPRS = ("linear", "mel128", "mel256")
FRONTENDS = ("librosa", "kapre", "kapre-0.1.4")
PAD_MODES = ("constant", "reflect")
EMBEDDING_SIZES = (512, 6144)
CHANNELS = (64, 64, 128, 128, 256, 256, 512, 512)
BN_EPS = 1e-3
DB_AMIN = 1e-10
DB_RANGE = 80.0
#: Max-pool sizes that turn the (H, W, 512) map into the embedding (openl3 AUDIO_POOLING_SIZES).
POOL_SIZES = {
    "linear": {6144: (8, 8), 512: (32, 24)},
    "mel128": {6144: (4, 8), 512: (16, 24)},
    "mel256": {6144: (8, 8), 512: (32, 24)},
}


# ---- mel filters ------------------------------------------------------------------------
def hz_to_mel(freqs: np.ndarray, htk: bool) -> np.ndarray:
    """Hz -> mel: HTK ``2595 log10(1 + f/700)`` or Slaney (linear below 1 kHz, log above)."""
    freqs = np.asarray(freqs, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + freqs / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    mels = freqs / f_sp
    high = freqs >= min_log_hz
    mels[high] = min_log_mel + np.log(freqs[high] / min_log_hz) / logstep
    return mels


def mel_to_hz(mels: np.ndarray, htk: bool) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    freqs = f_sp * mels
    high = mels >= min_log_mel
    freqs[high] = min_log_hz * np.exp(logstep * (mels[high] - min_log_mel))
    return freqs


def mel_filters(sample_rate: int, n_fft: int, n_mels: int, *, htk: bool = False,
                fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular mel filters with area ("slaney") normalisation, linear in Hz.

    The same matrix as ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk, norm="slaney")``.

    Returns:
        float32 (n_mels, n_fft // 2 + 1).
    """
    fmax = sample_rate / 2.0 if fmax is None else fmax
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array([fmin]), htk)[0],
                                  hz_to_mel(np.array([fmax]), htk)[0], n_mels + 2), htk)
    widths = np.diff(edges)
    offsets = edges[:, None] - fft_freqs[None, :]
    rising = -offsets[:-2] / widths[:-1, None]
    falling = offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


# ---- front end --------------------------------------------------------------------------
def same_padding(length: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TF 'same' padding (left, right) of a strided 1-D window."""
    out = -(-length // stride)
    total = max((out - 1) * stride + kernel - length, 0)
    return total // 2, total - total // 2


class OpenL3Frontend(nn.Module):
    """Waveform windows -> the dB spectrogram the OpenL3 network expects.

    Args:
        input_repr: ``linear`` (257 x 197), ``mel128`` (128 x 199) or ``mel256`` (256 x 199).
        frontend: ``librosa``, ``kapre`` or ``kapre-0.1.4`` (see the module docstring).
        pad_mode: centering pad of the ``librosa`` mel front end (``constant`` or ``reflect``).
    """
    window: torch.Tensor
    mel: torch.Tensor | None

    def __init__(self, input_repr: str = "mel128", frontend: str = "librosa",
                 pad_mode: str = "constant") -> None:
        super().__init__()
        if input_repr not in INPUT_REPRS or frontend not in FRONTENDS or pad_mode not in PAD_MODES:
            raise ValueError(f"bad OpenL3 front end {input_repr!r}/{frontend!r}/{pad_mode!r}")
        self.input_repr, self.frontend, self.pad_mode = input_repr, frontend, pad_mode
        self.n_fft = 512 if input_repr == "linear" else 2048
        # float64 like openl3's librosa path (soundfile/resampy audio is float64); the dB floor at
        # 1e-8 of the peak is below float32 FFT noise, so float32 would make near-silent bins noisy.
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64))
        if input_repr == "linear":
            self.mel = None
        else:
            n_mels = int(input_repr[3:])
            mel = mel_filters(SAMPLE_RATE, self.n_fft, n_mels, htk=frontend == "kapre-0.1.4")
            self.register_buffer("mel", torch.from_numpy(mel).double())  # float32 weights, as librosa's

    def _stft(self, x: torch.Tensor, *, center: bool, pad_mode: str = "constant") -> torch.Tensor:
        spec = torch.stft(x, self.n_fft, STFT_HOP, window=self.window, center=center,
                          pad_mode=pad_mode, return_complex=True)
        return spec  # (n, n_fft // 2 + 1, frames)

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """Linear-amplitude spectrogram before the dB step, float64 (n, F, T)."""
        x = x.to(self.window.dtype)
        if self.input_repr == "linear":
            return self._stft(x, center=False).abs()
        mel = self.mel
        assert mel is not None  # every representation but "linear" has its filters
        if self.frontend == "librosa":
            return mel @ self._stft(x, center=True, pad_mode=self.pad_mode).abs()
        if self.frontend == "kapre":
            frames = -(-x.shape[-1] // STFT_HOP)
            x = F.pad(x, (0, (frames - 1) * STFT_HOP + self.n_fft - x.shape[-1]))
            return mel @ self._stft(x, center=False).abs()
        x = F.pad(x, same_padding(x.shape[-1], self.n_fft, STFT_HOP))
        power = self._stft(x, center=False).abs().square()
        return torch.sqrt(mel @ power)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x float32 (n, 48000). Returns: float32 (n, 1, F, T) in [-80, 0] dB."""
        db = 10.0 * torch.log10(torch.clamp(self.spectrogram(x), min=DB_AMIN))
        db = db - db.amax(dim=(1, 2), keepdim=True)
        return torch.clamp(db, min=-DB_RANGE).to(torch.float32).unsqueeze(1)


# ---- network ----------------------------------------------------------------------------
class OpenL3Net(nn.Module):
    """The OpenL3 audio conv net on (n, 1, F, T) dB spectrograms -> (n, embedding_size)."""

    def __init__(self, input_repr: str = "mel128", embedding_size: int = 512) -> None:
        super().__init__()
        if input_repr not in INPUT_REPRS or embedding_size not in EMBEDDING_SIZES:
            raise ValueError(f"bad OpenL3 net {input_repr!r}/{embedding_size!r}")
        self.pool_size = POOL_SIZES[input_repr][embedding_size]
        self.input_bn = nn.BatchNorm2d(1, eps=BN_EPS)
        convs, bns, c_in = [], [], 1
        for index, c_out in enumerate(CHANNELS):
            convs.append(nn.Conv2d(c_in, c_out, 3, padding=1))
            if index < len(CHANNELS) - 1:
                bns.append(nn.BatchNorm2d(c_out, eps=BN_EPS))
            c_in = c_out
        self.convs, self.bns = nn.ModuleList(convs), nn.ModuleList(bns)

    def feature_map(self, spec: torch.Tensor) -> torch.Tensor:
        """Output of ``audio_embedding_layer``, (n, 512, H, W)."""
        x = self.input_bn(spec)
        for index, conv in enumerate(self.convs):
            x = conv(x)
            if index < len(self.bns):
                x = F.relu(self.bns[index](x))
            if index in (1, 3, 5):
                x = F.max_pool2d(x, 2, 2)
        return x

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.feature_map(spec), self.pool_size, self.pool_size, ceil_mode=True)
        return x.permute(0, 2, 3, 1).flatten(1)  # Keras Flatten over (H, W, C)

    def expected_shapes(self) -> list[tuple[str, tuple[tuple[int, ...], ...]]]:
        """The 16 weighted Keras layers in order: (kind, shapes of their arrays)."""
        shapes: list[tuple[str, tuple[tuple[int, ...], ...]]] = [("bn", ((1,),) * 4)]
        c_in = 1
        for index, c_out in enumerate(CHANNELS):
            shapes.append(("conv", ((3, 3, c_in, c_out), (c_out,))))
            if index < len(CHANNELS) - 1:
                shapes.append(("bn", ((c_out,),) * 4))
            c_in = c_out
        return shapes

    def load_keras_h5(self, path: str | Path) -> None:
        """Copy the weights of an official OpenL3 Keras ``.h5`` file into this net.

        The 16 weighted layer groups are taken in the file's ``layer_names`` order (names
        and numeric suffixes vary between openl3 releases; openl3 itself loads by order);
        layers of a kapre front end stored in older files are skipped.

        Raises:
            TeacherError: the file is not an OpenL3 audio weight file (shapes are named).
        """
        layers = [layer for layer in read_keras_h5(path) if _kind(layer[1]) is not None]
        expected = self.expected_shapes()
        found = [(name, _kind(arrays), tuple(a.shape for a in _ordered(arrays))) for name, arrays in layers]
        if [(k, s) for _, k, s in found] != expected:
            where = next((i for i, (e, f) in enumerate(zip(expected, found)) if e != f[1:]),
                         min(len(found), len(expected)))
            got = "nothing" if where >= len(found) else f"layer {found[where][0]!r} {found[where][2]}"
            want = expected[where] if where < len(expected) else "absent"
            raise TeacherError(
                f"{str(path)!r} is not an OpenL3 audio weight file: it has {len(found)} weighted layers "
                f"(expected {len(expected)}); weighted layer #{where} should be {want}, got {got}; "
                f"give the official openl3_audio_<repr>_<content>.h5 file"
            )
        bns = iter(cast("list[nn.BatchNorm2d]", [self.input_bn, *self.bns]))
        convs = iter(cast("list[nn.Conv2d]", list(self.convs)))
        with torch.no_grad():
            for (_name, arrays), (kind, _shapes) in zip(layers, expected):
                values = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))
                          for a in _ordered(arrays)]
                if kind == "bn":
                    bn = next(bns)
                    for param, value in zip((bn.weight, bn.bias, bn.running_mean, bn.running_var), values):
                        cast(torch.Tensor, param).copy_(value)
                else:
                    conv = next(convs)
                    conv.weight.copy_(values[0].permute(3, 2, 0, 1))  # Keras HWIO -> torch OIHW
                    cast(torch.Tensor, conv.bias).copy_(values[1])


_BN_NAMES = ("gamma", "beta", "moving_mean", "moving_variance")


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1].split(":", 1)[0]


def _kind(arrays: list[tuple[str, np.ndarray]]) -> str | None:
    names = [_short(n) for n, _ in arrays]
    if set(names) == set(_BN_NAMES):
        return "bn"
    kernel = arrays[0][1]
    if len(arrays) == 2 and names[0] == "kernel" and kernel.ndim == 4 and kernel.shape[:2] == (3, 3):
        return "conv"
    return None


def _ordered(arrays: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
    """BN arrays as gamma, beta, mean, variance; conv as kernel, bias."""
    by_name = {_short(n): a for n, a in arrays}
    if set(by_name) == set(_BN_NAMES):
        return [by_name[n] for n in _BN_NAMES]
    return [by_name["kernel"], by_name["bias"]]


def read_keras_h5(path: str | Path) -> list[tuple[str, list[tuple[str, np.ndarray]]]]:
    """The weighted layers of a Keras-2 HDF5 weight file, in ``layer_names`` order.

    Handles ``save_weights`` files and whole-model files (weights under ``model_weights``).

    Returns:
        ``[(layer_name, [(weight_name, array), ...]), ...]`` for layers that hold weights.

    Raises:
        TeacherError: the file is not HDF5 or lacks the Keras layout.
    """
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise TeacherError(f"cannot read {str(path)!r} as a Keras HDF5 weight file: {exc}") from None
    with handle:
        root: Any = handle["model_weights"] if "model_weights" in handle else handle
        if "layer_names" not in root.attrs:
            raise TeacherError(f"{str(path)!r} has no Keras 'layer_names' attribute; "
                               f"give the official openl3_audio_<repr>_<content>.h5 file")
        layers = []
        for raw in root.attrs["layer_names"]:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            group = root[name]
            weight_names = [w.decode() if isinstance(w, bytes) else str(w)
                            for w in group.attrs.get("weight_names", [])]
            if weight_names:
                layers.append((name, [(w, np.asarray(group[w])) for w in weight_names]))
        return layers


class OpenL3Model(nn.Module):
    """Front end + network: (n, 48000) float32 windows -> (n, embedding_size)."""

    def __init__(self, input_repr: str = "mel128", embedding_size: int = 512,
                 frontend: str = "librosa", pad_mode: str = "constant") -> None:
        super().__init__()
        self.frontend = OpenL3Frontend(input_repr, frontend, pad_mode)
        self.net = OpenL3Net(input_repr, embedding_size)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.net(self.frontend(windows))
