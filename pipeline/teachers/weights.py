"""Locating teacher weight files without importing heavy packages.

Teachers never download: their weights are a file the user points at, or a file an
installed package ships. These helpers find such files cheaply (no TensorFlow, no
torch import) so that :meth:`Teacher.weights_available` stays instant, and build the
one-line :class:`~pipeline.errors.WeightsNotFoundError` every teacher raises.
"""
from __future__ import annotations

import importlib.util
import os
from typing import Any, Mapping
from pathlib import Path

from pipeline.errors import WeightsNotFoundError


def package_dir(package: str) -> Path | None:
    """Folder of an installed top-level package, found without importing it.

    Args:
        package: importable top-level name, e.g. ``"openl3"``.

    Returns:
        The package folder, or ``None`` when the package is not installed.
    """
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def torch_hub_checkpoints() -> Path:
    """The folder ``torch.hub`` caches downloaded checkpoints in (computed without importing torch).

    Follows torch's rule: ``$TORCH_HOME/hub/checkpoints``, with ``TORCH_HOME`` defaulting
    to ``$XDG_CACHE_HOME/torch`` and that to ``~/.cache/torch``.
    """
    torch_home = os.environ.get("TORCH_HOME")
    if not torch_home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        torch_home = os.path.join(cache, "torch")
    return Path(torch_home).expanduser() / "hub" / "checkpoints"


def resolve_file(
    configured: str | os.PathLike[str] | None, filename: str, default_dir: Path | None
) -> Path | None:
    """Where a weight file should be: the configured path, a file in a configured folder, or a default.

    Args:
        configured: the user's setting (a file, or a folder holding ``filename``), or ``None``.
        filename: the official file name looked for inside folders.
        default_dir: folder to look in when nothing is configured (``None``: no default).

    Returns:
        The expected path (it may not exist), or ``None`` when there is nowhere to look.
    """
    if configured:
        path = Path(configured).expanduser()
        return path / filename if path.is_dir() else path
    return None if default_dir is None else default_dir / filename


def require_files(teacher: str, files: list[Path], hint: str) -> None:
    """Raise the teacher's one-line missing-weights error unless every file exists.

    Raises:
        WeightsNotFoundError: naming the first missing file and saying how to get it.
    """
    for path in files:
        if not Path(path).is_file():
            raise WeightsNotFoundError(f"{teacher} weights not found: {str(path)!r}; {hint}")


def describe_mismatch(expected: Mapping[str, Any], found: Mapping[str, Any]) -> str:
    """How a checkpoint's state dict differs from a model's, in one line ("" when it fits).

    Args:
        expected: the model's ``state_dict()`` (name -> tensor).
        found: the checkpoint's state dict (name -> tensor).
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [k for k in expected if k in found and tuple(found[k].shape) != tuple(expected[k].shape)]
    parts = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            parts.append(f"{label} ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}")
    return "; ".join(parts)
