"""``pipeline store``: inspect, verify, export or convert an embedding store."""
from __future__ import annotations

import json

import click

from pipeline.config import BACKENDS, FRAME_DTYPES
from pipeline.errors import StoreError
from pipeline.stores import convert_store, export_store, open_store
from pipeline.stores.convert import EXPORT_FORMATS


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
    frames = sum(e.n_frames for p in parts for e in p.entries)
    seconds = sum(e.duration for p in parts for e in p.entries)
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
    """Inspect, verify, convert or export an embedding store (a folder, or an fsspec URL to read)."""


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
            f"hop {facts['hop_seconds']:.6g} s, window {facts['window_seconds']:.6g} s, "
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
    """Recompute checksums and check index <-> data consistency; exit 1 listing the problems."""
    report = open_store(path).verify(checksums=not no_checksums)
    for note in report.notes:
        click.echo(f"note: {note}")
    for problem in report.problems:
        click.echo(f"problem: {problem}")
    if not report.ok:  # a PipelineError: one error line and exit status 1, also under `pipeline` itself
        raise StoreError(
            f"{report.summary()}; re-extract the named tracks (or restore the parts) and verify again"
        )
    click.echo(report.summary())


@store.command("export")
@click.argument("path")
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), required=True,
              help="npy: one <track>.npy per track (HEAR / official EAsT layout); "
                   "memmap: one raw .npy per part + index (fast training reads).")
@click.option("--out", "out", type=click.Path(file_okay=False), required=True, help="Destination folder.")
@click.option("--dtype", type=click.Choice(FRAME_DTYPES), default=None,
              help="npy only: cast frames (default: the stored dtype).")
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
def convert(path: str, backend: str, out: str, overwrite: bool) -> None:
    """Copy the store at PATH into a new store with another backend (parts and checksums kept)."""
    source = open_store(path)
    target = convert_store(source, out, backend=backend, overwrite=overwrite)
    click.echo(
        f"converted {len(target)} tracks of {source.path} ({source.backend}) to {target.path} ({backend})"
    )
