"""``pipeline triage``: which teacher to distil from, before spending GPU hours."""
from __future__ import annotations

import click

from pipeline.cli import load_params_from


@click.command(context_settings={"show_default": True})
@click.option("--teacher", "-t", "teachers", multiple=True,
              help="Teacher whose store to compare (repeatable) [default: teachers_enabled]")
@click.option("--baseline", type=click.Path(file_okay=False), default=None,
              help="A baseline student's run folder [default: <distill.runs_root>/baseline-0 when it exists]")
@click.option("--measure", type=click.Choice(["dcor", "cka"]), default="dcor",
              help="Dependence: bias-corrected distance correlation or bias-corrected linear CKA")
@click.option("--split", default="valid", help="Manifest split to compare on")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for triage.md and triage.png [default: report.out]")
@click.pass_context
def triage(ctx: click.Context, teachers: tuple[str, ...], baseline: str | None, measure: str, split: str,
           out: str | None) -> None:
    """Compare teacher stores: probe valid mAP, and dependence between teachers and with a baseline student.

    Dependence is measured on clip-pooled embeddings of the split (about 0: independent, 1: a linear
    copy). Prints the Markdown table and a one-line recommendation with the rule it follows. Each store
    is one candidate: compare layers as teacher instances (<teacher>@<label>) with their own stores.
    """
    from stages.triage import run

    params = load_params_from(ctx)
    result = run(params, teachers=teachers, baseline=baseline, measure=measure, split=split, out=out)
    click.echo(result["markdown"].read_text(), nl=False)
    click.echo(f"recommended: {result['recommended'] or 'none'} -> {result['markdown']}, {result['png']}")
