"""``pipeline distill``: train a student, optionally regularised by a teacher's cached frames.

A run folder (``<distill.runs_root>/<student>-<teacher>-<variant>``, or
``<student>-baseline``) holds ``config.json`` (everything needed to rebuild the model),
``best.pt``, ``last.pt`` (resume), ``history.csv``, ``metrics.json`` and ``timings.json`` (wall-clock
figures, kept out of the metrics DVC tracks).
"""
from __future__ import annotations

import hashlib
import json
import logging
import statistics
from pathlib import Path
from typing import Any

import torch

from pipeline.config import RUNTIME_KEYS, DistillConfig, Params, to_mapping
from pipeline.data import ClipDataset, frame_statistics, hot_copy
from pipeline.audio_source import AudioSource, usable_audio_cache
from pipeline.devices import resolve_device, training_threads
from pipeline.errors import ConfigError, ManifestError, StoreError
from pipeline.files import write_atomic
from pipeline.losses import EAsTObjective
from pipeline.manifests import Clip, is_unlabeled, labelled, load_split, read_classes, usable_splits
from pipeline.probe import load_probe
from pipeline.run_config import RunConfig
from pipeline.runs import probe_dir, write_json
from pipeline.timings import timings_file
from pipeline.stores import open_store
from pipeline.teachers import teacher_slug
from pipeline.teacher_stores import checked_store, first_store_with_audio, store_path
from pipeline.students import STUDENTS, build_student
from pipeline.train import TrainResult, Trainer
from pipeline.views import ViewRenderer, ViewTable, read_view_table


def run_name(cfg: DistillConfig) -> str:
    """Default run folder name for a configuration."""
    if not cfg.spec.uses_teacher:
        return f"{cfg.student}-{cfg.variant}"
    teachers = "+".join(teacher_slug(ref.name) for ref in cfg.teacher_refs())  # each form's own slug
    return f"{cfg.student}-{teachers}-{cfg.variant}"


def _teachers_label(cfg: DistillConfig) -> str:
    """The run's teachers joined by ``+`` (``musicnn+musicnn@msd``)."""
    return "+".join(ref.name for ref in cfg.teacher_refs())


#: The paper's OpenMIC augmentation (CP-ResNet, 128 mels, 10 s = 1,000 frames at 32 kHz):
#: masks up to 48 bands and 192 frames, fmin + [0, 20) Hz, fmax - [0, 2000) Hz.
PAPER_SPECAUGMENT = {"freqm": 48 / 128, "timem": 192 / 1000, "fmin_aug_range": 20, "fmax_aug_range": 2000}


def student_settings(params: Params, name: str, clip_seconds: float) -> dict[str, Any]:
    """``students.<name>`` with the working sample rate filled in (the audio cache's rate).

    With ``distill.specaugment`` the paper's OpenMIC masks are added, scaled to the
    student's mel bands and clip frames (explicit ``freqm``/``timem``/... settings win).
    """
    settings = dict(params.students.get(name, {}))
    settings.setdefault("sample_rate", params.extract.audio_sample_rate)
    if params.distill.specaugment:
        defaults = STUDENTS.get(name).config_type()
        n_mels = settings.get("n_mels", defaults.n_mels)
        frames = clip_seconds * settings["sample_rate"] / settings.get("hop", defaults.hop)
        settings.setdefault("freqm", max(1, round(PAPER_SPECAUGMENT["freqm"] * n_mels)))
        settings.setdefault("timem", max(1, round(PAPER_SPECAUGMENT["timem"] * frames)))
        settings.setdefault("fmin_aug_range", PAPER_SPECAUGMENT["fmin_aug_range"])
        settings.setdefault("fmax_aug_range", PAPER_SPECAUGMENT["fmax_aug_range"])
    return settings


