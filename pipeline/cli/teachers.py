"""``pipeline teachers``: every way to name a teacher, with its settings and whether it is usable here."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import click

from pipeline.cli.formatting import frame_geometry

from pipeline.cli import load_params_from
from pipeline.stores.location import is_url
from pipeline.teachers.base import MEASURED_BF16_ERROR  # torch-free, like the rest of this command
from pipeline.teachers import BUILTINS, TEACHERS, build_teacher, load_plugins, plugin_errors, teacher_settings

#: HEAR modules worth trying when installed (the form takes any module).
KNOWN_HEAR_MODULES = ("hearbaseline.torchcrepe", "hearbaseline.naive", "hear21passt.base", "torchopenl3",
                      "pipeline.hear.musicnn", "pipeline.hear.openl3", "pipeline.hear.vggish", "pipeline.hear.passt",
                      "pipeline.hear.panns")


def _model_row(name: str, kind: str, params: Any, source: str = "") -> dict[str, Any]:
    settings = teacher_settings(params, name)
    row: dict[str, Any] = {"name": name, "kind": kind, "source": source, "settings": settings}
    try:
        teacher = build_teacher(name, settings)
        available = teacher.weights_available()
        row.update(usable=available, dim=teacher.embedding_dim, sample_rate=teacher.sample_rate,
                   hop_seconds=teacher.hop_seconds, window_seconds=teacher.window_seconds,
                   clip_level=teacher.grid is None, precision=teacher.precision,
                   bf16_rel_error=MEASURED_BF16_ERROR.get(name),
                   note="" if available else teacher.weights_hint)
    except Exception as exc:  # noqa: BLE001 - a broken plugin is listed, not fatal
        row.update(usable=False, note=f"{type(exc).__name__}: {exc}")
    return row


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except Exception:  # noqa: BLE001 - a parent package that fails to import: tried (and reported) below
        return True


def _hear_names(params: Any) -> list[str]:
    """``hear:`` teachers to try: the known modules installed here and every one ``params`` names."""
    named = [params.distill.teacher, *params.teachers_enabled, *(ref.name for ref in params.distill.teachers)]
    names = [f"hear:{m}" for m in KNOWN_HEAR_MODULES if _installed(m)]
    return names + [n for n in dict.fromkeys(named) if n and n.startswith("hear:") and n not in names]


def _hear_row(name: str, params: Any) -> dict[str, Any]:
    """A ``hear:`` module, usable only if it loaded and embedded a second of noise here (offline)."""
    from pipeline.errors import PipelineError
    from pipeline.teachers.hear import TRY_SECONDS, HearTeacher, one_line

    row: dict[str, Any] = {"name": name, "kind": "hear", "source": "", "settings": {}}
    try:
        teacher = build_teacher(name, teacher_settings(params, name))
        assert isinstance(teacher, HearTeacher)
        facts = teacher.try_call()
    except PipelineError as exc:
        return {**row, "usable": False, "note": str(exc)}
    except Exception as exc:  # noqa: BLE001 - whatever a module does, the listing goes on
        return {**row, "usable": False, "note": f"{name}: {one_line(exc)}"}
    hop = facts["hop_seconds"]
    row.update(usable=True, dim=facts["dim"], sample_rate=facts["sample_rate"], hop_seconds=hop or 0.0,
               window_seconds=hop or 0.0, clip_level=False, precision="float32",
               note=f"loaded and called on {TRY_SECONDS:g} s of noise: {facts['frames']} frame(s)"
                    + ("" if hop else "; its hop is measured at extraction"))
    return row


def _form_rows(params: Any) -> list[dict[str, Any]]:
    runs_root = Path(params.distill.runs_root)
    runs = sorted(p.parent.name for p in runs_root.glob("*/best.pt") if (p.parent / "config.json").is_file())
    store_root = Path(params.extract.store_root)
    imported = sorted(p.name.removeprefix("imported-") for p in store_root.glob("imported-*")
                      if (p / "teacher.json").is_file()) if not is_url(str(store_root)) else []
    return [
        {"name": "hear:<module>", "kind": "form", "usable": True, "settings": dict(params.teachers.get("hear", {})),
         "note": "any importable HEAR-2021-API module; the known ones installed here are tried below"},
        {"name": "run:<run_dir>", "kind": "form", "usable": bool(runs),
         "settings": dict(params.teachers.get("run", {})),
         "note": f"a run of `pipeline distill`; in {runs_root}: " + (", ".join(runs) or "none yet")},
        {"name": "imported:<label>", "kind": "form", "usable": bool(imported), "settings": {},
         "note": f"a store made by `pipeline store import` (probe/distill only); in {store_root}: "
                 + (", ".join(imported) or "none yet")},
    ]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def teachers(ctx: click.Context, as_json: bool) -> None:
    """List built-in and plugin teachers (weights present or not) and the hear:, run: and imported: forms."""
    params = load_params_from(ctx)
    plugins = load_plugins()
    rows = [_model_row(name, "built-in", params) for name in BUILTINS]
    rows += [_model_row(name, "plugin", params, plugins[name]) for name in TEACHERS.names() if name in plugins]
    rows += [{"name": name, "kind": "plugin", "usable": False, "settings": {}, "note": why}
             for name, why in plugin_errors().items()]
    rows += _form_rows(params)
    rows += [_hear_row(name, params) for name in _hear_names(params)]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for row in rows:
        mark = click.style("usable", fg="green") if row["usable"] else click.style("not usable", fg="yellow")
        if "dim" in row:
            if row["clip_level"]:
                geometry = "clip-level"
            elif not row["hop_seconds"]:
                geometry = "hop measured at extraction"
            else:
                geometry = frame_geometry(row["hop_seconds"], row["window_seconds"])
                asked = row["settings"].get("hop_seconds")
                if isinstance(asked, (int, float)) and abs(asked - row["hop_seconds"]) > 1e-9:
                    geometry += f" (hop_seconds {asked:g} rounded to the model's frame grid)"
            facts = f"{row['dim']}-d @ {row['sample_rate']} Hz, {geometry}"
        else:
            facts = row["kind"]
        origin = f" ({row['kind']}: {row['source']})" if row.get("source") else ""
        click.echo(f"{row['name']:<16} {facts}; {mark}{origin}")
        if row.get("bf16_rel_error") is not None:
            click.echo(f"{'':<17}precision {row['precision']} (bfloat16/float16 opt-in: relative error "
                       f"<= {row['bf16_rel_error']:g} vs float32, tests/test_teacher_precision.py)")
        settings = ", ".join(f"{k}={v}" for k, v in row["settings"].items())
        if settings:
            click.echo(f"{'':<17}settings: {settings}")
        if row.get("note"):
            click.echo(f"{'':<17}{row['note']}")
