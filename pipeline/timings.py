"""Where stages put wall-clock measurements: beside their metrics, never inside them.

``metrics.json``, ``eval-<split>.json`` and the extract report are DVC metrics: a rerun on the
same inputs must write the same bytes, or ``dvc status`` shows a byte-identical rerun as
modified. Wall time, clips per second and CPU milliseconds per clip therefore go to
``timings.json`` (``timings-<stage>.json``) in the same folder, which no stage declares as an
output. Standard library only, so the report can read them without importing the training code.
"""
from __future__ import annotations

from pathlib import Path

#: The file a stage's wall-clock measurements go to in its folder.
TIMINGS_FILE = "timings.json"


def timings_file(folder: Path | str, stage: str = "") -> Path:
    """``<folder>/timings.json``, or ``<folder>/timings-<stage>.json`` when a folder holds several stages' timings."""
    return Path(folder) / (f"timings-{stage}.json" if stage else TIMINGS_FILE)
