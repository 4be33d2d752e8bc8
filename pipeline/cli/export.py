"""``pipeline export``: the student with its front end, for deployment."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.export import FORMATS, export_run
from pipeline.runs import load_run


@click.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output file [default: RUN_DIR/model.onnx or model.ts]")
def export(run_dir: str, fmt: str, out: str | None) -> None:
    """Export RUN_DIR's best student (front end included): waveform in, probabilities out."""
    run = load_run(run_dir)
    target = Path(out) if out else Path(run_dir) / ("model.onnx" if fmt == "onnx" else "model.ts")
    path = export_run(run, target, fmt=fmt)
    samples = int(run.clip_seconds * run.sample_rate)
    click.echo(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): input (batch, {samples}) float32 "
               f"at {run.sample_rate} Hz, output (batch, {len(run.classes)})")
