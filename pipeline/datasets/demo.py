"""The demo dataset: rendered multi-label instrument clips in the style of OpenMIC-2018.

``pipeline prepare demo`` renders ``n_train + n_valid + n_test`` clips of ``clip_seconds``
with one to four of OpenMIC's 20 instruments each (see :mod:`.demo_music` for how each
class is played), writes them as 16-bit FLAC under ``<audio_root>/<split>/<id>.flac`` and
the manifests to ``<manifests_dir>``. Everything follows from ``seed``: the same seed gives
byte-identical audio and identical manifests, whatever the number of worker processes.

Mixing: each stem is RMS-normalised, mixed at a gain drawn from -10..0 dB, and the mix is
peak-normalised to a level drawn from 0.3..0.9.

Unknown labels: as in OpenMIC, a share ``unknown_fraction`` of the (clip, class) entries of
each split is marked unknown, drawn uniformly over all entries (so positives and negatives
alike); afterwards every class keeps at least one known positive per split.

Unlabeled clips: ``n_unlabeled`` more train clips, planned and rendered like the others from
their own seed stream (so the labelled clips stay byte-identical), written to
``<audio_root>/unlabeled/unlabeled_<i>.flac`` with every label unknown (labels 0).
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.config import DemoConfig, to_mapping
from pipeline.datasets.base import BuildReport, register_builder, write_outputs
from pipeline.datasets.demo_music import OPENMIC_CLASSES, Context, compose, draw_context, synthesize
from pipeline.errors import ConfigError, ManifestError
from pipeline.files import write_atomic
from pipeline.manifests import SPLITS, Clip

__all__ = ["OPENMIC_CLASSES", "render_instrument", "render_clip", "render_mix", "plan_demo", "build"]

log = logging.getLogger(__name__)

STEM_RMS = 0.1  # RMS of a normalised stem
GAIN_DB = (-10.0, 0.0)
PEAK = (0.3, 0.9)
#: P(k instruments) for k = 1..4 when the range is the default 1..4 (mean 2.4 labels per clip).
_K_WEIGHTS = {1: 0.2, 2: 0.35, 3: 0.3, 4: 0.15}


def _class_index(name: str) -> int:
    try:
        return OPENMIC_CLASSES.index(name)
    except ValueError:
        raise ConfigError(f"unknown demo class {name!r}; choose from {', '.join(OPENMIC_CLASSES)}") from None


def _stem(class_name: str, ctx: Context, seed: int, sample_rate: int) -> np.ndarray:
    """One RMS-normalised stem; redraws the material if it came out silent."""
    for attempt in range(8):
        rng = np.random.default_rng([seed, 1 + _class_index(class_name), attempt])
        audio = synthesize(compose(class_name, ctx, rng), ctx.seconds, sample_rate)
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
        if rms > 1e-4:
            return (audio * (STEM_RMS / rms)).astype(np.float32)
    raise RuntimeError(f"demo stem {class_name!r} (seed {seed}) stayed silent after 8 draws")


def render_instrument(class_name: str, *, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Audio of one class playing musical material (a phrase, chords, a groove, ...).

    Args:
        class_name: one of :data:`OPENMIC_CLASSES`.
        seconds: length in seconds.
        sample_rate: rate in Hz.
        seed: picks key, tempo, GM preset, register, style and notes.

    Returns:
        ``(round(seconds * sample_rate),)`` float32 mono, RMS 0.1 (peak kept below 1).
    """
    ctx = draw_context(np.random.default_rng([seed, 0]), seconds)
    audio = _stem(class_name, ctx, seed, sample_rate)
    peak = float(np.max(np.abs(audio)))
    return audio * (0.99 / peak) if peak > 0.99 else audio


@dataclass(frozen=True)
class RenderedClip:
    """A mix and what went into it.

    Attributes:
        mix: ``(samples,)`` float32 mix.
        stems: class name -> ``(samples,)`` stem exactly as it sits in ``mix``
            (``mix == sum(stems.values())`` up to float rounding).
        gains_db: class name -> mixing gain relative to the RMS-normalised stem (before
            the final peak normalisation).
    """

    mix: np.ndarray
    stems: dict[str, np.ndarray]
    gains_db: dict[str, float]


