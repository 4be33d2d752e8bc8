"""Dataset builders: each reads one dataset's layout and writes the pipeline's manifests.

``BUILDERS`` maps a name (``demo``, ``folder``, ``openmic``, ``magnatagatune``) to a
function ``build(**options) -> BuildReport``; ``stages.prepare.run`` and the
``pipeline prepare`` subcommands call them.
"""
from __future__ import annotations

from pipeline.datasets.base import BUILDERS, BuildReport, register_builder

__all__ = ["BUILDERS", "BuildReport", "register_builder"]

# Importing the modules registers their builders (they are light: numpy and soundfile only).
from pipeline.datasets import demo, folder, magnatagatune, openmic  # noqa: E402,F401
