"""``pipeline teachers``: what teachers exist, their settings, and whether their weights are here."""
from __future__ import annotations

import json
from typing import Any

import click

from pipeline.cli import load_params_from
from pipeline.teachers import TEACHERS, build_teacher


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def teachers(ctx: click.Context, as_json: bool) -> None:
    """List every registered teacher with its params.yaml settings, geometry and weights status."""
    from pipeline.teachers.base import MEASURED_BF16_ERROR  # torch-free, like the rest of this command

    params = load_params_from(ctx)
    rows: list[dict[str, Any]] = []
    for name in TEACHERS.names():
        settings = dict(params.teachers.get(name, {}))
        teacher = build_teacher(name, settings)
        available = teacher.weights_available()
        rows.append({
            "name": name,
            "weights": "present" if available else "missing",
            "sample_rate": teacher.sample_rate,
            "dim": teacher.embedding_dim,
            "hop_seconds": teacher.hop_seconds,
            "window_seconds": teacher.window_seconds,
            "clip_level": teacher.grid is None,
            "precision": teacher.precision,
            "bf16_rel_error": MEASURED_BF16_ERROR.get(name),
            "settings": settings,
            "hint": "" if available else teacher.weights_hint,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        geometry = ("clip-level" if row["clip_level"]
                    else f"hop {row['hop_seconds']:.3g} s, window {row['window_seconds']:.3g} s")
        present = row["weights"] == "present"
        mark = click.style("present", fg="green") if present else click.style("missing", fg="yellow")
        click.echo(f"{row['name']:<8} {row['dim']:>5}-d @ {row['sample_rate']} Hz, {geometry}; weights {mark}")
        if row["bf16_rel_error"] is not None:
            click.echo(f"         precision {row['precision']} (bfloat16/float16 opt-in: relative error "
                       f"<= {row['bf16_rel_error']:g} vs float32, tests/test_teacher_precision.py)")
        listed = ", ".join(f"{k}={v}" for k, v in row["settings"].items())
        if listed:
            click.echo(f"         settings: {listed}")
        if row["hint"]:
            click.echo(f"         get them: {row['hint']}")