def render_mix(classes: Sequence[str], *, seconds: float, sample_rate: int, seed: int) -> RenderedClip:
    """Render several classes in one key and tempo and mix them (see module doc).

    A class's stem depends only on ``seed`` and the class, not on which other classes
    play, so a clip re-rendered without one instrument keeps the others' material.
    """
    if not classes:
        raise ValueError("render_mix needs at least one class")
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be distinct, got {list(classes)!r}")
    ctx = draw_context(np.random.default_rng([seed, 0]), seconds)
    gains_db: dict[str, float] = {}
    stems: dict[str, np.ndarray] = {}
    for name in classes:
        gain_rng = np.random.default_rng([seed, 100 + _class_index(name)])
        gains_db[name] = float(gain_rng.uniform(*GAIN_DB))
        stems[name] = _stem(name, ctx, seed, sample_rate) * np.float32(10 ** (gains_db[name] / 20))
    mix = np.asarray(np.sum(list(stems.values()), axis=0, dtype=np.float64))
    peak_rng = np.random.default_rng([seed, 99])
    scale = float(peak_rng.uniform(*PEAK)) / max(float(np.max(np.abs(mix))), 1e-9)
    stems = {name: (stem * scale).astype(np.float32) for name, stem in stems.items()}
    return RenderedClip(mix=np.asarray(mix * scale, dtype=np.float32), stems=stems, gains_db=gains_db)


