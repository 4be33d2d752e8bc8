"""Pairing student feature frames with teacher frames by their time stamps (docs/method.md, "Alignment").

Both sides carry the center time (seconds) of each frame. Three modes:

- ``"window"`` (default): each teacher frame summarises ``[t - window/2, t + window/2)``;
  the student frames whose centers fall inside it are averaged. Teacher frames with no
  student frame inside are dropped. Output rate = teacher rate.
- ``"nearest"``: each student frame is paired with the teacher frame whose center is
  nearest, if it lies inside that frame's window (otherwise dropped). Output rate =
  student rate (the teacher is repeated).
- ``"repeat"``: the paper's scheme: ``repeat_interleave`` both sides along time (factors
  given, or derived from the hop ratio) and truncate both to the shorter length from the
  start. It ignores the frames' offsets (e.g. VGGish's 0.48 s). An expand factor of ``-1``
  mean-pools that side over time (the paper's option), which needs ``-1`` on both sides.

A clip-level teacher (``teacher_window <= 0``, one frame, e.g. PANNs) is broadcast to
every student frame (``clip_level="broadcast"``, the paper's teacher x T expand) or
compared with the time-averaged student (``clip_level="mean"``), in every mode, except
``"repeat"`` with both expand factors given, which does exactly what they say (the paper's
PANNs rows: teacher x60 against 62 student frames compares 60).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from pipeline.config import ALIGNMENTS
from pipeline.errors import ConfigError, TrainingError

MODES = ALIGNMENTS
#: seconds of slack when a frame center sits on a window edge (float32 time stamps)
TIME_TOLERANCE = 1e-6


def _times(values: Any, n: int, what: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    times = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(times) != n:
        raise TrainingError(f"{what} has {len(times)} time stamps for {n} frames; they must match")
    return times


def hop_ratio_expands(student_times: np.ndarray, teacher_times: np.ndarray) -> tuple[int, int]:
    """(student_expand, teacher_expand) making both sides run at the finer hop.

    Raises:
        ConfigError: the hops are not integer multiples of each other.
    """
    if len(student_times) < 2 or len(teacher_times) < 2:
        return 1, 1
    hs = float(student_times[1] - student_times[0])
    ht = float(teacher_times[1] - teacher_times[0])
    if hs <= 0 or ht <= 0:
        raise TrainingError(f"frame times must increase; got hops {hs} s (student) and {ht} s (teacher)")
    ratio = ht / hs if ht >= hs else hs / ht
    factor = int(round(ratio))
    if abs(ratio - factor) > 0.02 * ratio:
        raise ConfigError(
            f"alignment 'repeat' needs hops that are integer multiples of each other, got student "
            f"{hs:.4f} s and teacher {ht:.4f} s (ratio {ratio:.3f}); "
            "use alignment 'window' or give the expands"
        )
    return (1, factor) if ht >= hs else (factor, 1)


def _expand(x: torch.Tensor, factor: int) -> torch.Tensor:
    if factor == -1:
        return x.mean(dim=1, keepdim=True)
    if factor < 1:
        raise ConfigError(f"expand factors must be >= 1 or -1 (mean over time), got {factor}")
    return x if factor == 1 else torch.repeat_interleave(x, factor, dim=1)


def align_frames(
    student: torch.Tensor,
    student_times: Any,
    teacher: torch.Tensor,
    teacher_times: Any,
    teacher_window: float,
    mode: str = "window",
    student_expand: int | None = None,
    teacher_expand: int | None = None,
    clip_level: str = "broadcast",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Align student and teacher frames along time.

    Args:
        student: (N, Ts, C) student features.
        student_times: (Ts,) center times in seconds (array, tensor or sequence).
        teacher: (N, Tt, D) teacher frames.
        teacher_times: (Tt,) center times in seconds, same origin as ``student_times``.
        teacher_window: seconds one teacher frame summarises; ``<= 0`` marks a clip-level teacher.
        mode: ``"window"``, ``"repeat"`` or ``"nearest"`` (see the module docstring).
        student_expand, teacher_expand: ``"repeat"`` only; ``None`` derives them from the hops.
        clip_level: ``"broadcast"`` or ``"mean"`` for a clip-level teacher.

    Returns:
        ``(s_aligned (N, T, C), e_aligned (N, T, D))`` with the same ``T``.

    Raises:
        ConfigError: unknown mode or bad expand factors.
        TrainingError: mismatched shapes or times, or no frame pair at all.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown alignment {mode!r}; choose one of {', '.join(MODES)}")
    if student.dim() != 3 or teacher.dim() != 3 or student.shape[0] != teacher.shape[0]:
        raise TrainingError(
            f"alignment needs (N, T, C) student and (N, T, D) teacher frames with the same N, "
            f"got {tuple(student.shape)} and {tuple(teacher.shape)}"
        )
    st = _times(student_times, student.shape[1], "student features")
    tt = _times(teacher_times, teacher.shape[1], "teacher frames")

    explicit_repeat = mode == "repeat" and student_expand is not None and teacher_expand is not None
    if teacher_window <= 0 and not explicit_repeat:
        return _clip_level(student, teacher, teacher_window, clip_level)
    if mode == "repeat":
        return _repeat(student, st, teacher, tt, student_expand, teacher_expand)
    plan = _plan(mode, st, tt, float(teacher_window), student.device, teacher.device, student.dtype)
    if mode == "window":
        weights, keep = plan
        return torch.einsum("kt,ntc->nkc", weights, student), teacher.index_select(1, keep)
    s_index, e_index = plan
    return student.index_select(1, s_index), teacher.index_select(1, e_index)


def _clip_level(student: torch.Tensor, teacher: torch.Tensor, teacher_window: float,
                clip_level: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A one-frame teacher against every student frame (``broadcast``) or the time-averaged student (``mean``)."""
    if teacher.shape[1] != 1:
        raise TrainingError(
            f"a clip-level teacher (window {teacher_window}) must have one frame, got {teacher.shape[1]}"
        )
    if clip_level == "mean":
        return student.mean(dim=1, keepdim=True), teacher
    if clip_level != "broadcast":
        raise ConfigError(f"clip_level must be 'broadcast' or 'mean', got {clip_level!r}")
    return student, teacher.expand(-1, student.shape[1], -1)


