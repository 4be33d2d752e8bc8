"""``pipeline distill``: stage two from the command line."""
from __future__ import annotations

import click

from pipeline.cli import load_params_from
from pipeline.config import STUDENT_NAMES, VARIANTS
from pipeline.variants import variants_help
from pipeline.devices import DEVICES


@click.command(context_settings={"show_default": True})
@click.option("--student", "-s", type=click.Choice(STUDENT_NAMES), default=None,
              help="Student network [default: distill.student]")
@click.option("--teacher", "-t", default=None, help="Teacher whose cached frames regularise [default: distill.teacher]")
@click.option("--variant", type=click.Choice(VARIANTS), default=None,
              help=f"{variants_help()} (fine-tune a pretrain run with --init) [default: distill.variant]")
@click.option("--lam", type=click.FloatRange(0.0, 1.0), default=None,
              help="lambda in (1 - lambda) L_pred + lambda L_reg [default: distill.lam]")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="[default: distill.epochs]")
@click.option("--batch-size", type=click.IntRange(min=2), default=None, help="[default: distill.batch_size]")
@click.option("--seed", type=int, default=None, help="[default: distill.seed]")
@click.option("--device", type=click.Choice(DEVICES), default=None, help="[default: distill.device]")
@click.option("--run-dir", type=click.Path(file_okay=False), default=None,
              help="Run folder [default: <runs_root>/<student>-<teacher>-<variant>]")
@click.option("--init", "init", type=click.Path(file_okay=False), default=None,
              help="Start from the student weights (best.pt) of this run, e.g. a pretrain run; it must have the "
                   "same student, settings and classes [default: distill.init]")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.pass_context
def distill(ctx: click.Context, student: str | None, teacher: str | None, variant: str | None, lam: float | None,
            epochs: int | None, batch_size: int | None, seed: int | None, device: str | None,
            run_dir: str | None, init: str | None, no_progress: bool) -> None:
    """Train a student on audio, regularised by the cached embeddings of a teacher.

    The teacher never runs here: its frames come from the store of `pipeline extract`.
    An interrupted run resumes from its last epoch when started again with the same
    run folder; delete the folder to start over.
    """
    from stages.distill import run

    params = load_params_from(ctx, {
        "distill.student": student, "distill.teacher": teacher, "distill.variant": variant,
        "distill.lam": lam, "distill.epochs": epochs, "distill.batch_size": batch_size,
        "distill.seed": seed, "distill.device": device, "distill.init": init,
    })
    metrics = run(params, run_dir=run_dir, progress=not no_progress)
    folder = run_dir or f"{params.distill.runs_root}/{metrics['run']}"
    best = (f"best valid mAP {metrics['valid_map']:.4f}" if metrics["valid_map"] is not None
            else f"lowest valid loss {metrics['valid_loss']:.4f}")
    click.echo(
        f"{metrics['run']}: {best} at epoch {metrics['best_epoch']} "
        f"({metrics['parameters']:,} parameters, {metrics['epochs_run']} epochs in {metrics['train_seconds']:.1f} s, "
        f"{metrics['train_clips_per_second']:.1f} clips/s on {metrics['device']}) -> {folder}"
    )
