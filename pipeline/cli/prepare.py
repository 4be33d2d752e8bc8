"""``pipeline prepare``: build manifests for the demo set, a folder, OpenMIC-2018 or MagnaTagATune."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from pipeline.cli import load_params_from

_PATH_HELP = ("[default: data.manifests of params.yaml when data.dataset is '{name}', "
              "else data_manifests/{name}]")


def _finish(ctx: click.Context, params: Any, report: Any, builder: str) -> None:
    click.echo(report.summary())
    if report.dry_run:
        return
    data = params.data
    if (data.dataset, str(Path(data.manifests)), str(Path(data.audio_root))) != (
            builder, str(Path(report.manifests_dir)), str(Path(report.audio_root))):
        click.echo(
            "to use these manifests in the later stages, set in params.yaml:\n"
            f"  data: {{dataset: {builder}, audio_root: {report.audio_root}, "
            f"manifests: {report.manifests_dir}}}"
        )


def _run(ctx: click.Context, builder: str, overrides: dict[str, Any], **options: Any) -> None:
    from stages.prepare import run

    params = load_params_from(ctx, overrides)
    report = run(params, builder=builder, **options)
    _finish(ctx, params, report, builder)


def _common(name: str):  # noqa: ANN202 - a click decorator stack
    """The options every builder has: --manifests/--out and --dry-run."""

    def decorate(func):  # noqa: ANN001, ANN202
        func = click.option("--dry-run", is_flag=True, help="Check and plan everything, write nothing.")(func)
        return click.option(
            "--manifests", "--out", "manifests", type=click.Path(file_okay=False), default=None,
            help="Output folder for {train,valid,test}.jsonl, classes.json, report.json. "
            + _PATH_HELP.format(name=name),
        )(func)

    return decorate


@click.group(context_settings={"show_default": True}, invoke_without_command=True)
@click.option("--dry-run", is_flag=True, help="Check and plan everything, write nothing.")
@click.pass_context
def prepare(ctx: click.Context, dry_run: bool) -> None:
    """Build manifests: {train,valid,test}.jsonl + classes.json + report.json.

    Without a subcommand, builds the dataset that data.dataset of params.yaml names, with the
    options in data.* (what `dvc repro` runs; the demo then reads the audio its render stage
    wrote). Clips whose audio is missing or unreadable are left out and listed in
    report.json (and summarised here); nothing is dropped silently.
    """
    if ctx.invoked_subcommand is not None:
        return
    from stages.prepare import run

    params = load_params_from(ctx)
    report = run(params, dry_run=dry_run)
    _finish(ctx, params, report, params.data.dataset)


@prepare.command(context_settings={"show_default": True})
@click.option("--n-train", type=click.IntRange(min=0), default=None,
              help="Train clips [default: demo.n_train, 600]")
@click.option("--n-valid", type=click.IntRange(min=0), default=None,
              help="Valid clips [default: demo.n_valid, 150]")
@click.option("--n-test", type=click.IntRange(min=0), default=None,
              help="Test clips [default: demo.n_test, 300]")
@click.option("--seed", type=int, default=None, help="Render seed [default: demo.seed, 0]")
@click.option("--clip-seconds", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Clip length in s [default: demo.clip_seconds, 5.0]")
@click.option("--sample-rate", type=click.IntRange(min=4000), default=None,
              help="Render rate in Hz [default: demo.sample_rate, 16000]")
@click.option("--min-instruments", type=click.IntRange(min=1), default=None,
              help="Fewest instruments per clip [default: demo.min_instruments, 1]")
@click.option("--max-instruments", type=click.IntRange(min=1), default=None,
              help="Most instruments per clip [default: demo.max_instruments, 4]")
@click.option("--unknown-fraction", type=click.FloatRange(0, 1, max_open=True), default=None,
              help="Share of labels marked unknown [default: demo.unknown_fraction, 0.25]")
@click.option("--n-unlabeled", type=click.IntRange(min=0), default=None,
              help="Extra train clips with every label unknown [default: demo.n_unlabeled, 0]")
@click.option("--audio-root", type=click.Path(file_okay=False), default=None,
              help="Folder for the FLAC files "
                   "[default: data.audio_root when data.dataset is 'demo', else data/demo]")
@_common("demo")
@click.option("--workers", type=click.IntRange(min=1), default=2, help="Render processes.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@click.option("--audio-only", is_flag=True,
              help="Only render the audio and labels.csv (dvc repro's render stage); no manifests.")
@click.pass_context
def demo(ctx: click.Context, n_train: int | None, n_valid: int | None, n_test: int | None, seed: int | None,
         clip_seconds: float | None, sample_rate: int | None, min_instruments: int | None,
         max_instruments: int | None, unknown_fraction: float | None, n_unlabeled: int | None,
         audio_root: str | None,
         manifests: str | None, dry_run: bool, workers: int, progress: bool, audio_only: bool) -> None:
    """Render the demo set: OpenMIC-style multi-instrument clips from a GM SoundFont.

    Sizes and seed come from the `demo` section of params.yaml; flags override them. The
    same seed gives byte-identical FLAC files and identical manifests.
    """
    overrides = {"demo.n_train": n_train, "demo.n_valid": n_valid, "demo.n_test": n_test, "demo.seed": seed,
                 "demo.clip_seconds": clip_seconds, "demo.sample_rate": sample_rate,
                 "demo.min_instruments": min_instruments, "demo.max_instruments": max_instruments,
                 "demo.unknown_fraction": unknown_fraction, "demo.n_unlabeled": n_unlabeled}
    if audio_only:
        import time

        from stages.prepare import render

        started = time.perf_counter()
        line = render(load_params_from(ctx, overrides), audio_root=audio_root, workers=workers, progress=progress)
        click.echo(f"{line} in {time.perf_counter() - started:.1f} s")
        return
    _run(ctx, "demo", overrides, audio_root=audio_root, manifests_dir=manifests, workers=workers,
         progress=progress, dry_run=dry_run)


def _fractions(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not three comma-separated numbers") from None
    if len(parts) != 3:
        raise click.BadParameter(f"{value!r} must be three numbers: train,valid,test")
    return parts  # type: ignore[return-value]


@prepare.command(context_settings={"show_default": True})
@click.option("--audio", "--root", "root", type=click.Path(file_okay=False, exists=True), required=True,
              help="Audio folder; the CSV's paths are relative to it, ids are searched below it.")
@click.option("--labels", "labels_csv", type=click.Path(dir_okay=False, exists=True), required=True,
              help="CSV with a file column (path) or an id column (id, sample_key, clip_id, ...: the file "
                   "<id>.<ext> anywhere below --audio), and a 'tags' column (';', '|' or ',' separated) "
                   "and/or one column per class (1/0/empty=unknown); optional 'split' column.")
@click.option("--classes", default=None, help="Comma-separated class names and order [default: from the CSV]")
@click.option("--fractions", default="0.7,0.15,0.15", callback=_fractions,
              help="train,valid,test shares of the random split (used without a split column).")
@click.option("--seed", type=int, default=0, help="Random split seed.")
@click.option("--threads", type=click.IntRange(min=1), default=4, help="Concurrent audio header reads.")
@click.option("--unlabeled", "unlabeled", multiple=True, type=click.Path(file_okay=False),
              help="Folder inside --audio whose audio files (recursively) all join train as unlabeled clips "
                   "(teacher terms only); repeatable.")
@_common("folder")
@click.pass_context
def folder(ctx: click.Context, root: str, labels_csv: str, classes: str | None,
           fractions: tuple[float, float, float], seed: int, threads: int, unlabeled: tuple[str, ...],
           manifests: str | None, dry_run: bool) -> None:
    """Your own folder of audio files plus a CSV of labels (and unlabeled audio, optionally)."""
    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    _run(ctx, "folder", {}, root=root, labels_csv=labels_csv, classes=names, fractions=fractions, seed=seed,
         threads=threads, unlabeled=list(unlabeled), manifests_dir=manifests, dry_run=dry_run)


@prepare.command(context_settings={"show_default": True})
@click.option("--root", type=click.Path(file_okay=False, exists=True), required=True,
              help="The unpacked OpenMIC-2018 folder "
                   "(openmic-2018.npz, class-map.json, audio/, partitions/).")
@click.option("--split-dir", type=click.Path(file_okay=False), default=None,
              help="Folder with split01_train.csv and split01_test.csv [default: <root>/partitions, "
                   "else the committed data_manifests/openmic/splits]")
@click.option("--label-rule", type=click.Choice(["mask", "paper"]), default="mask",
              help="mask: known where Y_mask (and Y_true != 0.5); paper: the EAsT code's rule, unknown "
                   "exactly where Y_true == 0.5.")
@click.option("--valid-fraction", type=click.FloatRange(0, 1), default=0.15,
              help="Share of train drawn into valid (paper: 0.15).")
@click.option("--valid-seed", type=int, default=2022,
              help="Python random seed of the validation draw (paper: 2022).")
@click.option("--allow-pickle", is_flag=True,
              help="Let numpy unpickle openmic-2018.npz (only for a trusted file).")
@click.option("--threads", type=click.IntRange(min=1), default=4, help="Concurrent audio header reads.")
@_common("openmic")
@click.pass_context
def openmic(ctx: click.Context, root: str, split_dir: str | None, label_rule: str, valid_fraction: float,
            valid_seed: int, allow_pickle: bool, threads: int, manifests: str | None, dry_run: bool) -> None:
    """OpenMIC-2018 from its official layout, with the paper's split and validation draw."""
    _run(ctx, "openmic", {}, root=root, split_dir=split_dir, label_rule=label_rule,
         valid_fraction=valid_fraction, valid_seed=valid_seed, allow_pickle=allow_pickle, threads=threads,
         manifests_dir=manifests, dry_run=dry_run)


