"""``pipeline predict``: tag audio files with a trained student."""
from __future__ import annotations

import json

import click
import numpy as np

from pipeline.audio import decode_notes, read_audio
from pipeline.errors import AudioError
from pipeline.runs import load_run, predict_audio


@click.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("audio", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--top", type=click.IntRange(min=1), default=5, help="Tags shown per file.")
@click.option("--json", "as_json", is_flag=True, help="All probabilities as JSON lines.")
def predict(run_dir: str, audio: tuple[str, ...], top: int, as_json: bool) -> None:
    """Print the most likely tags of each AUDIO file using RUN_DIR's student.

    Files longer than the training clips are scored in sliding windows (half overlap)
    whose probabilities are averaged. A file that cannot be read is reported and skipped;
    a file whose predictions mean little (silence, a few samples, stereo channels that cancel,
    float samples beyond +-1 that were scaled) gets a warning.
    """
    run = load_run(run_dir)
    failed = 0
    for path in audio:
        try:
            waveform = read_audio(path, sample_rate=run.sample_rate)
        except AudioError as exc:
            click.echo(f"skipped: {exc}", err=True)
            failed += 1
            continue
        for note in decode_notes(path):
            click.echo(f"warning: {path}: {note}", err=True)
        probs = predict_audio(run, waveform)
        if as_json:
            click.echo(json.dumps({"file": path, "probabilities": dict(zip(run.classes, map(float, probs)))}))
            continue
        order = np.argsort(-probs)[:top]
        tags = ", ".join(f"{run.classes[i]} {probs[i]:.2f}" for i in order)
        click.echo(f"{path}: {tags}")
    if failed:
        raise SystemExit(2)
