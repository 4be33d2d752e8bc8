"""Which device a stage runs on: the one place that turns ``auto``/``cpu``/``cuda`` into a torch device."""
from __future__ import annotations

import typing
from typing import Literal

from pipeline.errors import ConfigError

#: the values of ``extract.device``, ``distill.device`` and the ``--device`` options
Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = typing.get_args(Device)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``.

    Args:
        device: one of :data:`DEVICES`.

    Returns:
        ``"cpu"`` or ``"cuda"``.

    Raises:
        ConfigError: ``cuda`` without a visible GPU, or a value not in :data:`DEVICES`.
    """
    if device not in DEVICES:
        raise ConfigError(f"device {device!r} is not one of {', '.join(DEVICES)}")
    import torch  # only when a stage actually runs: `pipeline --help` stays free of torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no CUDA GPU is visible; use --device cpu or auto")
    return device


def training_threads(threads: int) -> int:
    """Torch threads for stage two: ``threads`` when > 0, else the CPU cores this process may use.

    ``distill.threads: 0`` (the default) lets one training process use every core: on 2 cores
    the demo's student trains at 51 instead of 30 clips/s (`pipeline distill --epochs 2`,
    east-kd, 600 clips). Parallel benchmark jobs set 1 each.
    """
    import os

    if threads > 0:
        return threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
