"""``pipeline report``: collect every run's metrics into Markdown with plots."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.errors import TrainingError
from pipeline.report import collect_runs, plot_all, write_markdown


def run(params: Params, *, out: str | None = None, runs_root: str | None = None) -> Path:
    """Write ``<report.out>/report.md`` and its PNG plots; returns the Markdown file."""
    root = Path(runs_root or params.distill.runs_root)
    summaries = collect_runs(root, list(params.variants), list(params.teachers_enabled))
    if not summaries:
        raise TrainingError(f"no evaluated runs under {root}; run `pipeline distill` and `pipeline evaluate` first")
    folder = Path(out or params.report.out)
    plots = plot_all(summaries, folder)
    return write_markdown(summaries, plots, folder)
