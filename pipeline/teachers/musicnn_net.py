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

**Shared rows.** Overlapping patches of one track (the default 1-s hop gives 3x overlap) share
most of their timbral rows: :meth:`MusicnnNet.forward_runs` computes them once per run and
recomputes only the 3 rows at each inner patch edge, where upstream's zero padding differs.

**CPU layout.** On CPU the big conv maps are computed one patch (or 64 rows) at a time: small
outputs stay in cache and in glibc's heap (outputs above its mmap threshold are fresh pages,
zeroed by the kernel, on every call), and oneDNN's single-input-channel kernels are fast at
batch 1 and slow at larger batches. TensorFlow's own allocator hides the first effect.
"""
from __future__ import annotations

import math
from typing import Callable, cast

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
    periodic Hann, no centering inside a window) then ``log10(10000 * S + 1)``.

    Args:
        float16_cast: round the mel power to float16 (and back to float32) before the log,
            like the float16 training data; upstream's float16 *overflow* is not reproduced.
    """
    window: torch.Tensor
    basis: torch.Tensor

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
    scale: torch.Tensor
    shift: torch.Tensor
    sign: torch.Tensor

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


class ReducedBlock(nn.Module):
    """``pool(BN(ReLU(conv(x) + b)))`` computed as ``BN(ReLU(s * pool(conv_{s*W}(x)) + b))``.

    ``s`` is the sign of each channel's BN slope (see the module docstring); the caller
    reduces the raw conv output (max over frequency, or a 2-D max-pool) between
    :meth:`conv` and :meth:`finish`.
    """
    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(
        self, kernel: np.ndarray, bias: np.ndarray, bn: Affine, padding: tuple[int, int, int, int]
    ) -> None:
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

    def reduced(self, x: Tensor, reduce: Callable[[Tensor], Tensor]) -> Tensor:
        """``finish(reduce(conv(x)))``; on CPU one sample at a time (see :func:`per_sample`)."""
        return self.finish(per_sample(lambda part: reduce(self.conv(part)), x))

    def finish(self, reduced: Tensor) -> Tensor:
        """Sign back, bias, ReLU, BN on the reduced map (channels on dim 1)."""
        view = [1] * reduced.ndim
        view[1] = -1
        sign = self.bn.sign.view(view)
        return self.bn(torch.relu(reduced * sign + self.bias.view(view)))


