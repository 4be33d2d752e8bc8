"""``pipeline store``: inspect, verify, export, convert, upgrade or compact an embedding store."""
from __future__ import annotations

import json
from pathlib import Path

import click

from pipeline.cli.formatting import frame_geometry
from pipeline.config import BACKENDS, FRAME_DTYPES
from pipeline.errors import StoreError
from pipeline.stores import convert_store, export_store, open_store
from pipeline.stores.convert import EXPORT_FORMATS
from pipeline.stores.spec import COMPRESSIONS
from pipeline.stores.verify import VerifyReport
from pipeline.views import VIEWS_FILE, parse_view_track, verify_views


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def store_info(path: str) -> dict:
    """The facts ``pipeline store info`` prints, as a JSON-able mapping."""
    store = open_store(path)
    spec = store.spec
    parts = store.parts()
    frames, seconds = store.index.totals()
    files, size = store.disk_usage()
    return {
        "path": str(store.path),
        "kind": spec.kind,
        "teacher": spec.teacher,
        "settings": spec.config,
        "weights_sha256": spec.weights_sha256,
        "backend": store.backend,
        "chunk_frames": store.layout.chunk_frames,
        "compression": store.layout.compression,
        "dim": spec.dim,
        "dtype": spec.dtype,
        "sample_rate": spec.sample_rate,
        "hop_seconds": spec.hop_seconds,
        "window_seconds": spec.window_seconds,
        "frame0_center_seconds": spec.frame0_center_seconds,
        "clip_level": spec.clip_level,
        "tracks": len(store),
        "parts": len(parts),
        "frames": frames,
        "files": files,
        "bytes_on_disk": size,
        "bytes_raw_float32": frames * spec.dim * 4,
        "audio_hours": seconds / 3600.0,
        "versions": spec.versions,
    }


@click.group("store")
def store() -> None:
    """Inspect, verify, convert, export, upgrade or compact an embedding store (a folder, or an fsspec URL)."""


@store.command("info")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON.")
def info(path: str, as_json: bool) -> None:
    """Teacher, settings, geometry, size and track count of the store at PATH."""
    facts = store_info(path)
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    settings = ", ".join(f"{k}={v}" for k, v in sorted(facts["settings"].items())) or "-"
    if facts["clip_level"]:
        geometry = "one frame per clip"
    else:
        geometry = (
            f"{frame_geometry(facts['hop_seconds'], facts['window_seconds'])}, "
            f"frame 0 at {facts['frame0_center_seconds']:.6g} s"
        )
    raw = facts["bytes_raw_float32"]
    ratio = f" ({facts['bytes_on_disk'] / raw:.2f}x)" if raw else ""
    rows = [
        ("store", f"{facts['path']} ({facts['backend']}, {facts['chunk_frames']} frames per chunk, "
                  f"compression {facts['compression']})"),
        ("teacher", f"{facts['teacher']} ({facts['kind']})"),
        ("settings", settings),
        ("weights", f"sha256 {facts['weights_sha256'] or '-'}"),
        ("frames", f"dim {facts['dim']}, {facts['dtype']}, {facts['sample_rate']} Hz, {geometry}"),
        ("tracks", f"{facts['tracks']} in {facts['parts']} parts, {facts['frames']} frames, "
                   f"{facts['audio_hours']:.3f} h of audio"),
        ("disk", f"{facts['files']} files, {_size(facts['bytes_on_disk'])} on disk vs {_size(raw)} "
                 f"raw float32{ratio}"),
    ]
    for key, value in rows:
        click.echo(f"{key:<9} {value}")


@store.command("verify")
@click.argument("path")
@click.option("--no-checksums", is_flag=True, help="Only check index <-> data consistency (no frame reads).")
def verify(path: str, no_checksums: bool) -> None:
    """Recompute checksums and check index <-> data consistency of the store at PATH, of its audio
    cache (PATH/audio) and of its augmented views (PATH/views.json); exit 1 listing the problems."""
    opened = open_store(path)
    reports = opened.verify_with_audio_cache(checksums=not no_checksums)
    if opened.location.exists(VIEWS_FILE):  # a store with augmented views: their parameters are checked too
        view_problems, view_notes = verify_views(opened)
        views = len([t for t in opened.track_ids() if parse_view_track(t)])
        reports.append(VerifyReport(store=f"{opened.path}/{VIEWS_FILE}", tracks=views, problems=view_problems,
                                    notes=view_notes))
    for report in reports:
        where = "" if report is reports[0] else f"{report.store}: "
        for note in report.notes:
            click.echo(f"note: {where}{note}")
        for problem in report.problems:
            click.echo(f"problem: {where}{problem}")
    bad = [report for report in reports if not report.ok]
    if bad:  # a PipelineError: one error line and exit status 1, also under `pipeline` itself
        summaries = "; ".join(report.summary() for report in bad)
        raise StoreError(f"{summaries}; re-extract the named tracks (or restore the parts) and verify again")
    for report in reports:
        click.echo(report.summary())


@store.command("export")
@click.argument("path")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True,
              help="npy: one <track>.npy per track (HEAR / official EAsT layout); "
                   "memmap: one raw .npy per part + index (fast training reads).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Destination folder.")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default=None,
              help="npy only: cast frames (default: the stored dtype; an 8-bit store gives float32).")
def export(path: str, fmt: str, out: str, dtype: str | None) -> None:
    """Export the store at PATH as per-track .npy files or a memory-mappable store."""
    source = open_store(path)
    dest = export_store(source, out, format=fmt, dtype=dtype)
    click.echo(f"exported {len(source)} tracks of {source.path} as {fmt} to {dest}")


