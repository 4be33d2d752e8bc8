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
from pipeline.datasets.demo import render_audio
from pipeline.errors import ConfigError


def default_paths(params: Params, builder: str) -> tuple[str, str]:
    """``(manifests_dir, audio_root)`` a builder writes to unless told otherwise."""
    if params.data.dataset == builder:
        return params.data.manifests, params.data.audio_root
    return f"data_manifests/{builder}", "data/demo" if builder == "demo" else ""


def data_options(params: Params, builder: str) -> dict[str, Any]:
    """The builder options ``params.data`` holds for ``builder`` (``pipeline prepare`` without a subcommand).

    ``audio_root`` is the dataset root of every builder; empty settings are left to the
    builder's defaults.
    """
    data = params.data
    root = data.audio_root
    if data.unlabeled and builder != "folder":
        raise ConfigError(f"data.unlabeled is {data.unlabeled!r}, but only the folder dataset takes unlabeled "
                          f"audio (data.dataset is {builder!r}; the demo renders demo.n_unlabeled); set it to \"\"")
    if builder == "demo":
        return {"render": False, "labels_csv": data.labels or None}
    if builder == "folder":
        if not data.labels:
            raise ConfigError("data.labels is empty; set it to the labels CSV of your folder dataset "
                              "(e.g. `dvc exp run -S data.labels=mydata/labels.csv`)")
        return {"root": root, "labels_csv": data.labels, "classes": list(data.classes) or None,
                "fractions": tuple(data.fractions), "seed": data.seed,
                "unlabeled": [data.unlabeled] if data.unlabeled else []}
    if builder == "openmic":
        return {"root": root, "split_dir": data.split_dir or None, "label_rule": data.label_rule}
    if builder == "magnatagatune":
        return {"root": root, "split_dir": data.split_dir or None, "n_tags": data.n_tags,
                "random_split": data.random_split, "seed": data.seed}
    return {"root": root}


def run(params: Params, *, builder: str | None = None, **options: Any) -> BuildReport:
    """Run dataset builder ``builder`` with ``options`` on top of the defaults from ``params``.

    Args:
        params: the loaded ``params.yaml`` (flags already applied as overrides).
        builder: ``demo``, ``folder``, ``openmic`` or ``magnatagatune``; ``None`` runs
            ``params.data.dataset`` with the options in ``params.data`` (what ``dvc repro`` does;
            the demo then reads the audio its ``render`` stage wrote).
        **options: the builder's keyword arguments (see ``pipeline.datasets.<builder>.build``);
            ``None`` values are dropped so the defaults apply.

    Returns:
        The builder's report (also written to ``<manifests_dir>/report.json`` unless a dry run).

    Raises:
        UnknownNameError: no such builder.
        ManifestError, AudioError, ConfigError: from the builder.
    """
    if builder is None:
        builder = params.data.dataset
        options = {**data_options(params, builder), **options}
    build = BUILDERS.get(builder)
    options = {k: v for k, v in options.items() if v is not None}
    manifests_dir, audio_root = default_paths(params, builder)
    options.setdefault("manifests_dir", manifests_dir)
    if builder == "demo":
        options.setdefault("config", params.demo)
        options.setdefault("audio_root", audio_root)
    options["manifests_dir"] = Path(options["manifests_dir"])
    return build(**options)


def render(params: Params, *, audio_root: str | None = None, workers: int = 2, progress: bool = True) -> str:
    """Render the demo's audio and ``labels.csv`` only (``dvc repro``'s ``render`` stage); returns the folder."""
    if audio_root is None:
        audio_root = params.data.audio_root if params.data.dataset == "demo" else "data/demo"
    folder = audio_root
    plans, _ = render_audio(params.demo, folder, workers=workers, progress=progress)
    return f"demo: rendered {len(plans)} clips and labels.csv to {folder}"