def per_sample(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``fn(x)``, but on CPU applied to one sample at a time and concatenated.

    Two CPU effects make small pieces faster: oneDNN's kernels for single-input-channel
    convs slow down badly with batch > 1 (30x for the VGG's first conv, measured), and
    conv outputs above glibc's mmap threshold (<= 32 MB) are fresh pages on every call (page
    faults took half the run time at batch 8). On GPU the batch runs whole.
    """
    if x.device.type != "cpu" or x.shape[0] == 1:
        return fn(x)
    return torch.cat([fn(x[i : i + 1]) for i in range(x.shape[0])])


#: Output rows per conv call in the timbral front end on CPU (bounds the conv output to ~3 MB).
TILE_ROWS = 64


def _max_freq(y: Tensor) -> Tensor:
    return y.amax(dim=3)


def _conv_max_rows(seq: Tensor, weight: Tensor) -> Tensor:
    """``conv2d(seq, weight).amax(freq)[0]`` for one long (1, 1, L, F) map, in row tiles on CPU.

    Returns:
        (out, L - kh + 1).
    """
    kh = weight.shape[2]
    rows = seq.shape[2] - kh + 1
    if seq.device.type != "cpu" or rows <= TILE_ROWS:
        return F.conv2d(seq, weight).amax(dim=3)[0]
    parts = [
        F.conv2d(seq[:, :, start : start + TILE_ROWS + kh - 1], weight).amax(dim=3)[0]
        for start in range(0, rows, TILE_ROWS)
    ]
    return torch.cat(parts, 1)


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
    dense_weight: torch.Tensor
    dense_bias: torch.Tensor
    out_weight: torch.Tensor
    out_bias: torch.Tensor

    def __init__(self, variables: dict[str, np.ndarray]) -> None:
        super().__init__()
        v = variables
        self.input_bn = Affine(v, "batch_normalization", dim=1)

        def block(conv: str, bn: str, padding: tuple[int, int, int, int]) -> ReducedBlock:
            return ReducedBlock(v[f"{conv}/kernel"], v[f"{conv}/bias"], Affine(v, bn), padding)

        # timbral 7x38 and 7x67, 'valid' over frequency, 3 zero rows of time padding
        self.timbral = nn.ModuleList([
            block("conv2d", "batch_normalization_1", (0, 0, 3, 3)),
            block("conv2d_1", "batch_normalization_2", (0, 0, 3, 3)),
        ])
        # temporal 128x1, 64x1, 32x1, TF 'same' (more padding after than before)
        self.temporal = nn.ModuleList([
            block(f"conv2d_{i}", f"batch_normalization_{i + 1}", (0, 0, *_same_pad(kernel)))
            for i, kernel in ((2, 128), (3, 64), (4, 32))
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

    def timbral_runs(self, runs: list[Tensor], patch: int, hop: int) -> Tensor:
        """Timbral front end of every patch of every run.

        A run is a normalised (T, 96) log-mel holding patches at rows ``k * hop`` ..
        ``k * hop + patch`` (consecutive overlapping windows of one track). Upstream runs the
        7-row timbral convs on each patch with 3 zero rows beyond its edges. Output rows more
        than 2 rows from a patch edge see the same input whether computed on the patch or on
        the run, so the convs run once over all runs (stacked along time, 3 zero rows around
        each run) and only the 3 rows at each inner patch edge are recomputed with their zeros.

        Returns:
            (n, 408, patch) for the ``n`` patches of all runs, in order.
        """
        zeros = runs[0].new_zeros(3, runs[0].shape[1])
        pieces: list[Tensor] = []
        starts: list[int] = []
        start_edges: list[tuple[int, Tensor]] = []
        end_edges: list[tuple[int, Tensor]] = []
        offset = 0
        for x in runs:
            count = (x.shape[0] - patch) // hop + 1
            pieces += [zeros, x, zeros]
            for k in range(count):
                first = k * hop
                if k > 0:
                    start_edges.append((len(starts), torch.cat([zeros, x[first : first + 6]])))
                if k < count - 1:
                    end_edges.append((len(starts), torch.cat([x[first + patch - 6 : first + patch], zeros])))
                starts.append(offset + first)
            offset += x.shape[0] + 6
        seq = torch.cat(pieces)[None, None]  # conv output row j is centered on seq row j + 3
        rows = (torch.tensor(starts)[:, None] + torch.arange(patch)[None, :]).to(seq.device)
        edges = [e for _, e in start_edges] + [e for _, e in end_edges]
        edge_seq = torch.cat(edges)[None, None] if edges else None
        n_start = len(start_edges)
        outs = []
        for block in cast("list[ReducedBlock]", self.timbral):
            out = _conv_max_rows(seq, block.weight)[:, rows]  # (204, n, patch)
            if edge_seq is not None:
                fixed = F.pad(_conv_max_rows(edge_seq, block.weight), (0, 6))
                fixed = fixed.view(fixed.shape[0], len(edges), 9)[:, :, :3]  # (204, edges, 3)
                if start_edges:
                    out[:, [i for i, _ in start_edges], :3] = fixed[:, :n_start]
                if end_edges:
                    out[:, [i for i, _ in end_edges], patch - 3 :] = fixed[:, n_start:]
            outs.append(block.finish(out.transpose(0, 1)))
        return torch.cat(outs, 1)

    def frontend_runs(self, runs: list[Tensor], patch: int, hop: int) -> tuple[Tensor, Tensor]:
        """Runs of (T, 96) log-mel -> timbral (n, 408, patch), temporal (n, 153, patch)."""
        normed = [self.input_bn(run) for run in runs]
        timbral = self.timbral_runs(normed, patch, hop)
        x = torch.cat([run.unfold(0, patch, hop).transpose(1, 2) for run in normed]).unsqueeze(1)
        temporal = [block.reduced(x, _max_freq) for block in cast("list[ReducedBlock]", self.temporal)]
        return timbral, torch.cat(temporal, 1)

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
        """Compute one layer for independent patches.

        Args:
            logmel: (n, T, 96) float32 log-mel patches (T = 187 for the trained setting).
            layer: a key of :data:`MUSICNN_FRAME_LAYERS` or :data:`MUSICNN_PATCH_LAYERS`.

        Returns:
            (n, T, dim) for frame-level layers, (n, dim) for patch-level layers.
        """
        return self.forward_runs(list(logmel.unbind(0)), logmel.shape[1], logmel.shape[1], layer)

    def forward_patches(self, logmel: Tensor, layer: str) -> Tensor:
        """:meth:`forward` as a few batched kernels (the GPU shape): every conv runs on the whole
        (n, 1, T, 96) batch at once; nothing is shared between overlapping patches.

        Args:
            logmel: (n, T, 96) float32 log-mel patches.
            layer: as in :meth:`forward`.

        Returns:
            As :meth:`forward`.
        """
        x = self.input_bn(logmel).unsqueeze(1)  # (n, 1, T, 96); the input BN is one scalar affine
        blocks = cast("list[ReducedBlock]", [*self.timbral, *self.temporal])
        maps = [block.finish(block.conv(x).amax(dim=3)) for block in blocks]
        timbral, temporal = torch.cat(maps[: len(self.timbral)], 1), torch.cat(maps[len(self.timbral) :], 1)
        return self._back(timbral, temporal, layer)

    def forward_runs(self, runs: list[Tensor], patch: int, hop: int, layer: str) -> Tensor:
        """Compute one layer for the patches of runs (see :meth:`timbral_runs`).

        Args:
            runs: (T_r, 96) log-mel, each holding ``1 + (T_r - patch) // hop`` patches.
            patch: patch length in frames (187).
            hop: patch hop in frames within a run.
            layer: as in :meth:`forward`.

        Returns:
            As :meth:`forward`, for all patches of all runs in order.
        """
        timbral, temporal = self.frontend_runs(runs, patch, hop)
        return self._back(timbral, temporal, layer)

    def _back(self, timbral: Tensor, temporal: Tensor, layer: str) -> Tensor:
        """Front-end maps (n, 408, T), (n, 153, T) -> the requested layer (mid end, pooling, dense)."""
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


def _max_pool_axis(x: Tensor, dim: int, size: int, stride: int) -> Tensor:
    """Valid max-pool along ``dim`` with size == stride, size == 2 * stride, or size 1."""
    out = (x.shape[dim] - size) // stride + 1
    if size == 1:
        return x.narrow(dim, 0, (out - 1) * stride + 1)[(slice(None),) * dim + (slice(None, None, stride),)]
    if size == stride:
        return x.narrow(dim, 0, out * size).unflatten(dim, (out, size)).amax(dim + 1)
    if size == 2 * stride:
        half = x.narrow(dim, 0, (out + 1) * stride).unflatten(dim, (out + 1, stride)).amax(dim + 1)
        return torch.maximum(half.narrow(dim, 0, out), half.narrow(dim, 1, out))
    raise ValueError(f"unsupported pool size {size} with stride {stride}")


def _max_pool(x: Tensor, pool: tuple[int, int], stride: tuple[int, int]) -> Tensor:
    """TF 'valid' max-pool over (time, freq) of (n, c, T, F), by reshapes (torch's NCHW
    ``max_pool2d`` is ~15x slower on CPU for the (4, 1)/(2, 2) pool)."""
    return _max_pool_axis(_max_pool_axis(x, 3, pool[1], stride[1]), 2, pool[0], stride[0])


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
    out_weight: torch.Tensor
    out_bias: torch.Tensor

    def __init__(self, variables: dict[str, np.ndarray], model: str = "MTT_vgg") -> None:
        super().__init__()
        v = variables
        self.pools = VGG_POOLS[model]
        self.input_bn = Affine(v, "batch_normalization", dim=1)
        same = (1, 1, 1, 1)  # 3x3 'same'
        self.blocks = nn.ModuleList([
            ReducedBlock(v[f"{i}CNN/kernel"], v[f"{i}CNN/bias"], Affine(v, f"batch_normalization_{i}"), same)
            for i in range(1, 6)
        ])
        self.register_buffer("out_weight", _t(v["dense/kernel"].T))
        self.register_buffer("out_bias", _t(v["dense/bias"]))

    def _block(self, index: int, x: Tensor) -> Tensor:
        block = cast(ReducedBlock, self.blocks[index])
        (pool_t, pool_f), (stride_t, stride_f) = self.pools[index]
        if pool_f == 1 and stride_f > 1:
            # a pool of width 1 keeps every stride_f-th frequency: compute only those columns
            y = F.conv2d(F.pad(x, block.padding), block.weight, stride=(1, stride_f))
            return block.finish(_max_pool(y, (pool_t, 1), (stride_t, 1)))
        return block.finish(_max_pool(block.conv(x), (pool_t, pool_f), (stride_t, stride_f)))

    def _early_blocks(self, x: Tensor) -> Tensor:
        for index in range(3):
            x = self._block(index, x)
        return x

    def forward_runs(self, runs: list[Tensor], patch: int, hop: int, layer: str) -> Tensor:
        """Like :meth:`MusicnnNet.forward_runs` (the VGG shares nothing between patches)."""
        return self(torch.cat([run.unfold(0, patch, hop).transpose(1, 2) for run in runs]), layer)

    def forward_patches(self, logmel: Tensor, layer: str) -> Tensor:
        """Like :meth:`MusicnnNet.forward_patches`: :meth:`forward` (already batched off the CPU)."""
        return self(logmel, layer)

    def forward(self, logmel: Tensor, layer: str) -> Tensor:
        """(n, 187, 96) log-mel -> (n, dim) for ``layer`` in :data:`VGG_PATCH_LAYERS`."""
        x = self.input_bn(logmel.unsqueeze(1))
        x = per_sample(self._early_blocks, x)  # the big maps, one patch at a time on CPU
        for index in range(3, len(self.blocks)):
            x = self._block(index, x)
        pool5 = x.permute(0, 2, 3, 1).flatten(1)  # TF flattens (time, freq, channel)
        if layer == "pool5":
            return pool5
        logits = F.linear(pool5, self.out_weight, self.out_bias)
        return torch.sigmoid(logits) if layer == "taggram" else logits
