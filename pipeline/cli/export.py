"""``pipeline export``: the student with its front end and sliding windows, for deployment."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.export import FORMATS, default_export_path, export_run
from pipeline.runs import load_run


@click.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output file [default: exports/<run folder name>/model.onnx or model.ts, "
                   "outside the DVC-tracked run folder]")
def export(run_dir: str, fmt: str, out: str | None) -> None:
    """Export RUN_DIR's best student as a clip tagger: a mono waveform of any length in, the
    probabilities `pipeline predict` prints out (zero-padding, sliding windows and their mean
    are inside the graph). The file carries the class names, sample rate and the run's provenance.
    """
    run = load_run(run_dir)
    target = Path(out) if out else default_export_path(run, fmt)
    exported = export_run(run, target, fmt=fmt)
    size = exported.path.stat().st_size / 1e6
    click.echo(f"wrote {exported.path} ({size:.2f} MB): input (batch, samples) float32 mono, any length, "
               f"at {run.sample_rate} Hz; output (batch, {len(run.classes)}) probabilities")
