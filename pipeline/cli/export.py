"""``pipeline export``: the student with its front end and sliding windows, for deployment."""
from __future__ import annotations

from pathlib import Path

import click

from pipeline.errors import ConfigError
from pipeline.export import FORMATS, Exported, default_export_path, export_run
from pipeline.students.trained import LoadedRun, load_run

QUANTIZE = ("int8",)
QUANTIZE_METHODS = ("static", "dynamic")  # pipeline.quantize.METHODS, without importing onnxruntime here
VALIDATION_CLIPS = 200  # scored by float32 and int8 after quantising (the demo's whole valid split)


@click.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="onnx")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Output file [default: exports/<run folder name>/model.onnx or model.ts, "
                   "outside the DVC-tracked run folder]")
@click.option("--quantize", type=click.Choice(QUANTIZE), default=None,
              help="Also write an int8 ONNX file beside the float32 one (<out stem>.int8.onnx).")
@click.option("--quantize-method", type=click.Choice(QUANTIZE_METHODS), default="static",
              help="static: activation ranges calibrated on training clips; dynamic: ranges per call.")
@click.option("--calibration-clips", type=click.IntRange(min=1), default=32,
              help="Training clips for static calibration (the first of the run's train split).")
def export(run_dir: str, fmt: str, out: str | None, quantize: str | None, quantize_method: str,
           calibration_clips: int) -> None:
    """Export RUN_DIR's best student as a clip tagger: a mono waveform of any length in, the
    probabilities `pipeline predict` prints out (zero-padding, sliding windows and their mean
    are inside the graph). The file carries the class names, sample rate and the run's provenance.
    """
    if quantize and fmt != "onnx":
        raise ConfigError(f"--quantize {quantize} needs --format onnx (onnxruntime quantises ONNX graphs)")
    run = load_run(run_dir)
    target = Path(out) if out else default_export_path(run, fmt)
    exported = export_run(run, target, fmt=fmt)
    size = exported.path.stat().st_size / 1e6
    click.echo(f"wrote {exported.path} ({size:.2f} MB): input (batch, samples) float32 mono, any length, "
               f"at {run.sample_rate} Hz; output (batch, {len(run.classes)}) probabilities")
    if quantize:
        click.echo(_write_int8(run, exported, quantize_method, calibration_clips))


def _write_int8(run: LoadedRun, exported: Exported, method: str, calibration_clips: int) -> str:
    """Quantise ``exported``; returns the line saying where, how big and how close to float32."""
    from pipeline.quantize import compare, quantize_int8, run_clips

    calibration = run_clips(run.config, "train", calibration_clips, run.sample_rate).audio if method == "static" else []
    target = exported.path.with_name(exported.path.name.removesuffix(".onnx") + ".int8.onnx")
    quantize_int8(exported.path, target, method=method, calibration=calibration)
    sizes = target.stat().st_size / 1e6, exported.path.stat().st_size / 1e6
    line = f"wrote {target} ({sizes[0]:.2f} MB int8 {method} vs {sizes[1]:.2f} MB float32)"
    held_out = run_clips(run.config, "valid", VALIDATION_CLIPS, run.sample_rate)
    if not held_out.audio:
        return line + "; no validation clips here to compare it on"
    found = compare(exported.path, target, held_out)
    maps = ("" if found.float_map is None or found.int8_map is None else
            f"valid mAP {found.int8_map:.4f} vs {found.float_map:.4f} ({found.int8_map - found.float_map:+.4f}), ")
    return (f"{line}; on {found.clips} validation clips: {maps}|int8 - float32| max {found.max_abs_diff:.4f}, "
            f"mean {found.mean_abs_diff:.4f}; 1 CPU thread {found.int8_ms:.1f} vs {found.float_ms:.1f} ms "
            f"per clip ({found.speedup:.2f}x)")
