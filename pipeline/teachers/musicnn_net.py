"""PyTorch modules of the musicnn teachers: the log-mel front end, musicnn and VGG.

The networks are built from the raw TF1 variables (``{name: ndarray}`` as read by
:mod:`pipeline.teachers.tf_checkpoint`) and reproduce the inference graph of
``musicnn/models.py`` (Pons & Serra, 2019) in eval mode:

* batch norm is ``x * gamma / sqrt(var + 1e-3) + (beta - mean * gamma / sqrt(var + 1e-3))``
  (``tf.compat.v1.layers`` epsilon is 1e-3);
* TF 'same' padding on even kernels puts ``(k - 1) // 2`` zeros before and the rest after;
* the back end flattens ``concat([max, mean], axis=2)`` of shape (753, 2), so its 1 506-vector
  is interleaved ``[max_0, mean_0, max_1, mean_1, ...]``.

**Exact reduction first.** Every musicnn front-end block and every VGG block is
``conv -> +bias -> ReLU -> BN -> max-pool``. ReLU and per-channel BN are monotone maps of the
conv output (non-decreasing where the BN slope ``gamma / sqrt(var + eps)`` is >= 0,
non-increasing where it is < 0), so the max of the block output over a pooling region is the
block applied to the max (slope >= 0) or min (slope < 0) of the *raw conv output*. The port
multiplies each conv kernel by the sign of its BN slope once at load time, takes the max of
that conv output (a min for flipped channels), multiplies the sign back, and only then adds the
bias and applies ReLU and BN, on a tensor 30-96x smaller (musicnn) or 2-16x smaller (VGG).
The result equals the unreduced graph up to float rounding.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

BN_EPSILON = 1e-3

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187


# ---- log-mel front end ------------------------------------------------------------------
def _hz_to_mel_slaney(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz (3 per 200 Hz), logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    mel = hz / f_sp
    high = hz >= min_log_hz
    mel[high] = min_log_mel + np.log(hz[high] / min_log_hz) / logstep
    return mel


def _mel_to_hz_slaney(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    hz = f_sp * mel
    high = mel >= min_log_mel
    hz[high] = min_log_hz * np.exp(logstep * (mel[high] - min_log_mel))
    return hz


def slaney_mel_basis(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = 0.0,
    fmax: float | None = None,
) -> np.ndarray:
    """Slaney-normalised triangular mel filters (librosa's default ``filters.mel``).

    Returns:
        float32 (n_mels, n_fft // 2 + 1).
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    mel_hz = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(np.array([fmin]))[0],
                                           _hz_to_mel_slaney(np.array([fmax]))[0], n_mels + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_hz[2 : n_mels + 2] - mel_hz[:n_mels]))[:, None]
    return weights.astype(np.float32)


