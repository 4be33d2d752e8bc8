"""``pipeline report``: collect every run's metrics into Markdown with plots, and judge the runs over seeds."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.cost import COST_JSON, read_cost
from pipeline.errors import TrainingError
from pipeline.judging import judge_folder
from pipeline.report import collect_runs, plot_all, plot_seeds, write_judged, write_markdown


def run(params: Params, *, out: str | None = None, runs_root: str | None = None,
        cost: Path | str = COST_JSON) -> Path:
    """Write ``<report.out>/report.md``, its PNG plots and ``judged.json``; returns the Markdown file.

    The cost table of ``benchmarks/bench_cost.py`` is shown when its JSON (``cost``) exists.
    """
    root = Path(runs_root or params.distill.runs_root)
    summaries = collect_runs(root, list(params.variants), list(params.teachers_enabled))
    judgements = judge_folder(root)
    if not summaries and not judgements:
        raise TrainingError(f"no evaluated runs under {root}; run `pipeline distill` and `pipeline evaluate` first")
    folder = Path(out or params.report.out)
    plots = plot_all(summaries, folder)
    seeds_plot = plot_seeds(judgements, folder)
    if seeds_plot is not None:
        plots.append(seeds_plot)
    write_judged(judgements, folder)
    return write_markdown(summaries, plots, folder, judgements, read_cost(cost))
