"""``pipeline predict``: tag audio files with a trained student (and, with ``--timeline``, over time)."""
from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from pipeline.audio import decode_audio, find_audio
from pipeline.errors import AudioError
from pipeline.students.trained import LoadedRun, WindowScores, load_run, score_windows


@click.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.argument("audio", nargs=-1, required=True)
@click.option("--top", type=click.IntRange(min=1), default=5, help="Tags shown per file.")
@click.option("--json", "as_json", is_flag=True, help="All probabilities as JSON lines.")
@click.option("--timeline", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write, per file, every window's start/end time and probabilities "
                   "(OUTDIR/<name>.csv and .jsonl) and a class-by-time heat map (OUTDIR/<name>.png).")
def predict(run_dir: str, audio: tuple[str, ...], top: int, as_json: bool, timeline: Path | None) -> None:
    """Print the most likely tags of each AUDIO file using RUN_DIR's student.

    AUDIO is any mix of files, folders (their audio files, recursively) and glob patterns
    (quoted, `**` recursive). Files longer than the training clips are scored in sliding windows
    (half overlap) whose probabilities are averaged. A path that cannot be used (missing, a
    dangling link, unreadable, not audio) is reported in one line and skipped, and the command
    exits 2; it exits 1 only when no file could be tagged. A file whose predictions mean little
    (silence, a few samples, stereo channels that cancel, float samples beyond +-1 that were
    scaled) gets a warning.
    """
    run = load_run(run_dir)
    files, unusable = find_audio(audio)
    for path, reason in unusable:
        click.echo(f"skipped: {path}: {reason}", err=True)
    names: set[str] = set()
    tagged = sum(_tag(run, path, top=top, as_json=as_json, timeline=timeline, names=names) for path in files)
    skipped = len(unusable) + len(files) - tagged
    if timeline is not None and names:
        click.echo(f"wrote timelines of {len(names)} file(s) to {timeline} (<name>.csv, .jsonl, .png)", err=True)
    if not tagged:
        raise click.ClickException(
            f"none of the {len(audio)} path(s) given holds audio that can be tagged ({skipped} skipped, each "
            "named above); pass audio files, folders or quoted glob patterns")
    if skipped:
        raise SystemExit(2)


def _tag(run: LoadedRun, path: Path, *, top: int, as_json: bool, timeline: Path | None, names: set[str]) -> bool:
    """Print the tags of one file (and write its timeline); False (with one line on stderr) when it cannot be read."""
    try:
        decoded = decode_audio(path, sample_rate=run.sample_rate)
    except AudioError as exc:
        click.echo(f"skipped: {exc}", err=True)
        return False
    waveform = decoded.samples
    for note in decoded.notes:
        click.echo(f"warning: {path}: {note}", err=True)
    scores = score_windows(run, waveform)
    probs = scores.clip
    if timeline is not None:
        _write_timeline(run, scores, len(waveform), str(path), timeline, names)
    if as_json:
        click.echo(json.dumps({"file": str(path), "probabilities": dict(zip(run.classes, map(float, probs)))}))
        return True
    order = np.argsort(-probs)[:top]
    tags = ", ".join(f"{run.classes[i]} {probs[i]:.2f}" for i in order)
    click.echo(f"{path}: {tags}")
    return True


def _write_timeline(run: LoadedRun, scores: WindowScores, n_samples: int, path: str, out_dir: Path,
                    used: set[str]) -> None:
    """Write one file's timeline under a name not used yet in this call (``song``, ``song-2``, ...)."""
    from pipeline.timeline import make_timeline, write_timeline

    stem, name, k = Path(path).stem, Path(path).stem, 1
    while name in used:
        k += 1
        name = f"{stem}-{k}"
    used.add(name)
    found = make_timeline(scores.starts, scores.length, n_samples, run.sample_rate, scores.probabilities, run.classes)
    seconds = scores.length / run.sample_rate
    write_timeline(found, out_dir, name, title=f"{Path(path).name}: {run.path.name}, {seconds:g}-s windows")
