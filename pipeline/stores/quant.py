"""The 8-bit store form: ``uint8`` codes with a per-part, per-dimension scale and shift.

A ``dtype: uint8`` store keeps each frame value as a code ``c`` in 0..255; readers return
``float32(c) * scale[d] + shift[d]`` for dimension ``d``. ``shift`` is the part's minimum
of the dimension and ``scale`` its range / 255, so the reconstruction error of every value
is at most ``scale[d] / 2`` (plus float32 rounding of the result).

Why per part and not per track: a musicnn track of 10 s has about 8 frames of 200 values
(1,600 bytes of codes); a float32 scale and shift per track and dimension would add another
1,600 bytes and the store would be as large as float16. A part holds up to ``part_tracks``
tracks (256 by default), so its two (dim,) float32 rows cost well under 1 % of the codes.
The writer knows a part's range when it commits it (every track of the part is buffered),
so the codes are exact and deterministic for a given grouping of tracks into parts. The
parameters live in the index segment beside the part's row counts (``part.scale``,
``part.shift``), so every reader (zarr, hdf5, memmap export, a URL) dequantises the same way.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from pipeline.errors import StoreError

#: the stored dtype of the 8-bit form
QUANT_DTYPE = "uint8"
#: highest code
LEVELS = 255


def is_quantised(dtype: str) -> bool:
    """Whether a store of stored dtype ``dtype`` holds codes that readers dequantise."""
    return dtype == QUANT_DTYPE


def value_range(pieces: Iterable[np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension ``(min, max)`` (two (dim,) float64 arrays) over (n_i, dim) finite row blocks.

    Raises:
        StoreError: no rows at all.
    """
    lo = np.full(dim, np.inf)
    hi = np.full(dim, -np.inf)
    for piece in pieces:
        if len(piece):
            lo = np.minimum(lo, piece.min(axis=0))
            hi = np.maximum(hi, piece.max(axis=0))
    if not np.isfinite(lo).all():
        raise StoreError("cannot quantise a part without rows")
    return lo, hi


def quant_params(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)``, two (dim,) float32 arrays, for values in ``[lo, hi]`` per dimension.

    A constant dimension (``hi == lo``) gets ``scale = 0``: all its codes are 0 and it reads back
    exactly as ``shift`` (no division by zero).
    """
    shift = np.asarray(lo, dtype=np.float32)
    scale = ((np.asarray(hi, np.float64) - shift.astype(np.float64)) / LEVELS).astype(np.float32)
    return scale, shift


def quantise(rows: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(n, dim) uint8 codes of (n, dim) finite float rows: ``round((x - shift) / scale)`` clipped to 0..255."""
    safe = np.where(scale > 0, scale, 1.0).astype(np.float64)
    codes = np.rint((np.asarray(rows, dtype=np.float64) - shift.astype(np.float64)) / safe)
    codes[:, scale <= 0] = 0
    return np.clip(codes, 0, LEVELS).astype(np.uint8)


def dequantise(codes: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(n, dim) float32 frames ``codes * scale + shift`` of (n, dim) uint8 codes."""
    out = codes.astype(np.float32)
    out *= scale
    out += shift
    return out


def check_params(scale: np.ndarray, shift: np.ndarray, shape: tuple[int, int], where: str) -> None:
    """Refuse quantisation parameters that are not (k, dim) float32, finite, with ``scale >= 0``.

    Raises:
        StoreError: naming ``where`` and what is wrong (a store is input from someone else).
    """
    for name, array in (("part.scale", scale), ("part.shift", shift)):
        if array.shape != shape:
            raise StoreError(f"{where}: array {name!r} is {array.shape}, expected {shape}; refusing the index")
        if not np.isfinite(array).all():
            raise StoreError(f"{where}: array {name!r} holds NaN or Inf; refusing the index")
    if (scale < 0).any():
        raise StoreError(f"{where}: array 'part.scale' holds negative scales; refusing the index")
    top = shift.astype(np.float64) + LEVELS * scale.astype(np.float64)
    if not np.isfinite(top.astype(np.float32)).all():
        raise StoreError(f"{where}: 'part.scale' and 'part.shift' overflow float32; refusing the index")
