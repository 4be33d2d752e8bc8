"""Inference helpers shared by the torch teacher ports: chunked forward passes and numeric precision.

Every teacher has a ``precision`` setting (``teachers.<name>.precision`` in params.yaml):

- ``float32`` (default): full float32, TF32 off on CUDA (matches the original models to ~1e-6);
- ``tf32``: float32 tensors, TF32 tensor cores for convolutions and matmuls (CUDA only; on CPU
  the same as float32);
- ``bfloat16`` / ``float16``: ``torch.autocast`` to that dtype (convolutions, matmuls and
  attention in reduced precision; reductions stay float32).

Reduced precision changes the frames: the relative error against float32 of each teacher is
measured by ``tests/test_teacher_precision.py`` on CPU (bfloat16) and by
``benchmarks/gpu_check.py`` on a GPU, and listed by ``pipeline teachers``. A non-default
precision is recorded in a store's provenance, so it is never mixed with float32 frames.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np
import torch

from pipeline.teachers.base import MEASURED_BF16_ERROR, PRECISIONS, check_precision

__all__ = ["MEASURED_BF16_ERROR", "PRECISIONS", "check_precision", "exact_float32", "forward_in_chunks",
           "precision_mode"]


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Run CUDA convolutions and matmuls in full float32 (no TF32), restoring the settings after.

    With TF32 (PyTorch's default for cuDNN convolutions) outputs drift ~1e-3 from the
    original; without it they match to ~1e-6 and are still fast enough (measured on an H200:
    OpenL3 mel128 2 500 windows/s, VGGish 18 700 windows/s).
    """
    with _float32_mode(allow_tf32=False):
        yield


@contextlib.contextmanager
def _float32_mode(allow_tf32: bool) -> Iterator[None]:
    """cuDNN and matmul float32 settings with or without TF32, restored after the block."""
    cudnn = torch.backends.cudnn
    matmul = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if allow_tf32 else "highest")
    try:
        with cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark,
                         deterministic=cudnn.deterministic, allow_tf32=allow_tf32):
            yield
    finally:
        torch.set_float32_matmul_precision(matmul)


@contextlib.contextmanager
def precision_mode(precision: str, device: str) -> Iterator[None]:
    """Run the enclosed torch code at ``precision`` (see the module docstring) on ``device``."""
    device_type = "cuda" if str(device).startswith("cuda") else "cpu"
    if precision == "float32":
        with exact_float32():
            yield
    elif precision == "tf32":
        with _float32_mode(allow_tf32=True):
            yield
    else:
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float16
        with torch.autocast(device_type=device_type, dtype=dtype):
            yield


def forward_in_chunks(
    forward: Callable[[torch.Tensor], torch.Tensor],
    windows: np.ndarray,
    *,
    device: str,
    rows: int,
    dim: int,
    exact: bool = False,
    precision: str | None = None,
) -> np.ndarray:
    """Run ``forward`` over ``windows`` ``rows`` at a time, without gradients.

    Args:
        forward: maps a float32 (rows, samples) tensor on ``device`` to (rows, dim).
        windows: float32 (n, samples).
        device: where the model lives.
        rows: windows per forward pass (bounds peak memory).
        dim: embedding size (for empty input).
        exact: run in full float32 (:func:`exact_float32`) when ``precision`` is None.
        precision: one of :data:`PRECISIONS` (:func:`precision_mode`); overrides ``exact``.

    Returns:
        float32 (n, 1, dim): one frame per window, the teacher contract's shape.
    """
    out = np.empty((len(windows), 1, dim), dtype=np.float32)
    mode: contextlib.AbstractContextManager[None]
    if precision is not None:
        mode = precision_mode(precision, device)
    else:
        mode = exact_float32() if exact else contextlib.nullcontext()
    with torch.inference_mode(), mode:
        for lo in range(0, len(windows), rows):
            # a view of pinned memory (the extraction batcher's buffer) copies asynchronously
            batch = torch.from_numpy(np.ascontiguousarray(windows[lo : lo + rows])).to(device, non_blocking=True)
            out[lo : lo + rows, 0] = forward(batch).float().cpu().numpy()
    return out
