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
