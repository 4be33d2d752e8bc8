"""``pipeline probe``: the teacher's linear probe."""
from __future__ import annotations

import click

from pipeline.cli import load_params_from


@click.command(context_settings={"show_default": True})
@click.option("--teacher", "-t", required=True, help="Teacher whose store to probe (a name in teachers_enabled).")
@click.option("--store", type=click.Path(file_okay=False), default=None,
              help="Store path [default: <extract.store_root>/<teacher>]")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Output folder [default: <probe.runs_root>/probe-<teacher>]")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Max steps [default: probe.steps]")
@click.pass_context
def probe(ctx: click.Context, teacher: str, store: str | None, out: str | None, steps: int | None) -> None:
    """Fit Linear(dim, classes) on time-pooled, z-scored teacher frames.

    The weight decay and step count are picked on validation mAP. The result is the
    teacher's reference row (how well its embedding alone does) and the frozen KD teacher
    used by `pipeline distill --variant east-kd`.
    """
    from stages.probe import probe_dir, run

    params = load_params_from(ctx, {"probe.steps": steps})
    metrics = run(params, teacher=teacher, store=store, out=out)
    click.echo(
        f"probe-{teacher}: valid mAP {metrics['valid_map']:.4f}, test mAP {metrics['test_map']:.4f}, "
        f"test ROC-AUC {metrics['test_roc_auc']:.4f} "
        f"(weight decay {metrics['weight_decay']:g}, {metrics['steps']} steps, {metrics['seconds']:.1f} s) "
        f"-> {out or probe_dir(params, teacher)}"
    )
