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
    "store": ("store", "store", "Inspect, verify, convert or export an embedding store."),
    "probe": ("probe", "probe", "Train the linear probe on a teacher's pooled embeddings (reference + KD)."),
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
@click.option("-v", "--verbose", count=True,
              help="More log output (-v info, -vv debug), third-party libraries' too; a good run is quiet without it.")
@click.version_option(__version__, prog_name="pipeline")
@click.pass_context
def cli(ctx: click.Context, params_path: Path, verbose: int) -> None:
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


def load_params_from(ctx: click.Context, overrides: dict[str, Any] | None = None) -> Params:
    """The :class:`~pipeline.config.Params` of the root ``--params`` file with ``overrides``.

    Fixed choices are checked by :func:`~pipeline.config.load_params` (``Literal`` fields); the
    teacher names, an open family, against the teacher registry here, before any work starts.

    Raises:
        ConfigError: a bad key or value, naming it and the valid ones.
    """
    from pipeline.config import load_params
    from pipeline.teachers import check_teacher_names

    params = load_params(ctx.obj["params_path"], overrides)
    check_teacher_names(params)
    return params


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors print one line (no traceback) and exit 1."""
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
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    # Without standalone mode click returns the code of ``ctx.exit(code)`` instead of exiting.
    if isinstance(code, int) and code:
        sys.exit(code)
