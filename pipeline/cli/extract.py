"""``pipeline extract``: stage one from the command line."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.cli import load_params_from
from pipeline.config import BACKENDS
from pipeline.devices import DEVICES


@click.command(context_settings={"show_default": True})
@click.option("--teacher", "-t", required=True,
              help="Teacher to run: a built-in or plugin name (see `pipeline teachers`), hear:<module> "
                   "(a HEAR-API module) or run:<run_dir> (a trained run).")
@click.option("--manifests", type=click.Path(file_okay=False), default=None,
              help="Manifests folder [default: data.manifests]")
@click.option("--audio-root", type=click.Path(file_okay=False), default=None,
              help="Folder the manifests' audio paths start from [default: data.audio_root]")
@click.option("--store", type=click.Path(file_okay=False), default=None,
              help="Store path [default: <extract.store_root>/<teacher>]")
@click.option("--device", type=click.Choice(DEVICES), default=None,
              help="auto picks CUDA when present [default: extract.device]")
@click.option("--batch-seconds", type=click.FloatRange(min=0.5), default=None,
              help="Audio seconds of teacher windows per forward pass [default: extract.batch_seconds]")
@click.option("--backend", type=click.Choice(BACKENDS), default=None,
              help="Store backend for a new store [default: extract.backend]")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Local dask worker processes, 0 = in-process [default: extract.workers]")
@click.option("--scheduler", default=None, help="Address of an existing dask scheduler, e.g. tcp://host:8786.")
@click.option("--weights", type=click.Path(exists=True), default=None,
              help="Teacher weight file or folder (overrides teachers.<name>.weights; for hear: the "
                   "model_file_path, for run: a checkpoint).")
@click.option("--split", "splits", multiple=True, help="Splits to extract (repeatable) [default: extract.splits]")
@click.option("--overwrite", is_flag=True, help="Delete an existing store first instead of resuming it.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N tracks (smoke runs).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--keep-going", is_flag=True,
              help="Exit 0 even when files failed: they stay listed in the report, and the later stages "
                   "leave them out with one warning (what dvc repro uses).")
@click.pass_context
def extract(ctx: click.Context, teacher: str, manifests: str | None, audio_root: str | None, store: str | None,
            device: str | None, batch_seconds: float | None, backend: str | None, workers: int | None,
            scheduler: str | None, weights: str | None, splits: tuple[str, ...], overwrite: bool,
            limit: int | None, no_progress: bool, keep_going: bool) -> None:
    """Run TEACHER once over the dataset and cache its time-stamped embeddings.

    Tracks already in the store are skipped, so an interrupted run resumes where it
    stopped. A file that cannot be decoded is reported and skipped; the exit code is 2
    when any track failed. The report is written next to the store as JSON.
    """
    from pipeline.teachers import settings_key
    from stages.extract import run

    overrides = {
        "extract.device": device,
        "extract.batch_seconds": batch_seconds,
        "extract.backend": backend,
        "extract.workers": workers,
        "extract.scheduler": scheduler,
        "extract.splits": list(splits) or None,
        f"teachers.{settings_key(teacher)}.weights": str(Path(weights).resolve()) if weights else None,
    }
    params = load_params_from(ctx, overrides)
    report = run(params, teacher=teacher, manifests=manifests, audio_root=audio_root, store=store,
                 overwrite=overwrite, limit=limit, progress=not no_progress)
    rate = report.audio_seconds / report.wall_seconds if report.wall_seconds else 0.0
    views = (f" + views: {report.views_done} done, {report.views_skipped} already stored"
             if report.views_done or report.views_skipped else "")
    click.echo(
        f"{teacher}: {report.done} done, {report.skipped} already stored{views}, {len(report.failed)} failed; "
        f"{report.audio_seconds / 3600:.2f} h audio in {report.wall_seconds:.1f} s ({rate:.0f} audio-s/s) "
        f"on {report.device} -> {report.store}"
    )
    for note in report.warnings[:5]:
        click.echo(f"  warning: {note['track']} ({note['path']}): {note['warning']}", err=True)
    if len(report.warnings) > 5:
        click.echo(f"  ... and {len(report.warnings) - 5} more warnings in {report.store}-extract-report.json",
                   err=True)
    for failure in report.failed:
        click.echo(f"  failed {failure['track']} ({failure['path']}): {failure['reason']}", err=True)
    if not report.ok and not keep_going:
        ctx.exit(2)
