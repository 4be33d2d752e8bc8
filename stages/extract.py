"""Stage one: ``pipeline extract --teacher NAME`` as a plain function.

Orchestration only: resolve settings, check weights before touching the store, skip
tracks already stored (resume), spread chunks of tracks over dask workers (each worker
loads the model once and writes its own parts), show progress, write the report.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from pipeline.allocator import WORKER_ENV as ALLOCATOR_ENV
from pipeline.audio_source import AudioSource
from pipeline.config import ExtractConfig, Params
from pipeline.devices import resolve_device
from pipeline.errors import PipelineError, StoreError, TeacherError, WeightsNotFoundError
from pipeline.extraction import TrackOutcome, extract_tracks
from pipeline.files import write_atomic
from pipeline.interrupts import sigterm_as_interrupt
from pipeline.logs import dask_log_level, quiet_shutdown
from pipeline.manifests import Clip, load_split
from pipeline.stores import EmbeddingStore, StoreSpec, create_store, open_store
from pipeline.stores.location import Location, is_url
from pipeline.stores.protocol import TEACHER_FILE
from pipeline.stores.remote import object_faults, remove_object_store
from pipeline.teacher_stores import store_path
from pipeline.teachers import Teacher, build_teacher, cached_teacher, teacher_settings
from pipeline.timings import timings_file
from pipeline.views import ViewRenderer, parse_view_track, plan_views, view_track_id, write_view_table

log = logging.getLogger(__name__)

#: Environment of worker processes: large tensors otherwise pay mmap/munmap churn on every
#: allocation (measured: 48 s -> 31 s for a musicnn run; see pipeline/allocator.py), and OpenMP
#: spinning between processes on few cores makes torch 8x slower with more than one thread per process.
WORKER_ENV = {**ALLOCATOR_ENV, "OMP_NUM_THREADS": "1"}


@dataclass
class ExtractReport:
    """Outcome of one extraction run (also written as JSON next to the store)."""

    teacher: str
    store: str
    done: int = 0
    skipped: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    workers: int = 0
    device: str = "cpu"
    views_done: int = 0
    views_skipped: int = 0

    @property
    def ok(self) -> bool:
        """True when no track failed."""
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        """The report as DVC tracks it (a metrics file): no wall-clock field, see :meth:`timings`."""
        data = asdict(self)
        data.pop("wall_seconds")
        if not self.views_done and not self.views_skipped:  # no views: the report as before them
            data.pop("views_done")
            data.pop("views_skipped")
        return data

    def timings(self) -> dict[str, float]:
        """Wall time and throughput, written beside the report (``timings-<store>-extract.json``)."""
        rate = self.audio_seconds / self.wall_seconds if self.wall_seconds else 0.0
        return {"wall_seconds": self.wall_seconds, "audio_seconds_per_second": rate}


def _run_chunk(
    teacher_name: str,
    settings: dict[str, Any],
    device: str,
    clips: Sequence[Clip],
    audio_root: str,
    store: str,
    audio_store: str | None,
    config: dict[str, Any],
    on_record: Callable[[TrackOutcome], None] | None = None,
    render: ViewRenderer | None = None,
) -> list[TrackOutcome]:
    """One task: embed ``clips`` into parts of ``store`` (in a dask worker process or in-process).

    ``on_record`` receives each outcome (with the decoder's notes on its file) as it happens
    (in-process progress). With ``render`` the clips are views: their audio is rendered, not
    decoded, and no audio is cached.
    """
    try:
        return _embed_chunk(teacher_name, settings, device, clips, audio_root, store, audio_store, config, on_record,
                            render)
    except PipelineError:
        raise
    except Exception as exc:  # the model itself failed (out of memory, a bug in a module): one line, not a traceback
        log.info("teacher %s failed", teacher_name, exc_info=True)
        raise TeacherError(
            f"teacher {teacher_name!r} failed while embedding ({type(exc).__name__}: {exc}); the tracks committed "
            "before are kept and a rerun resumes after them; `pipeline -v extract ...` shows the traceback") from exc


def _embed_chunk(teacher_name: str, settings: dict[str, Any], device: str, clips: Sequence[Clip], audio_root: str,
                 store: str, audio_store: str | None, config: dict[str, Any],
                 on_track: Callable[[TrackOutcome], None] | None,
                 render: ViewRenderer | None = None) -> list[TrackOutcome]:
    """:func:`_run_chunk`'s work: load the teacher (cached per process), embed, commit parts."""
    if config["threads"]:
        torch.set_num_threads(config["threads"])
    teacher = cached_teacher(teacher_name, settings, device)
    emb_store = open_store(store, mode="a")
    audio_cache = open_store(audio_store, mode="a") if audio_store and render is None else None
    with emb_store.writer(part_tracks=config["part_tracks"]) as writer:
        if audio_cache is None:
            outcomes = extract_tracks(
                teacher, clips, Path(audio_root), writer, batch_seconds=config["batch_seconds"], on_track=on_track,
                render=render,
            )
        else:
            with audio_cache.writer(part_tracks=config["part_tracks"]) as audio_writer:
                outcomes = extract_tracks(
                    teacher,
                    clips,
                    Path(audio_root),
                    writer,
                    audio_writer=audio_writer,
                    audio_sample_rate=audio_cache.spec.sample_rate,
                    batch_seconds=config["batch_seconds"],
                    on_track=on_track,
                )
    return outcomes


def _chunks(clips: Sequence[Clip], n_chunks: int) -> list[list[Clip]]:
    size = max(1, math.ceil(len(clips) / max(n_chunks, 1)))
    return [list(clips[i : i + size]) for i in range(0, len(clips), size)]


def run(
    params: Params,
    *,
    teacher: str,
    manifests: str | None = None,
    audio_root: str | None = None,
    store: str | None = None,
    overwrite: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> ExtractReport:
    """Extract ``teacher`` embeddings for the manifests' splits into its store.

    Args:
        params: parameters (``extract`` section and ``teachers.<teacher>``), CLI overrides applied.
        teacher: registered teacher name.
        manifests: manifests folder (default ``data.manifests``).
        audio_root: audio root (default ``data.audio_root``).
        store: store path (default ``<extract.store_root>/<teacher>``).
        overwrite: delete an existing store first.
        limit: only the first ``limit`` tracks (smoke runs).
        progress: show a progress bar.

    Returns:
        The report; ``report.ok`` is False when any track failed.

    Raises:
        WeightsNotFoundError: before the store is touched, when the teacher's weights are missing.
    """
    cfg: ExtractConfig = params.extract
    path = store_path(params, teacher, store)
    settings = teacher_settings(params, teacher)
    model = build_teacher(teacher, settings)
    if not model.weights_available():
        raise WeightsNotFoundError(f"teacher {teacher!r}: weights not found. {model.weights_hint}")
    device = resolve_device(cfg.device)
    root = Path(audio_root or params.data.audio_root)
    clips = _clips(Path(manifests or params.data.manifests), cfg.splits, limit)
    new_store = not _store_exists(path)
    emb_store, audio_path = _open_stores(path, model, cfg, overwrite=overwrite)
    todo = [c for c in clips if c.id not in emb_store]
    report = ExtractReport(teacher=teacher, store=str(path), skipped=len(clips) - len(todo), device=device)
    log.info("%s: %d tracks, %d already stored", teacher, len(clips), report.skipped)
    use_dask = bool(cfg.scheduler) or (cfg.workers > 1 and device == "cpu" and len(todo) > 1)
    report.workers = cfg.workers if use_dask else 0
    tally = _Tally(report, len(todo), progress=progress)
    where: dict[str, Any] = dict(teacher=teacher, settings=settings, device=device, root=root, path=path,
                                 audio_path=audio_path, use_dask=use_dask)
    try:
        with sigterm_as_interrupt():  # Ctrl-C or SIGTERM: the writers commit the whole tracks computed, then exit
            _embed(todo, tally, cfg, **where)
    except BaseException:
        if new_store:
            _remove_if_empty(path)
        raise
    _extract_views(cfg, Path(manifests or params.data.manifests), clips, tally, **where)
    tally.close()
    _write_report(report, path)
    return report


def _clips(manifests: Path, splits: Sequence[str], limit: int | None) -> list[Clip]:
    """The clips of ``splits`` in manifest order (the first ``limit`` of them when given)."""
    clips = [clip for split in splits for clip in load_split(manifests, split)]
    return clips[:limit] if limit is not None else clips


def _extract_views(cfg: ExtractConfig, manifests: Path, clips: Sequence[Clip], tally: _Tally, *, root: Path,
                   path: Path, audio_path: Path | None, device: str, settings: dict[str, Any], teacher: str,
                   use_dask: bool) -> None:
    """Second pass, with ``extract.views`` > 0: plan the views of every stored train clip of ``clips`` into
    ``views.json`` (merged, atomic) and embed those not stored yet (rendered, see :mod:`pipeline.views`).

    Raises:
        StoreError: the store's views were made with other settings (:func:`pipeline.views.write_view_table`).
    """
    augment = cfg.view_augment  # read always: dvc.yaml declares it (a change re-runs the stage, which resumes)
    if not cfg.views or "train" not in cfg.splits:
        return
    if is_url(str(path)):
        raise StoreError(f"extract.views: views are planned into a local store's views.json; {path} is a URL. "
                         "Extract the views into a local store, then copy it to the bucket")
    train_ids = {c.id for c in load_split(manifests, "train")}
    train_clips = [c for c in clips if c.id in train_ids]
    emb_store = open_store(path)
    train = [c for c in train_clips if c.id in emb_store]
    if not train:
        return
    table = write_view_table(path, plan_views(train, cfg.views, augment, cfg.audio_sample_rate))
    wanted = [replace(c, id=view_track_id(c.id, k)) for c in train for k in range(1, cfg.views + 1)]
    todo = [v for v in wanted if v.id not in emb_store]
    tally.report.views_skipped = len(wanted) - len(todo)
    if not todo:
        return
    renderer = ViewRenderer(table, AudioSource(root, cfg.audio_sample_rate, audio_path),
                            {c.id: c for c in train})
    tally.grow(len(todo))
    with sigterm_as_interrupt():
        _embed(todo, tally, cfg, teacher=teacher, settings=settings, device=device, root=root, path=path,
               audio_path=audio_path, use_dask=use_dask, render=renderer)


def _store_exists(path: Path | str) -> bool:
    """Whether a store is at ``path`` (a folder or a URL; a refused bucket or credentials: one line).

    Raises:
        FileFault: the object store refused the request.
    """
    with object_faults(str(path), doing="looking for the store", kept="nothing was written",
                       passthrough=(FileNotFoundError,)):
        try:
            return Location(path).exists(TEACHER_FILE)
        except FileNotFoundError:  # no such bucket: create_store names it
            return False


def _child(path: Path | str, name: str) -> Path | str:
    """``path/name`` for a folder or a URL."""
    return f"{str(path).rstrip('/')}/{name}" if is_url(str(path)) else Path(path) / name


def _embed(todo: list[Clip], tally: _Tally, cfg: ExtractConfig, *, teacher: str, settings: dict[str, Any],
           device: str, root: Path, path: Path | str, audio_path: Path | str | None, use_dask: bool,
           render: ViewRenderer | None = None) -> None:
    """Embed ``todo`` on dask workers (``use_dask``) or in this process, one part per chunk of tracks
    (``render``: views, see :func:`_run_chunk`); nothing when ``todo`` is empty."""
    if not todo:
        return
    chunk_config = {"batch_seconds": cfg.batch_seconds, "part_tracks": cfg.part_tracks, "threads": int(use_dask)}
    if use_dask:
        n_chunks = max(cfg.workers * 4, math.ceil(len(todo) / cfg.part_tracks))
        for outcomes in _map_on_dask(
            cfg, teacher, settings, device, _chunks(todo, n_chunks), root, path, audio_path, chunk_config, render
        ):
            for outcome in outcomes:
                tally.record(outcome)
        return
    audio = str(audio_path) if audio_path else None
    for chunk in _chunks(todo, math.ceil(len(todo) / cfg.part_tracks)):
        _run_chunk(
            teacher, settings, device, chunk, str(root), str(path), audio, chunk_config,
            on_record=tally.record, render=render,
        )


def _open_stores(path: Path | str, model: Teacher, cfg: ExtractConfig, *,
                 overwrite: bool) -> tuple[EmbeddingStore, Path | str | None]:
    """The teacher's store at ``path`` (created or resumed) and, with ``cache_audio``, its audio cache's path."""
    emb_store = create_store(path, StoreSpec.from_teacher(model, dtype=cfg.dtype), backend=cfg.backend,
                             overwrite=overwrite)
    if not cfg.cache_audio:
        return emb_store, None
    audio_path = _child(path, "audio")
    create_store(audio_path, StoreSpec.for_audio(cfg.audio_sample_rate), backend=cfg.backend, overwrite=overwrite)
    return emb_store, audio_path


class _Tally:
    """Counts track outcomes into the report and shows them on a progress bar."""

    def __init__(self, report: ExtractReport, total: int, *, progress: bool) -> None:
        self.report = report
        self.start = time.perf_counter()
        self.bar = tqdm(total=total, desc=f"extract {report.teacher}", unit="track",
                        disable=not progress or total == 0)

    def record(self, outcome: TrackOutcome) -> None:
        """Add one track's outcome (its decoder notes become the report's warnings)."""
        report = self.report
        if outcome.status == "done":
            if parse_view_track(outcome.track_id):
                report.views_done += 1
            else:
                report.done += 1
            report.audio_seconds += outcome.audio_seconds
        elif outcome.status == "failed":
            report.failed.append({"track": outcome.track_id, "path": outcome.path, "reason": outcome.reason})
        for note in outcome.notes if outcome.status == "done" else ():
            report.warnings.append({"track": outcome.track_id, "path": outcome.path, "warning": note})
        self.bar.update(1)
        hours = report.audio_seconds / 3600
        rate = report.audio_seconds / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{hours:.2f} h audio, {rate:.0f} audio-s/s, {len(report.failed)} failed")

    def grow(self, more: int) -> None:
        """``more`` tracks to do (the views' pass)."""
        self.bar.total = (self.bar.total or 0) + more
        if not self.bar.disable:
            self.bar.refresh()

    def close(self) -> None:
        """Close the bar and stamp the wall time on the report."""
        self.bar.close()
        self.report.wall_seconds = time.perf_counter() - self.start


def _map_on_dask(cfg, teacher, settings, device, chunks, root, path, audio_path, config,  # noqa: ANN001, ANN201
                 render=None):  # noqa: ANN001
    """Run chunks on a local cluster (``workers`` processes) or on ``scheduler``; yield outcome lists."""
    from dask.distributed import Client, LocalCluster, as_completed  # dask only when workers are asked for
    from distributed.scheduler import KilledWorker

    if cfg.scheduler:
        client = Client(cfg.scheduler)
        cluster = None
    else:
        cluster = LocalCluster(
            n_workers=cfg.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            env=WORKER_ENV,
            silence_logs=dask_log_level(),
        )
        client = Client(cluster)
    try:
        futures = {
            client.submit(
                _run_chunk, teacher, settings, device, chunk, str(root), str(path),
                str(audio_path) if audio_path else None, config, None, render, pure=False,
            ): chunk
            for chunk in chunks
        }
        for future in as_completed(futures):
            try:
                yield future.result()
            except KilledWorker as exc:  # its workers kept dying: the others go on, a rerun does these tracks
                reason = f"dask worker died ({exc}); rerun to extract it"
                yield [TrackOutcome(clip.id, "failed", 0.0, path=str(clip.audio_path), reason=reason)
                       for clip in futures[future]]
    finally:
        with quiet_shutdown():
            client.close()
            if cluster is not None:
                cluster.close()


def _remove_if_empty(path: Path | str) -> None:
    """Delete the store this run created at ``path`` when it aborted before committing any track.

    An empty store would otherwise pin the settings of the failed run, so that the rerun with
    other settings (the usual fix) is refused until ``--overwrite``. A store holding tracks is
    always kept: they are resumed.
    """
    import shutil

    try:
        if len(open_store(path)) == 0:
            if is_url(str(path)):
                remove_object_store(Location(path))
            else:
                shutil.rmtree(path, ignore_errors=True)
    except Exception:  # noqa: BLE001 - cleanup after a failure must never hide that failure
        log.debug("could not check the aborted store %s", path, exc_info=True)


def _write_report(report: ExtractReport, store: Path | str) -> Path | str:
    """``<store>-extract-report.json`` (a DVC metric) and ``timings-<store>-extract.json`` (wall-clock, untracked).

    A store behind a URL gets both beside it in the object store.
    """
    if is_url(str(store)):
        return _write_remote_report(report, str(store))
    store = Path(store)
    out = store.parent / f"{store.name}-extract-report.json"
    write_atomic(out, json.dumps(report.to_json(), indent=2), what="the extract report",
                 kept="the store keeps every track committed")
    write_atomic(timings_file(store.parent, f"{store.name}-extract"), json.dumps(report.timings(), indent=2),
                 what="the extract timings", kept="the store keeps every track committed")
    return out


def _write_remote_report(report: ExtractReport, url: str) -> str:
    """The report and timings of a store behind ``url``, as objects beside it (``<url>-extract-report.json``).

    Raises:
        FileFault: the object store refused the upload (the store keeps every track).
    """
    location = Location(url.rstrip("/").rsplit("/", 1)[0])
    name = url.rstrip("/").rsplit("/", 1)[1]
    out = f"{name}-extract-report.json"
    with object_faults(location.join(out), doing="writing the extract report", kept="the store keeps every track"):
        location.fs.pipe_file(location.fs_path(out), json.dumps(report.to_json(), indent=2).encode())
        location.fs.pipe_file(location.fs_path(f"timings-{name}-extract.json"),
                              json.dumps(report.timings(), indent=2).encode())
    return location.join(out)