@store.command("convert")
@click.argument("path")
@click.option("--backend", type=click.Choice(BACKENDS), required=True, help="Backend of the copy.")
@click.option(
    "--out", "out", type=click.Path(file_okay=False), required=True, help="Folder of the new store."
)
@click.option("--overwrite", is_flag=True, help="Replace an existing store at --out.")
@click.option("--dtype", type=click.Choice(FRAME_DTYPES), default=None,
              help="Stored dtype of the copy; uint8 quantises each part with its per-dimension range "
                   "[default: the source's]")
@click.option("--compression", type=click.Choice(COMPRESSIONS), default=None,
              help="zstd: compress each zarr chunk (hdf5: gzip) [default: the source's]")
def convert(path: str, backend: str, out: str, overwrite: bool, dtype: str | None, compression: str | None) -> None:
    """Copy the store at PATH into a new store with another backend, dtype or compression (parts kept)."""
    source = open_store(path)
    target = convert_store(source, out, backend=backend, overwrite=overwrite, dtype=dtype, compression=compression)
    click.echo(
        f"converted {len(target)} tracks of {source.path} ({source.backend}, {source.spec.dtype}, "
        f"{source.layout.compression}) to {target.path} ({backend}, {target.spec.dtype}, {target.layout.compression})"
    )


@store.command("upgrade")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
def upgrade(path: str) -> None:
    """Rewrite the index of the local store at PATH in the current compact format (frames untouched)."""
    from pipeline.stores.upgrade import upgrade_store

    click.echo(upgrade_store(path).summary())


@store.command("compact")
@click.argument("url")
@click.option("--dead-after", type=click.FloatRange(min=0.0), default=24.0, show_default=True,
              help="Hours after which a claimed part with no commit is a dead writer's: its objects are deleted.")
def compact(url: str, dead_after: float) -> None:
    """Fold the commit objects of the s3:// store at URL into one index segment (faster opens).

    Extraction into object storage adds one index object per part; opening the store reads each.
    Compaction merges them into one segment, switches parts.json to it in one PUT, deletes what it
    covers, and removes the claims and data objects of writers that died (killed mid-part). Writers
    may keep extracting meanwhile; run one compaction at a time.
    """
    from pipeline.stores.compact import compact_store

    click.echo(compact_store(url, dead_after=dead_after * 3600.0).summary())


@store.command("import")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["openl3", "hear", "npy"]), required=True,
              help="openl3: <name>.npz (embedding, timestamps in s); hear: <name>.embedding.npy + "
                   "<name>.timestamps.json (ms; as heareval.embeddings.runner writes them, or .timestamps.npy); "
                   "npy: <name>.npy (T, D) frames with --hop and --frame0.")
@click.option("--teacher", "label", default=None,
              help="Label of the imported teacher; stage two names it imported:<label> [default: the format]")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Store folder [default: <extract.store_root>/imported-<label>]")
@click.option("--manifests", type=click.Path(file_okay=False), default=None,
              help="Manifests whose clip ids the file names are matched to [default: data.manifests]")
@click.option("--hop", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Seconds between frame centers (npy: required; others: checked against the files).")
@click.option("--frame0", type=click.FloatRange(min=0.0), default=None,
              help="Center of frame 0 in seconds (npy: required; others: checked against the files).")
@click.option("--window", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Seconds of audio one frame sees [default: the hop; openl3: 1.0]")
@click.option("--sample-rate", type=click.IntRange(min=0), default=None,
              help="The teacher's input rate in Hz, recorded only [default: openl3 48000, else unknown: the clips' "
                   "rate is recorded with sample_rate_known false]")
@click.option("--dtype", type=click.Choice(["float16", "float32"]), default=None, help="[default: extract.dtype]")
@click.option("--overwrite", is_flag=True, help="Replace an existing store instead of adding to it.")
@click.pass_context
def import_(ctx: click.Context, source: str, fmt: str, label: str | None, out: str | None, manifests: str | None,
            hop: float | None, frame0: float | None, window: float | None, sample_rate: int | None,
            dtype: str | None, overwrite: bool) -> None:
    """Import embedding files made elsewhere (openl3 CLI, hear-eval-kit, plain .npy) as a store.

    File names are matched to the manifests' clip ids (or audio paths). Files that do not match,
    have another dimension, or timestamps that are not increasing or off the grid are listed one
    per line and skipped (exit code 2); clips with no file are counted. The store's provenance
    is "imported" with a fingerprint of the source files.
    """
    from pipeline.cli import load_params_from
    from pipeline.manifests import load_split
    from pipeline.stores.importer import import_cache
    from stages.extract import store_path

    params = load_params_from(ctx)
    label = label or fmt
    folder = Path(manifests or params.data.manifests)
    clips = [clip for split in ("train", "valid", "test") if (folder / f"{split}.jsonl").is_file()
             for clip in load_split(folder, split)]
    target = Path(out) if out else store_path(params, f"imported:{label}")
    report = import_cache(
        source, target, clips, fmt=fmt, label=label, hop=hop, frame0=frame0,
        window=window if window is not None else (1.0 if fmt == "openl3" else None),
        sample_rate=sample_rate if sample_rate is not None else (48000 if fmt == "openl3" else 0),
        dtype=dtype or params.extract.dtype, backend=params.extract.backend, overwrite=overwrite,
    )
    click.echo(
        f"{report.teacher}: {len(report.imported)} imported, {len(report.skipped)} already stored, "
        f"{len(report.refused)} files refused, {len(report.missing)} manifest clips without a file -> {target}"
    )
    for path, reason in report.refused:
        click.echo(f"  refused {path}: {reason}", err=True)
    if report.missing:
        shown = ", ".join(report.missing[:5]) + (" ..." if len(report.missing) > 5 else "")
        click.echo(f"  no file for {len(report.missing)} clip(s): {shown}", err=True)
    if not report.ok:
        ctx.exit(2)