@prepare.command(context_settings={"show_default": True})
@click.option("--root", type=click.Path(file_okay=False, exists=True), required=True,
              help="The MagnaTagATune folder holding annotations_final.csv.")
@click.option("--split-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of the clean split lists: {train,valid,test}.{txt,csv,npy} or *_list_pub.cP "
                   "[default: data_manifests/magnatagatune/splits, <root>/split, <root>/splits]")
@click.option("--audio-dir", default=None,
              help="mp3 folder relative to --root [default: mp3 if present, else .]")
@click.option("--n-tags", type=click.IntRange(min=1), default=50, help="Most frequent tags kept as classes.")
@click.option("--random-split", is_flag=True,
              help="Without split lists, make a seeded 70/15/15 split (not the paper's split).")
@click.option("--seed", type=int, default=2022, help="Random split seed.")
@click.option("--threads", type=click.IntRange(min=1), default=4, help="Concurrent audio header reads.")
@_common("magnatagatune")
@click.pass_context
def magnatagatune(ctx: click.Context, root: str, split_dir: str | None, audio_dir: str | None, n_tags: int,
                  random_split: bool, seed: int, threads: int, manifests: str | None, dry_run: bool) -> None:
    """MagnaTagATune: top-50 tags, the standard clean split."""
    _run(ctx, "magnatagatune", {}, root=root, split_dir=split_dir, audio_dir=audio_dir, n_tags=n_tags,
         random_split=random_split, seed=seed, threads=threads, manifests_dir=manifests, dry_run=dry_run)
