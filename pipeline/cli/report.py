"""``pipeline report``: the comparison report."""
from __future__ import annotations

import click

from pipeline.cli import load_params_from


@click.command(context_settings={"show_default": True})
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Folder [default: report.out]")
@click.option("--runs", "runs_root", type=click.Path(file_okay=False), default=None,
              help="Runs folder [default: distill.runs_root]")
@click.pass_context
def report(ctx: click.Context, out: str | None, runs_root: str | None) -> None:
    """Write report.md (probe / baseline / EAsT-Final / EAsT-KD table; runs judged over seeds) with plots.

    The judged table also goes to judged.json next to report.md.
    """
    from stages.report import run

    path = run(load_params_from(ctx), out=out, runs_root=runs_root)
    click.echo(f"wrote {path}")