class LogMel(nn.Module):
    """musicnn's input: librosa-style power mel (n_fft 512, hop 256, 96 Slaney bands to 8 kHz,
    periodic Hann, no centring inside a window) then ``log10(10000 * S + 1)``.

    Args:
        float16_cast: round the mel power to float16 (and back to float32) before the log,
            like the float16 training data; upstream's float16 *overflow* is not reproduced.
    """

    def __init__(self, float16_cast: bool = False) -> None:
        super().__init__()
        self.float16_cast = float16_cast
        self.register_buffer("window", torch.hann_window(N_FFT, periodic=True, dtype=torch.float32))
        self.register_buffer("basis", torch.from_numpy(slaney_mel_basis()))

    def forward(self, audio: Tensor) -> Tensor:
        """(n, samples) float32 -> (n, frames, 96) log-mel, ``frames = 1 + (samples - 512) // 256``."""
        spec = torch.stft(audio, N_FFT, HOP, N_FFT, self.window, center=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()  # (n, 257, frames)
        mel = torch.matmul(self.basis, power)  # (n, 96, frames)
        if self.float16_cast:
            mel = mel.to(torch.float16).to(torch.float32)
        return torch.log10(10000.0 * mel + 1.0).transpose(1, 2)


# ---- building blocks ----------------------------------------------------------------------
def _t(array: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class Affine(nn.Module):
    """Inference batch norm as ``x * scale + shift`` over ``dim`` (TF1 variables, epsilon 1e-3)."""

    def __init__(self, variables: dict[str, np.ndarray], prefix: str, dim: int = 1) -> None:
        super().__init__()
        gamma = variables[f"{prefix}/gamma"].astype(np.float64)
        beta = variables[f"{prefix}/beta"].astype(np.float64)
        mean = variables[f"{prefix}/moving_mean"].astype(np.float64)
        var = variables[f"{prefix}/moving_variance"].astype(np.float64)
        scale = gamma / np.sqrt(var + BN_EPSILON)
        self.dim = dim
        self.register_buffer("scale", _t(scale))
        self.register_buffer("shift", _t(beta - mean * scale))
        self.register_buffer("sign", _t(np.where(scale < 0, -1.0, 1.0)))

    def _view(self, value: Tensor, ndim: int) -> Tensor:
        shape = [1] * ndim
        shape[self.dim] = -1
        return value.view(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x * self._view(self.scale, x.ndim) + self._view(self.shift, x.ndim)

    def sign_view(self, ndim: int) -> Tensor:
        """Per-channel sign of the BN slope, shaped to broadcast over ``dim``."""
        return self._view(self.sign, ndim)


class ReducedBlock(nn.Module):
    """``pool(BN(ReLU(conv(x) + b)))`` computed as ``BN(ReLU(s * pool(conv_{s*W}(x)) + b))``.

    ``s`` is the sign of each channel's BN slope (see the module docstring). ``pool`` is a
    callable reducing the raw conv output (max over frequency, or a 2-D max-pool).
    """

    def __init__(self, kernel: np.ndarray, bias: np.ndarray, bn: Affine, padding: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.bn = bn
        weight = _t(kernel.transpose(3, 2, 0, 1))  # TF HWIO -> torch OIHW
        self.register_buffer("weight", weight * bn.sign.view(-1, 1, 1, 1))
        self.register_buffer("bias", _t(bias))
        self.padding = padding  # F.pad order: (freq_before, freq_after, time_before, time_after)

    def conv(self, x: Tensor) -> Tensor:
        """Raw conv with sign-flipped kernels: (n, in, T, F) -> (n, out, T', F')."""
        if any(self.padding):
            x = F.pad(x, self.padding)
        return F.conv2d(x, self.weight)

    def finish(self, reduced: Tensor) -> Tensor:
        """Sign back, bias, ReLU, BN on the reduced map (channels on dim 1)."""
        view = [1] * reduced.ndim
        view[1] = -1
        sign = self.bn.sign.view(view)
        return self.bn(torch.relu(reduced * sign + self.bias.view(view)))


def _same_pad(kernel: int) -> tuple[int, int]:
    return (kernel - 1) // 2, kernel // 2


# ---- musicnn --------------------------------------------------------------------------------
#: name -> shape of every model variable of MTT_musicnn / MSD_musicnn.
MUSICNN_VARIABLES: dict[str, tuple[int, ...]] = {
    "conv2d/kernel": (7, 38, 1, 204), "conv2d/bias": (204,),
    "conv2d_1/kernel": (7, 67, 1, 204), "conv2d_1/bias": (204,),
    "conv2d_2/kernel": (128, 1, 1, 51), "conv2d_2/bias": (51,),
    "conv2d_3/kernel": (64, 1, 1, 51), "conv2d_3/bias": (51,),
    "conv2d_4/kernel": (32, 1, 1, 51), "conv2d_4/bias": (51,),
    "conv2d_5/kernel": (7, 561, 1, 64), "conv2d_5/bias": (64,),
    "conv2d_6/kernel": (7, 64, 1, 64), "conv2d_6/bias": (64,),
    "conv2d_7/kernel": (7, 64, 1, 64), "conv2d_7/bias": (64,),
    "dense/kernel": (1506, 200), "dense/bias": (200,),
    "dense_1/kernel": (200, 50), "dense_1/bias": (50,),
}
for _i, _n in enumerate([1, 204, 204, 51, 51, 51, 64, 64, 64, 1506, 200]):
    for _p in ("gamma", "beta", "moving_mean", "moving_variance"):
        MUSICNN_VARIABLES[f"batch_normalization{'_' + str(_i) if _i else ''}/{_p}"] = (_n,)

#: name -> shape of every model variable of MTT_vgg / MSD_vgg.
VGG_VARIABLES: dict[str, tuple[int, ...]] = {"dense/kernel": (256, 50), "dense/bias": (50,)}
for _i in range(1, 6):
    VGG_VARIABLES[f"{_i}CNN/kernel"] = (3, 3, 1 if _i == 1 else 128, 128)
    VGG_VARIABLES[f"{_i}CNN/bias"] = (128,)
for _i, _n in enumerate([1, 128, 128, 128, 128, 128]):
    for _p in ("gamma", "beta", "moving_mean", "moving_variance"):
        VGG_VARIABLES[f"batch_normalization{'_' + str(_i) if _i else ''}/{_p}"] = (_n,)

MUSICNN_FRAME_LAYERS = {"timbral": 408, "temporal": 153, "cnn1": 64, "cnn2": 64, "cnn3": 64}
MUSICNN_PATCH_LAYERS = {"max_pool": 753, "mean_pool": 753, "penultimate": 200, "logits": 50, "taggram": 50}
VGG_PATCH_LAYERS = {"pool5": 256, "logits": 50, "taggram": 50}


class MusicnnNet(nn.Module):
    """musicnn (front end 'timbral + temporal', dense mid end, global-pool back end).

    Args:
        variables: TF variable name -> array (see :data:`MUSICNN_VARIABLES`).
    """

    def __init__(self, variables: dict[str, np.ndarray]) -> None:
        super().__init__()
        v = variables
        self.input_bn = Affine(v, "batch_normalization", dim=1)
        self.timbral = nn.ModuleList([
            ReducedBlock(v["conv2d/kernel"], v["conv2d/bias"], Affine(v, "batch_normalization_1"), (0, 0, 3, 3)),
            ReducedBlock(v["conv2d_1/kernel"], v["conv2d_1/bias"], Affine(v, "batch_normalization_2"), (0, 0, 3, 3)),
        ])
        self.temporal = nn.ModuleList([
            ReducedBlock(v[f"conv2d_{i}/kernel"], v[f"conv2d_{i}/bias"], Affine(v, f"batch_normalization_{i + 1}"),
                         (0, 0) + _same_pad(v[f"conv2d_{i}/kernel"].shape[0]))
            for i in (2, 3, 4)
        ])
        mids = []
        for i in (5, 6, 7):
            kernel = v[f"conv2d_{i}/kernel"]  # (7, channels, 1, out) -> conv1d (out, channels, 7)
            mids.append((_t(kernel[:, :, 0, :].transpose(2, 1, 0)), _t(v[f"conv2d_{i}/bias"])))
        for i, (weight, bias) in enumerate(mids):
            self.register_buffer(f"mid{i}_weight", weight)
            self.register_buffer(f"mid{i}_bias", bias)
        self.mid_bn = nn.ModuleList([Affine(v, f"batch_normalization_{i}") for i in (6, 7, 8)])
        self.pool_bn = Affine(v, "batch_normalization_9")
        self.register_buffer("dense_weight", _t(v["dense/kernel"].T))
        self.register_buffer("dense_bias", _t(v["dense/bias"]))
        self.dense_bn = Affine(v, "batch_normalization_10")
        self.register_buffer("out_weight", _t(v["dense_1/kernel"].T))
        self.register_buffer("out_bias", _t(v["dense_1/bias"]))

    def frontend(self, logmel: Tensor) -> tuple[Tensor, Tensor]:
        """(n, T, 96) log-mel -> timbral (n, 408, T), temporal (n, 153, T)."""
        x = self.input_bn(logmel.unsqueeze(1))  # (n, 1, T, 96)
        timbral = [block.finish(block.conv(x).amax(dim=3)) for block in self.timbral]
        temporal = [block.finish(block.conv(x).amax(dim=3)) for block in self.temporal]
        return torch.cat(timbral, 1), torch.cat(temporal, 1)

    def midend(self, front: Tensor) -> list[Tensor]:
        """(n, 561, T) -> [front, cnn1, cnn2, cnn3], the last three (n, 64, T)."""
        outs = [front]
        x = front
        for i, bn in enumerate(self.mid_bn):
            y = F.conv1d(F.pad(x, (3, 3)), getattr(self, f"mid{i}_weight"), getattr(self, f"mid{i}_bias"))
            y = bn(torch.relu(y))
            x = y if i == 0 else y + x
            outs.append(x)
        return outs

    def forward(self, logmel: Tensor, layer: str) -> Tensor:
        """Compute one layer.

        Args:
            logmel: (n, T, 96) float32 log-mel patches (T = 187 for the trained setting).
            layer: a key of :data:`MUSICNN_FRAME_LAYERS` or :data:`MUSICNN_PATCH_LAYERS`.

        Returns:
            (n, T, dim) for frame-level layers, (n, dim) for patch-level layers.
        """
        timbral, temporal = self.frontend(logmel)
        if layer == "timbral":
            return timbral.transpose(1, 2)
        if layer == "temporal":
            return temporal.transpose(1, 2)
        mids = self.midend(torch.cat([timbral, temporal], 1))
        if layer in ("cnn1", "cnn2", "cnn3"):
            return mids[int(layer[-1])].transpose(1, 2)
        features = torch.cat(mids, 1)  # (n, 753, T)
        max_pool = features.amax(dim=2)
        mean_pool = features.mean(dim=2)
        if layer == "max_pool":
            return max_pool
        if layer == "mean_pool":
            return mean_pool
        flat = self.pool_bn(torch.stack([max_pool, mean_pool], dim=2).flatten(1))  # interleaved
        penultimate = self.dense_bn(torch.relu(F.linear(flat, self.dense_weight, self.dense_bias)))
        if layer == "penultimate":
            return penultimate
        logits = F.linear(penultimate, self.out_weight, self.out_bias)
        return torch.sigmoid(logits) if layer == "taggram" else logits


#: (pool size, stride) of the five VGG max-pools, (time, freq), as in each shipped ``.meta`` graph.
#: MTT_vgg matches ``musicnn/models.py``; the MSD_vgg checkpoint was trained with other pools
#: (its ``.meta`` says so; upstream's ``extractor`` rebuilds it with the MTT pools).
VGG_POOLS: dict[str, tuple[tuple[tuple[int, int], tuple[int, int]], ...]] = {
    "MTT_vgg": (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))),
    "MSD_vgg": (((4, 1), (4, 1)), ((1, 4), (1, 4)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4))),
}


class VggNet(nn.Module):
    """musicnn's VGG baseline: 5 x [conv3x3 'same' -> ReLU -> BN -> max-pool], dense 256 -> 50.

    Args:
        variables: TF variable name -> array (see :data:`VGG_VARIABLES`).
        model: ``MTT_vgg`` or ``MSD_vgg`` (picks the pooling, :data:`VGG_POOLS`).
    """

    def __init__(self, variables: dict[str, np.ndarray], model: str = "MTT_vgg") -> None:
        super().__init__()
        v = variables
        self.pools = VGG_POOLS[model]
        self.input_bn = Affine(v, "batch_normalization", dim=1)
        self.blocks = nn.ModuleList([
            ReducedBlock(v[f"{i}CNN/kernel"], v[f"{i}CNN/bias"], Affine(v, f"batch_normalization_{i}"), (1, 1, 1, 1))
            for i in range(1, 6)
        ])
        self.register_buffer("out_weight", _t(v["dense/kernel"].T))
        self.register_buffer("out_bias", _t(v["dense/bias"]))

    def forward(self, logmel: Tensor, layer: str) -> Tensor:
        """(n, 187, 96) log-mel -> (n, dim) for ``layer`` in :data:`VGG_PATCH_LAYERS`."""
        x = self.input_bn(logmel.unsqueeze(1))
        for block, (pool, stride) in zip(self.blocks, self.pools):
            x = block.finish(F.max_pool2d(block.conv(x), pool, stride))
        pool5 = x.permute(0, 2, 3, 1).flatten(1)  # TF flattens (time, freq, channel)
        if layer == "pool5":
            return pool5
        logits = F.linear(pool5, self.out_weight, self.out_bias)
        return torch.sigmoid(logits) if layer == "taggram" else logits
