"""The ``pipeline`` console command: a root click group with lazily imported subcommands.

Each subcommand lives in its own module under ``pipeline.cli`` and only parses options
before calling a function in ``stages``. Subcommands are imported on first use, so
``pipeline --help`` never imports torch, TensorFlow or dask.
"""
from __future__ import annotations

import importlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from pipeline import __version__
from pipeline.allocator import tune_allocator
from pipeline.errors import PipelineError, TrainingInterrupted

if TYPE_CHECKING:
    from pipeline.config import Params

#: command name -> (module under pipeline.cli, attribute, one-line help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "prepare": ("prepare", "prepare", "Build manifests for a dataset (demo render, folder, OpenMIC, MagnaTagATune)."),
    "teachers": ("teachers", "teachers", "List the teachers, their settings and whether their weights are here."),
    "extract": ("extract", "extract", "Stage one: run a teacher over a dataset into an embedding store."),
    "store": ("store", "store", "Inspect, verify, convert, export or import an embedding store."),
    "probe": ("probe", "probe", "Train the linear probe on a teacher's pooled embeddings (reference + KD)."),
    "triage": ("triage", "triage", "Which teacher to distil from: probe mAP, dependence on teachers and a student."),
    "distill": ("distill", "distill", "Stage two: train a student, optionally regularised by a teacher."),
    "evaluate": ("evaluate", "evaluate", "Score a trained run on a split: mAP, ROC-AUC, F1, per class."),
    "predict": ("predict", "predict", "Tag audio files with a trained student."),
    "export": ("export", "export", "Export a trained student with its front end (ONNX, TorchScript)."),
    "report": ("report", "report", "Write the Markdown report with tables and plots of all runs."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is run."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _help = COMMANDS[cmd_name]
        module = importlib.import_module(f"pipeline.cli.{module_name}")
        return getattr(module, attr)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TrainingInterrupted:  # not a user error: main() reports it and exits 128 + the signal
            raise
        except PipelineError as exc:  # user errors: one line, no traceback, exit 1
            raise click.ClickException(str(exc)) from exc

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, help_text) for name, (_m, _a, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--params",
    "params_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("params.yaml"),
    show_default=True,
    help="Parameter file; every option not given on the command line is read from it.",
)
@click.option("-S", "--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override one params.yaml setting for this command, as `dvc exp run -S` does "
                   "(`-S teachers.hear.mode=clip`; VALUE is YAML). Flags of the command win over it.")
@click.option("-v", "--verbose", count=True,
              help="More log output (-v info, -vv debug), third-party libraries' too; a good run is quiet without it.")
@click.version_option(__version__, prog_name="pipeline")
@click.pass_context
def cli(ctx: click.Context, params_path: Path, settings: tuple[str, ...], verbose: int) -> None:
    """EAsT pipeline: pretrained audio embeddings as teachers for small music classifiers.

    \b
    Typical run on the bundled demo data:
      pipeline prepare demo          # render the demo set and write manifests
      pipeline extract --teacher musicnn
      pipeline probe --teacher musicnn
      pipeline distill --variant east-kd
      pipeline evaluate runs/<run>
    or simply `dvc repro`, which runs all stages named in dvc.yaml.
    """
    from pipeline.logs import configure

    configure(verbose)
    ctx.ensure_object(dict)
    ctx.obj["params_path"] = params_path
    ctx.obj["settings"] = parse_settings(settings)


def parse_settings(settings: tuple[str, ...]) -> dict[str, Any]:
    """``("a.b=1", "c=[x, y]")`` -> ``{"a.b": 1, "c": ["x", "y"]}`` (values parsed as YAML).

    Raises:
        click.BadParameter: an item without ``=`` or with a value that is not YAML.
    """
    import yaml

    out: dict[str, Any] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE (e.g. -S distill.epochs=3)", param_hint="-S")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise click.BadParameter(f"{item!r}: the value is not YAML ({exc.__class__.__name__})",
                                     param_hint="-S") from exc
    return out


def load_params_from(ctx: click.Context, overrides: dict[str, Any] | None = None) -> Params:
    """The :class:`~pipeline.config.Params` of the root ``--params`` file with ``overrides``.

    Fixed choices are checked by :func:`~pipeline.config.load_params` (``Literal`` fields); the
    teacher names, an open family, against the teacher registry here, before any work starts.

    Raises:
        ConfigError: a bad key or value, naming it and the valid ones.
    """
    from pipeline.config import load_params
    from pipeline.teachers import check_teacher_names

    merged = {**ctx.obj.get("settings", {}), **{k: v for k, v in (overrides or {}).items() if v is not None}}
    params = load_params(ctx.obj["params_path"], merged)
    check_teacher_names(params)
    return params


#: Exit codes of every command, as the README documents them.
EXIT_OK, EXIT_USER_ERROR, EXIT_SKIPPED, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


def usage_error_line(exc: click.UsageError) -> str:
    """One line for a usage error (a missing path, a bad option value): what and where to look.

    Click's own form is three lines with the usage text; every user error here is one line.
    """
    ctx = exc.ctx
    where = ctx.command_path if ctx is not None else "pipeline"
    message = " ".join(exc.format_message().split())  # click lists choices on several lines
    return f"error: {where}: {message} (see '{where} --help')"


def unexpected_error_line(exc: BaseException) -> str:
    """One line for an exception the pipeline did not raise on purpose: the OS error with its path, or the type."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" on {exc.filename}" if exc.filename else ""
        return (f"{exc.strerror} ({type(exc).__name__} errno {exc.errno}){where}; nothing after this point was "
                "written; fix the cause and run the same command again (`pipeline -v ...` shows the traceback)")
    return (f"{type(exc).__name__}: {exc}; run the same command with `pipeline -v ...` for the traceback, and "
            "report it if the cause is not yours")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one line (no traceback) and exit 1.

    Exit codes: 0 done; 1 a user error or fault (one line on stderr); 2 done, but some inputs
    were skipped (listed); 130 Ctrl-C; 143 SIGTERM (the state is kept; the same command resumes).
    """
    tune_allocator()
    try:
        code = cli.main(args=argv, prog_name="pipeline", standalone_mode=False)
    except TrainingInterrupted as exc:  # Ctrl-C, SIGTERM, SIGHUP: the state is saved, the same command resumes
        click.echo(f"interrupted: {exc}", err=True)
        sys.exit(128 + exc.signum)
    except PipelineError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except click.exceptions.Abort as exc:  # Ctrl-C (130) or SIGTERM during extraction (143)
        from pipeline.interrupts import Terminated

        click.echo("aborted", err=True)
        sys.exit(128 + signal.SIGTERM if isinstance(exc.__cause__, Terminated) else 130)
    except click.UsageError as exc:  # click's usage errors (exit 2 there) are user errors here
        click.secho(usage_error_line(exc), fg="red", err=True)
        sys.exit(EXIT_USER_ERROR)
    except click.ClickException as exc:
        click.secho(f"error: {exc.format_message()}", fg="red", err=True)
        sys.exit(EXIT_USER_ERROR if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a fault nobody foresaw: still one line; -v shows the traceback
        from pipeline.logs import verbose

        if verbose():
            raise
        click.secho(f"error: {unexpected_error_line(exc)}", fg="red", err=True)
        sys.exit(EXIT_USER_ERROR)
    # Without standalone mode click returns the code of ``ctx.exit(code)`` instead of exiting.
    if isinstance(code, int) and code:
        sys.exit(code)