def render_clip(classes: Sequence[str], *, seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """The float32 mono mix of :func:`render_mix` (peak 0.3-0.9)."""
    return render_mix(classes, seconds=seconds, sample_rate=sample_rate, seed=seed).mix


# --- the dataset ------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipPlan:
    """What one demo clip will be: its split, id, instruments, render seed and label mask."""

    split: str
    id: str
    classes: tuple[str, ...]
    seed: int
    known: tuple[bool, ...]
    unlabeled: bool = False

    @property
    def audio_path(self) -> str:
        return f"{UNLABELED if self.unlabeled else self.split}/{self.id}.flac"

    @property
    def labels(self) -> tuple[int, ...]:
        """One 0/1 per class; all 0 for an unlabeled clip (its instruments are not told)."""
        return tuple(int(name in self.classes and not self.unlabeled) for name in OPENMIC_CLASSES)


#: Folder and id prefix of the unlabeled clips (a pseudo-split rendered into ``train``).
UNLABELED = "unlabeled"


def _split_sizes(config: DemoConfig) -> dict[str, int]:
    return {"train": config.n_train, "valid": config.n_valid, "test": config.n_test}


def _plan_sizes(config: DemoConfig) -> dict[str, int]:
    """Clips per planned group: the three splits, then the unlabeled ones (seed stream 3)."""
    return {**_split_sizes(config), UNLABELED: config.n_unlabeled}


def _check(config: DemoConfig) -> None:
    n = len(OPENMIC_CLASSES)
    if not 1 <= config.min_instruments <= config.max_instruments <= n:
        raise ConfigError(f"demo.min_instruments/max_instruments must satisfy 1 <= min <= max <= {n}, got "
                          f"{config.min_instruments}/{config.max_instruments}")
    if not 0.0 <= config.unknown_fraction < 1.0:
        raise ConfigError(f"demo.unknown_fraction must be in [0, 1), got {config.unknown_fraction}")
    if config.clip_seconds <= 0 or config.sample_rate < 4000:
        raise ConfigError(f"demo.clip_seconds must be > 0 and demo.sample_rate >= 4000, got "
                          f"{config.clip_seconds}, {config.sample_rate}")
    sizes = _split_sizes(config)
    if any(v < 0 for v in sizes.values()) or not any(sizes.values()):
        raise ConfigError(f"demo split sizes must be >= 0 and not all 0, got {sizes}")
    if config.n_unlabeled < 0:
        raise ConfigError(f"demo.n_unlabeled must be >= 0, got {config.n_unlabeled}")


def plan_demo(config: DemoConfig) -> list[ClipPlan]:
    """Decide every clip's instruments, seed and unknown labels (cheap; no audio).

    Instruments are drawn class-balanced within a split (weights favour classes with fewer
    positives so far); the number per clip follows P(1..4) = .2/.35/.3/.15 for the default
    range and is uniform otherwise.
    """
    _check(config)
    n_classes = len(OPENMIC_CLASSES)
    ks = np.arange(config.min_instruments, config.max_instruments + 1)
    if set(ks.tolist()) <= set(_K_WEIGHTS):
        k_prob = np.array([_K_WEIGHTS[int(k)] for k in ks])
        k_prob /= k_prob.sum()
    else:
        k_prob = np.full(len(ks), 1.0 / len(ks))
    plans: list[ClipPlan] = []
    for split_no, (group, size) in enumerate(_plan_sizes(config).items()):
        unlabeled = group == UNLABELED
        split = "train" if unlabeled else group
        rng = np.random.default_rng([config.seed, 1000 + split_no])
        counts = np.zeros(n_classes)
        chosen: list[tuple[str, ...]] = []
        for _ in range(size):
            k = int(rng.choice(ks, p=k_prob))
            weights = 1.0 / (1.0 + counts - counts.min())
            picks = rng.choice(n_classes, size=k, replace=False, p=weights / weights.sum())
            counts[picks] += 1
            chosen.append(tuple(OPENMIC_CLASSES[i] for i in sorted(picks)))
        mask_rng = np.random.default_rng([config.seed, 2000 + split_no])
        known = _unknown_mask(chosen, config.unknown_fraction, mask_rng) & (not unlabeled)
        seeds = np.random.SeedSequence([config.seed, 3000 + split_no]).generate_state(max(size, 1))
        for i in range(size):
            plans.append(ClipPlan(split=split, id=f"{group}_{i:05d}", classes=chosen[i], seed=int(seeds[i]),
                                  known=tuple(bool(v) for v in known[i]), unlabeled=unlabeled))
    return plans


def _unknown_mask(chosen: list[tuple[str, ...]], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``(n, C)`` bool known-mask with ``round(fraction * n * C)`` unknown entries."""
    n, c = len(chosen), len(OPENMIC_CLASSES)
    known = np.ones((n, c), dtype=bool)
    if n == 0 or fraction <= 0:
        return known
    flat = rng.choice(n * c, size=int(round(fraction * n * c)), replace=False)
    known.reshape(-1)[flat] = False
    labels = np.array([[name in clip for name in OPENMIC_CLASSES] for clip in chosen])
    for j in range(c):  # every class keeps a known positive
        pos = np.flatnonzero(labels[:, j])
        if pos.size and not known[pos, j].any():
            known[pos[0], j] = True
    return known


def _render_one(plan: ClipPlan, audio_root: str, seconds: float, sample_rate: int) -> str:
    from pipeline.audio import write_audio

    audio = render_clip(plan.classes, seconds=seconds, sample_rate=sample_rate, seed=plan.seed)
    write_audio(Path(audio_root) / plan.audio_path, audio, sample_rate)
    return plan.id


def _render_all(
    plans: list[ClipPlan], audio_root: Path, config: DemoConfig, workers: int, progress: bool
) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(plans), desc="render demo", unit="clip", disable=not progress, leave=False)
    args = (str(audio_root), config.clip_seconds, config.sample_rate)
    try:
        if workers > 1 and len(plans) >= 16:
            try:
                # spawn, not fork: the parent may hold threads (tqdm, torch) that fork would copy mid-lock
                with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                    futures = [pool.submit(_render_one, plan, *args) for plan in plans]
                    for future in futures:
                        future.result()
                        bar.update()
                return
            except BrokenProcessPool as exc:  # e.g. a __main__ that cannot be re-imported (stdin)
                log.warning("render processes failed (%s); rendering in this process instead", exc)
                bar.reset()
        for plan in plans:
            _render_one(plan, *args)
            bar.update()
    finally:
        bar.close()


def _remove_stale(audio_root: Path, plans: list[ClipPlan]) -> int:
    """Delete demo FLACs of a previous, larger render that this plan does not make."""
    wanted = {plan.audio_path for plan in plans}
    removed = 0
    for split in (*SPLITS, UNLABELED):
        for path in sorted((audio_root / split).glob(f"{split}_*.flac")):
            if f"{split}/{path.name}" not in wanted:
                path.unlink()
                removed += 1
    return removed


LABELS_FILE = "labels.csv"


def write_labels_csv(path: Path, plans: Sequence[ClipPlan]) -> None:
    """The demo's labels as a folder-builder CSV: ``id,split,<20 classes>`` (1, 0, empty = unknown)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "split", *OPENMIC_CLASSES])
    for plan in plans:
        cells = [str(v) if k else "" for v, k in zip(plan.labels, plan.known)]
        writer.writerow([plan.id, plan.split, *cells])
    write_atomic(path, out.getvalue())


def render_audio(config: DemoConfig, audio_root: Path | str, *, workers: int = 2,
                 progress: bool = True) -> tuple[list[ClipPlan], list[str]]:
    """Render the demo's FLAC files and ``labels.csv`` into ``audio_root`` (no manifests).

    Returns:
        ``(plans, warnings)``.
    """
    audio_root = Path(audio_root)
    plans = plan_demo(config)
    audio_root.mkdir(parents=True, exist_ok=True)
    removed = _remove_stale(audio_root, plans)
    warnings = [f"removed {removed} stale demo file(s) from an earlier, larger render"] if removed else []
    _render_all(plans, audio_root, config, workers, progress)
    write_labels_csv(audio_root / LABELS_FILE, plans)
    return plans, warnings


@register_builder("demo")
def build(
    *,
    config: DemoConfig | None = None,
    audio_root: Path | str = "data/demo",
    manifests_dir: Path | str = "data_manifests/demo",
    workers: int = 2,
    progress: bool = True,
    dry_run: bool = False,
    render: bool = True,
    labels_csv: Path | str | None = None,
    threads: int = 4,
) -> BuildReport:
    """Render the demo set and write its manifests.

    Args:
        config: sizes, seed and mixing settings (``params.yaml`` section ``demo``).
        audio_root: FLAC files go to ``<audio_root>/<split>/<id>.flac``, labels to ``labels.csv``.
        manifests_dir: where ``{train,valid,test}.jsonl``, ``classes.json``, ``report.json`` go.
        workers: render processes (1 renders in this process).
        progress: show a tqdm progress bar.
        dry_run: plan only; write nothing.
        render: False reads audio rendered before (``dvc repro``'s ``render`` stage) through
            its ``labels.csv`` with the folder builder, instead of rendering.
        labels_csv: with ``render=False``, the labels file (default ``<audio_root>/labels.csv``).
        threads: with ``render=False``, concurrent audio header reads.

    Returns:
        The :class:`BuildReport` (also written to ``<manifests_dir>/report.json``).
    """
    if not render:
        from pipeline.datasets.folder import build as build_folder

        labels_csv = Path(labels_csv or Path(audio_root) / LABELS_FILE)
        if not labels_csv.is_file():
            raise ManifestError(f"{labels_csv} not found: the demo audio has not been rendered there; run "
                                "`pipeline prepare demo` (renders and writes manifests) or `dvc repro`")
        return build_folder(root=audio_root, labels_csv=labels_csv,
                            manifests_dir=manifests_dir, classes=OPENMIC_CLASSES, threads=threads,
                            dry_run=dry_run, dataset="demo")
    started = time.perf_counter()
    config = config or DemoConfig()
    audio_root = Path(audio_root)
    plans = plan_demo(config)
    warnings: list[str] = []
    if not dry_run:
        plans, warnings = render_audio(config, audio_root, workers=workers, progress=progress)
    clips: dict[str, list[Clip]] = {split: [] for split in SPLITS}
    for plan in plans:
        clips[plan.split].append(Clip(
            id=plan.id, audio_path=plan.audio_path, duration=float(config.clip_seconds),
            sample_rate=config.sample_rate, labels=plan.labels, known=plan.known,
        ))
    render_seconds = time.perf_counter() - started
    report = write_outputs(
        dataset="demo", manifests_dir=manifests_dir, audio_root=audio_root, classes=OPENMIC_CLASSES,
        split_clips=clips, warnings=warnings, started=started, dry_run=dry_run,
        options={**to_mapping(config), "workers": workers, "render_seconds": round(render_seconds, 3)},
    )
    log.info("demo: %d clips in %.1f s", len(plans), report.seconds)
    return report