def _repeat(student: torch.Tensor, student_times: np.ndarray, teacher: torch.Tensor, teacher_times: np.ndarray,
            student_expand: int | None, teacher_expand: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's repeat-and-truncate; missing factors come from the hop ratio."""
    if student_expand is None or teacher_expand is None:
        derived = hop_ratio_expands(student_times, teacher_times)
        student_expand = derived[0] if student_expand is None else student_expand
        teacher_expand = derived[1] if teacher_expand is None else teacher_expand
    if (student_expand == -1) != (teacher_expand == -1):
        raise ConfigError("expand -1 (mean over time) must be given for both student and teacher")
    s, e = _expand(student, student_expand), _expand(teacher, teacher_expand)
    length = min(s.shape[1], e.shape[1])
    return s[:, :length], e[:, :length]


#: alignment plans by geometry: a training run reuses one, so no host-to-device copy (and no
#: stream synchronisation) happens per batch
_PLANS: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
_MAX_PLANS = 64


def _plan(
    mode: str, st: np.ndarray, tt: np.ndarray, window: float,
    s_device: torch.device, t_device: torch.device, dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Averaging weights + kept teacher frames ("window") or index pairs ("nearest"), cached."""
    key = (mode, st.tobytes(), tt.tobytes(), window, str(s_device), str(t_device), dtype)
    plan = _PLANS.get(key)
    if plan is not None:
        return plan
    half = window / 2.0
    # inside[k, t]: student frame t lies in teacher frame k's window (half-open)
    offsets = st[None, :] - tt[:, None]
    inside = (offsets >= -half - TIME_TOLERANCE) & (offsets < half - TIME_TOLERANCE)
    if mode == "window":
        keep = np.flatnonzero(inside.any(axis=1))
        if len(keep) == 0:
            raise TrainingError(_no_pairs(st, tt, window))
        weights = inside[keep].astype(np.float64)
        weights /= weights.sum(axis=1, keepdims=True)
        plan = (
            torch.as_tensor(weights, dtype=dtype, device=s_device),
            torch.as_tensor(keep, device=t_device),
        )
    else:
        if len(tt):
            nearest = np.abs(offsets).argmin(axis=0)
            frames = np.flatnonzero(inside[nearest, np.arange(len(st))])
        else:
            nearest, frames = np.zeros(len(st), dtype=np.int64), np.zeros(0, dtype=np.int64)
        if len(frames) == 0:
            raise TrainingError(_no_pairs(st, tt, window))
        plan = (torch.as_tensor(frames, device=s_device), torch.as_tensor(nearest[frames], device=t_device))
    if len(_PLANS) >= _MAX_PLANS:
        _PLANS.clear()
    _PLANS[key] = plan
    return plan


def _no_pairs(st: np.ndarray, tt: np.ndarray, window: float) -> str:
    if len(st) == 0 or len(tt) == 0:
        return f"nothing to align: {len(st)} student and {len(tt)} teacher frames"
    return (
        f"no student frame (centers {st.min():.3f}..{st.max():.3f} s) falls inside any teacher window "
        f"(centers {tt.min():.3f}..{tt.max():.3f} s, {window:.3f} s wide); check the crop and frame times"
    )