def run(params: Params, *, run_dir: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Train the student described by ``params.distill``.

    Returns:
        The metrics written to ``metrics.json`` plus ``train_seconds`` and ``train_clips_per_second``
        (wall-clock, written to ``timings.json`` beside it).
    """
    cfg = params.distill
    torch.set_num_threads(training_threads(cfg.threads))
    device = resolve_device(cfg.device)
    manifests = Path(params.data.manifests)
    classes = read_classes(manifests / "classes.json")
    train_clips, valid_clips = _usable_clips(params, manifests)
    train_clips, n_unlabeled = _unlabeled_share(cfg, train_clips)
    clip_seconds = cfg.crop_seconds or statistics.median(c.duration for c in _reference_clips(train_clips))
    settings = student_settings(params, cfg.student, clip_seconds)
    sample_rate = int(settings["sample_rate"])
    torch.manual_seed(cfg.seed)
    student = build_student(cfg.student, settings, n_classes=len(classes), sample_rate=sample_rate)
    init = load_init(student, cfg.init, {"student": cfg.student, "student_settings": settings,
                                         "n_classes": len(classes), "classes": classes, "sample_rate": sample_rate})
    train_set, valid_set = _datasets(params, train_clips, valid_clips, clip_seconds, sample_rate)
    use_teacher = cfg.spec.uses_teacher
    folder = Path(run_dir) if run_dir else Path(cfg.runs_root) / run_name(cfg)
    config = RunConfig(
        student=cfg.student, student_settings=settings, n_classes=len(classes), classes=classes,
        sample_rate=sample_rate, clip_seconds=clip_seconds,
        teacher=cfg.teacher_refs()[0].name if use_teacher else None,  # whose store holds the audio cache
        teachers=_provenance(params, train_set) if use_teacher else [], variant=cfg.variant, init=init,
        distill={k: v for k, v in to_mapping(cfg).items() if f"distill.{k}" not in RUNTIME_KEYS},
        manifests=str(manifests), audio_root=params.data.audio_root,
    )
    config_text = config.to_json()
    write_atomic(folder / "config.json", config_text, what="the run's config.json")
    objective = _objective(cfg)
    if "cosine_projection" in cfg.feature_losses() and use_teacher:
        objective.build_projections(student_channels(student), [view.dim for view in train_set.views])
    trainer = Trainer(
        student, objective, cfg, folder,
        probes=_kd_probes(params) if _uses_kd(cfg) else None,
        device=device, fingerprint=hashlib.sha256(config_text.encode()).hexdigest(),
    )
    result = trainer.fit(train_set, valid_set, progress=progress)
    metrics = _metrics(cfg, folder.name, student, result, device, len(train_clips) - n_unlabeled, n_unlabeled)
    timings = {"train_seconds": result.seconds, "train_clips_per_second": result.train_clips_per_second}
    if trainer.dist.main:  # under torchrun, rank 0 writes
        write_json(folder / "metrics.json", metrics)  # no wall-clock field: DVC tracks it
        write_json(timings_file(folder), timings)
    return {**metrics, **timings}


def _metrics(cfg: DistillConfig, name: str, student: torch.nn.Module, result: TrainResult, device: str, n_labeled: int,
             n_unlabeled: int) -> dict[str, Any]:
    """What ``metrics.json`` holds (no wall-clock field: DVC tracks it)."""
    use_teacher = cfg.spec.uses_teacher
    metrics = {
        "run": name,
        "student": cfg.student,
        "teacher": _teachers_label(cfg) if use_teacher else None,
        "variant": cfg.variant,
        "lam": cfg.lam if use_teacher else 0.0,
        "seed": cfg.seed,
        "parameters": sum(p.numel() for p in student.parameters()),
        "best_epoch": result.best_epoch,
        "valid_map": result.best_valid_map,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "device": device,
        "n_labeled": n_labeled,
        "n_unlabeled": n_unlabeled,
        "unlabeled_per_epoch": _unlabeled_per_epoch(cfg, n_unlabeled),
    }
    if cfg.spec.selected_by == "valid_loss":  # e.g. pretrain never reads labels: no valid mAP
        metrics.update(valid_map=None, valid_loss=-result.best_valid_map)
    return metrics


def _uses_kd(cfg: DistillConfig) -> bool:
    """KD from the probes (:meth:`pipeline.variants.VariantSpec.uses_kd`): east-kd, pretrain with ``kd_weight > 0``."""
    return cfg.spec.uses_kd(cfg.kd_weight)


def student_channels(student: torch.nn.Module) -> list[int]:
    """Channels of each feature stage of ``student``, read from one forward pass of silence (no gradient)."""
    was_training = student.training
    student.eval()
    with torch.no_grad():
        output = student(torch.zeros(1, int(student.min_samples)))  # type: ignore[arg-type]
    student.train(was_training)
    return [int(f.shape[-1]) for f in output.features]


#: ``config.json`` keys an ``--init`` run must share with the run it starts: the student's architecture,
#: its classes and its input rate (the weights must fit and mean the same)
INIT_KEYS = ("student", "student_settings", "n_classes", "classes", "sample_rate")


def load_init(student: torch.nn.Module, run_dir: str, expected: dict[str, Any]) -> dict[str, Any] | None:
    """Start ``student`` from the student weights (``best.pt``) of the run in ``run_dir`` (``distill.init``).

    Args:
        student: the freshly built student (its weights are replaced).
        run_dir: a finished run of ``pipeline distill`` (e.g. a pretrain run); "" = no init.
        expected: this run's values of :data:`INIT_KEYS`.

    Returns:
        ``{"run", "best_sha256"}`` for ``config.json`` (so the fingerprint follows the weights), or None.

    Raises:
        ConfigError: no such run, or one whose student or settings differ (one line naming the first key).
    """
    if not run_dir:
        return None
    folder = Path(run_dir)
    config_path, best = folder / "config.json", folder / "best.pt"
    if not config_path.is_file() or not best.is_file():
        raise ConfigError(f"--init {run_dir}: not a finished run of `pipeline distill` (needs config.json and "
                          "best.pt); train it first, e.g. `pipeline distill --variant pretrain --run-dir RUN`")
    saved = json.loads(config_path.read_text())
    for key in INIT_KEYS:
        if json.loads(json.dumps(expected[key])) != saved.get(key):
            raise ConfigError(f"--init {run_dir}: its {key} is {saved.get(key)!r}, this run's is {expected[key]!r}; "
                              "start from a run with the same student, settings, classes and sample rate")
    state = torch.load(best, map_location="cpu", weights_only=True)
    student.load_state_dict(state)
    return {"run": str(folder), "best_sha256": hashlib.sha256(best.read_bytes()).hexdigest()}


def _kd_probes(params: Params) -> list[tuple[int, torch.nn.Module]]:
    """``(teacher slot, probe)`` for KD: ``distill.kd_teacher``'s probe, or every teacher's (logits averaged)."""
    refs = params.distill.teacher_refs()
    chosen = [k for k, ref in enumerate(refs) if not params.distill.kd_teacher or ref.name == params.distill.kd_teacher]
    return [(k, load_probe(probe_dir(params, refs[k].name) / "probe.pt")) for k in chosen]


def _provenance(params: Params, train_set: ClipDataset) -> list[dict[str, Any]]:
    """Every teacher of the run: name, weight, store and the store's provenance (``teacher.json``)."""
    rows = []
    for ref, path in zip(params.distill.teacher_refs(), train_set.teacher_paths):
        spec = open_store(path).spec  # a memmap copy keeps the store's teacher.json
        rows.append({"name": ref.name, "weight": ref.weight, "store": str(store_path(params, ref.name)),
                     "teacher": spec.teacher, "config": spec.config, "weights_sha256": spec.weights_sha256,
                     "hop_seconds": spec.hop_seconds, "frame0_center_seconds": spec.frame0_center_seconds,
                     "window_seconds": spec.window_seconds, "dim": spec.dim})
    return rows


def _unlabeled_share(cfg: DistillConfig, train_clips: list[Clip]) -> tuple[list[Clip], int]:
    """The training clips and how many of them are unlabeled (logged).

    Unlabeled clips feed only the teacher terms, so the baseline (label loss only) leaves them out.

    Raises:
        ManifestError: the train split has no labelled clip.
    """
    n_unlabeled = sum(is_unlabeled(c) for c in train_clips)
    if n_unlabeled == len(train_clips) and cfg.spec.label_term:
        raise ManifestError(f"the train split has no labelled clip (all {n_unlabeled} are unlabeled); "
                            "distill needs labelled clips: add labels or labelled clips and `pipeline prepare`")
    log = logging.getLogger("pipeline")
    if n_unlabeled and not cfg.spec.uses_teacher:
        log.info("distill: %d unlabeled clip(s) left out: the baseline has no teacher term for them", n_unlabeled)
        return labelled(train_clips), 0
    if n_unlabeled:
        per_epoch = _unlabeled_per_epoch(cfg, n_unlabeled)
        log.info("distill: %d labelled + %d unlabeled train clips (%d unlabeled per epoch; feature and KD "
                 "terms only)", len(train_clips) - n_unlabeled, n_unlabeled, per_epoch)
    return train_clips, n_unlabeled


def _unlabeled_per_epoch(cfg: DistillConfig, n_unlabeled: int) -> int:
    """Unlabeled clips drawn per epoch: ``distill.unlabeled_per_epoch`` (null = all), at most ``n_unlabeled``."""
    return n_unlabeled if cfg.unlabeled_per_epoch is None else min(cfg.unlabeled_per_epoch, n_unlabeled)


def _usable_clips(params: Params, manifests: Path) -> tuple[list[Clip], list[Clip]]:
    """Train and valid clips, without those not in the store (not decoded, or no file imported; one warning)."""
    cfg = params.distill
    owner = (checked_store(params, cfg.teacher_refs()[0].name) if cfg.spec.uses_teacher
             else first_store_with_audio(params))
    usable = usable_splits(manifests, ("train", "valid"), stored=open_store(owner) if owner else None,
                           stage="distill")
    return usable["train"], usable["valid"]


def _datasets(params: Params, train_clips: list[Clip], valid_clips: list[Clip], clip_seconds: float,
              sample_rate: int) -> tuple[ClipDataset, ClipDataset]:
    """Training (random crops) and validation sets: audio (from a cache when there is one) + teacher frames."""
    cfg = params.distill
    use_teacher = cfg.spec.uses_teacher
    stores = [checked_store(params, ref.name) for ref in cfg.teacher_refs()] if use_teacher else []
    tables = _view_tables(params, stores)
    view_store = stores[0] if stores else (checked_store(params, cfg.teacher_refs()[0].name) if tables else None)
    cache_owner = view_store or first_store_with_audio(params)  # views: the cache they were rendered from
    audio_cache = usable_audio_cache(cache_owner, sample_rate)
    # labelled clips only: the probe's statistics (its input must match the loader's)
    norms = [frame_statistics(store, _reference_clips(train_clips)) for store in stores]
    if cfg.loader == "memmap":  # a local raw copy (of a URL store too); `store` reads the stores directly
        audio_cache = hot_copy(audio_cache) if audio_cache else None
        stores = [hot_copy(store) for store in stores]
    audio = AudioSource(params.data.audio_root, sample_rate, audio_cache)
    common: dict[str, Any] = {"audio": audio, "teacher_store": stores or None, "teacher_norm": norms or None,
                              "seed": cfg.seed}
    # a view may mix in any train clip of the manifests (an unlabeled one too, which a baseline leaves out)
    partners = {c.id: c for c in load_split(Path(params.data.manifests), "train")} if tables else {}
    renderer = ViewRenderer(tables[0], audio, partners) if tables else None
    train_set = ClipDataset(train_clips, clip_seconds=clip_seconds, random_crop=True, view_renderer=renderer,
                            **common)
    valid_set = ClipDataset(valid_clips, clip_seconds=clip_seconds, random_crop=False, **common)
    # Clips of different lengths: the validation loss pairs valid items with the training items'
    # teacher times, so both serve the frames that every clip of either split has.
    train_set.share_frames(valid_set)
    return train_set, valid_set


def _view_tables(params: Params, stores: list[Path]) -> list[ViewTable]:
    """With ``distill.views``: the views of every teacher store of the run (the baseline's: ``distill.teacher``'s),
    all the same; else ``[]``.

    Raises:
        StoreError: a store without views, or teachers whose views differ (extract them with one
            ``extract.view_augment`` and ``extract.views``).
    """
    if not params.distill.views:
        return []
    paths: list[Path | str] = list(stores) or [checked_store(params, params.distill.teacher_refs()[0].name)]
    tables = [read_view_table(path) for path in paths]
    for path, table in zip(paths, tables):
        if table is None:
            raise StoreError(f"distill.views is set but the store {path} has no views; run `pipeline extract` "
                             "with extract.views > 0 first (README: Augmented views)")
    if any(t.views != tables[0].views for t in tables[1:]):  # type: ignore[union-attr]
        raise StoreError("distill.views: the teachers' stores hold different views; extract every teacher "
                         "with the same extract.views and extract.view_augment")
    return tables  # type: ignore[return-value]


def _reference_clips(train_clips: list[Clip]) -> list[Clip]:
    """The clips that fix the crop length and the teacher frames' z-scoring (the probe's): the labelled
    ones, or every clip when none is labelled (a pretrain run on unlabeled audio alone)."""
    return labelled(train_clips) or list(train_clips)


def _objective(cfg: DistillConfig) -> EAsTObjective:
    return EAsTObjective(
        variant=cfg.variant, lam=cfg.lam, kd_weight=cfg.kd_weight, tau=cfg.tau,
        feature_loss=list(cfg.feature_losses()), alignment=cfg.alignment,
        dcor_estimator=cfg.dcor_estimator, dcor_pool=cfg.dcor_pool, kd_entries=cfg.kd_entries,
        teacher_weights=[ref.weight for ref in cfg.teacher_refs()],
    )
