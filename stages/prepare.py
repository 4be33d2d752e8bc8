"""``pipeline prepare <dataset>``: build a dataset's manifests as a plain function.

Where the outputs go: when ``params.data.dataset`` names the builder being run, the
manifests go to ``params.data.manifests`` (and, for the demo, the audio to
``params.data.audio_root``), so the later stages find them. Otherwise the defaults are
``data_manifests/<builder>`` (and ``data/demo`` for the demo audio); set ``data`` in
``params.yaml`` to use them. Explicit options always win.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.datasets import BUILDERS, BuildReport


def default_paths(params: Params, builder: str) -> tuple[str, str]:
    """``(manifests_dir, audio_root)`` a builder writes to unless told otherwise."""
    if params.data.dataset == builder:
        return params.data.manifests, params.data.audio_root
    return f"data_manifests/{builder}", "data/demo" if builder == "demo" else ""


def run(params: Params, *, builder: str, **options: Any) -> BuildReport:
    """Run dataset builder ``builder`` with ``options`` on top of the defaults from ``params``.

    Args:
        params: the loaded ``params.yaml`` (flags already applied as overrides).
        builder: ``demo``, ``folder``, ``openmic`` or ``magnatagatune``.
        **options: the builder's keyword arguments (see ``pipeline.datasets.<builder>.build``);
            ``None`` values are dropped so the defaults apply.

    Returns:
        The builder's report (also written to ``<manifests_dir>/report.json`` unless a dry run).

    Raises:
        UnknownNameError: no such builder.
        ManifestError, AudioError, ConfigError: from the builder.
    """
    build = BUILDERS.get(builder)
    options = {k: v for k, v in options.items() if v is not None}
    manifests_dir, audio_root = default_paths(params, builder)
    options.setdefault("manifests_dir", manifests_dir)
    if builder == "demo":
        options.setdefault("config", params.demo)
        options.setdefault("audio_root", audio_root)
    options["manifests_dir"] = Path(options["manifests_dir"])
    return build(**options)
