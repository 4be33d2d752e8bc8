"""OpenMIC-2018 from its official layout.

Expected under ``--root`` (the unpacked ``openmic-2018-v1.0.0.tgz``)::

    openmic-2018.npz            Y_true (N, 20) float, Y_mask (N, 20) bool, sample_key (N,)
    class-map.json              {"accordion": 0, ...}
    audio/<key[:3]>/<key>.ogg
    partitions/split01_train.csv, partitions/split01_test.csv   (one sample_key per line)

Splits: the official ``split01`` train/test partition (14,915 / 5,085 clips), read from
``--split-dir``, else ``<root>/partitions``; when the root has no ``partitions/`` folder, the copies
committed in ``data_manifests/openmic/splits/`` are used (the report's ``options.split_source`` says
which). Validation is taken from train exactly as in the EAsT paper's code: ``random.seed(2022)``
and one ``random.uniform(0, 1) < 0.15`` draw per train line, in file order (2,223 clips).

Labels, two rules (``label_rule``):

* ``mask`` (default): known where ``Y_mask`` is true and ``Y_true != 0.5``; positive where
  ``Y_true > 0.5``. ``Y_mask`` is the dataset's own statement of which labels were
  annotated; a confidence of exactly 0.5 among them is a tie and carries no label either.
* ``paper``: the EAsT code's rule, which ignores ``Y_mask``: ``Y_true > 0.5`` positive,
  ``< 0.5`` negative, ``== 0.5`` unknown. It agrees with ``mask`` wherever unannotated
  entries hold exactly 0.5; the report counts the entries where the two rules differ.
"""
from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path

import numpy as np

import pipeline
from pipeline.datasets.base import (
    BuildReport,
    Probe,
    probe_audio,
    read_text,
    register_builder,
    split_probes,
    write_outputs,
)
from pipeline.errors import ConfigError, ManifestError
from pipeline.manifests import SPLITS, Clip

log = logging.getLogger(__name__)

LABEL_RULES = ("mask", "paper")
SPLIT_FILES = {"train": "split01_train.csv", "test": "split01_test.csv"}
OFFICIAL_SIZES = (14915, 5085)  # split01 train/test keys; the 0.15 draw then moves 2,223 train keys to valid
#: The official split01 lists committed with the repository (cosmir/openmic-2018), used when the
#: dataset root has no partitions/ folder and no --split-dir is given.
COMMITTED_SPLIT_DIR = Path(pipeline.__file__).resolve().parents[1] / "data_manifests" / "openmic" / "splits"


def read_partition(path: Path) -> list[str]:
    """Sample keys of a partition CSV (one per line; an optional ``sample_key`` header)."""
    if not path.is_file():
        raise ManifestError(f"OpenMIC partition {str(path)!r} not found; it ships in the dataset archive "
                            "under partitions/ (or pass --split-dir DIR holding split01_train.csv and "
                            "split01_test.csv)")
    text, warning = read_text(path)
    if warning:
        log.warning(warning)
    keys = []
    for number, line in enumerate(text.splitlines(), start=1):
        key = line.strip().split(",")[0].strip()
        if not key or (number == 1 and key.lower() == "sample_key"):
            continue
        keys.append(key)
    return keys


def resolve_split_dir(root: Path, split_dir: Path | str | None) -> tuple[Path, str]:
    """``(folder, source)``: ``--split-dir``, else ``<root>/partitions``, else the committed lists."""
    if split_dir is not None:
        return Path(split_dir), "--split-dir"
    partitions = root / "partitions"
    committed = all((COMMITTED_SPLIT_DIR / name).is_file() for name in SPLIT_FILES.values())
    if not partitions.is_dir() and committed:
        return COMMITTED_SPLIT_DIR, "committed data_manifests/openmic/splits"
    return partitions, "<root>/partitions"


def validation_split(
    train_keys: list[str], fraction: float = 0.15, seed: int = 2022
) -> tuple[list[str], list[str]]:
    """Split ``train_keys`` into (train, valid) like the EAsT code: one uniform draw per key."""
    draw = random.Random(seed)
    train: list[str] = []
    valid: list[str] = []
    for key in train_keys:
        (valid if draw.uniform(0, 1) < fraction else train).append(key)
    return train, valid


def openmic_labels(
    y_true: np.ndarray, y_mask: np.ndarray, rule: str = "mask"
) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, known)`` bool arrays from the npz's ``Y_true``/``Y_mask`` by ``rule``."""
    if rule not in LABEL_RULES:
        raise ConfigError(f"unknown OpenMIC label rule {rule!r}; choose one of {', '.join(LABEL_RULES)}")
    labels = y_true > 0.5
    if rule == "paper":
        known = y_true != 0.5
    else:
        known = y_mask.astype(bool) & (y_true != 0.5)
    return labels, known


def _load_npz(path: Path, allow_pickle: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not path.is_file():
        raise ManifestError(f"{str(path)!r} not found; --root must be the unpacked OpenMIC-2018 folder")
    try:
        with np.load(path, allow_pickle=allow_pickle) as data:
            missing = [k for k in ("Y_true", "Y_mask", "sample_key") if k not in data.files]
            if missing:
                raise ManifestError(f"{path} lacks {', '.join(missing)} (has {', '.join(data.files)})")
            return (np.asarray(data["Y_true"], dtype=np.float64), np.asarray(data["Y_mask"], dtype=bool),
                    np.asarray(data["sample_key"]).astype(str))
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ManifestError(
                f"{path} stores Python objects; rerun with --allow-pickle if you trust the file") from None
        raise ManifestError(f"{path} cannot be read ({exc})") from None


def read_classes(path: Path) -> list[str]:
    """Class names of ``class-map.json`` (``{"accordion": 0, ...}``), in the order of their column index.

    Raises:
        ManifestError: the file is absent.
    """
    if not path.is_file():
        raise ManifestError(f"{str(path)!r} not found; --root must be the unpacked OpenMIC-2018 folder")
    class_map = json.loads(path.read_text(encoding="utf-8"))
    return [name for name, _ in sorted(class_map.items(), key=lambda kv: int(kv[1]))]


def _read_dataset(root: Path, allow_pickle: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(Y_true (n, c) float64, Y_mask (n, c) bool, sample keys (n,) str, c class names)`` under ``root``.

    Raises:
        ManifestError: a file is absent or unreadable, or the shapes do not fit together.
    """
    y_true, y_mask, keys = _load_npz(root / "openmic-2018.npz", allow_pickle)
    classes = read_classes(root / "class-map.json")
    if y_true.shape != y_mask.shape or y_true.shape != (len(keys), len(classes)):
        raise ManifestError(f"{root}: Y_true {y_true.shape}, Y_mask {y_mask.shape}, {len(keys)} sample keys "
                            f"and {len(classes)} classes do not fit together")
    return y_true, y_mask, keys, classes


def rule_differences(y_true: np.ndarray, y_mask: np.ndarray) -> int:
    """How many label entries are known under one of :data:`LABEL_RULES` and unknown under the other."""
    _, paper_known = openmic_labels(y_true, y_mask, "paper")
    _, mask_known = openmic_labels(y_true, y_mask, "mask")
    return int(np.count_nonzero(paper_known != mask_known))


def _split_keys(split_dir: Path, valid_fraction: float, valid_seed: int) -> tuple[dict[str, list[str]], str]:
    """``(sample keys per split, note)`` from the split01 partitions in ``split_dir``, valid drawn from train.

    ``note`` is empty, or says how the partition sizes differ from the official split01.
    """
    train_keys = read_partition(split_dir / SPLIT_FILES["train"])
    test_keys = read_partition(split_dir / SPLIT_FILES["test"])
    if (len(train_keys), len(test_keys)) != OFFICIAL_SIZES:
        size_note = (f"partition files hold {len(train_keys)}/{len(test_keys)} train/test keys, the official "
                     f"split01 has {OFFICIAL_SIZES[0]}/{OFFICIAL_SIZES[1]}")
    else:
        size_note = ""
    train_keys, valid_keys = validation_split(train_keys, valid_fraction, valid_seed)
    return {"train": train_keys, "valid": valid_keys, "test": test_keys}, size_note


def _clips(probes: list[Probe], row: dict[str, int], labels: np.ndarray, known: np.ndarray) -> dict[str, list[Clip]]:
    """Clips per split of the readable ``probes``; ``labels``/``known`` are (n keys, 20) bool, ``row`` indexes them."""
    clips: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    for probe in probes:
        if probe.problem:
            continue
        i = row[probe.id]
        clips[probe.split].append(Clip(probe.id, probe.path, probe.duration, probe.sample_rate,
                                       tuple(int(v) for v in labels[i]), tuple(bool(v) for v in known[i])))
    return clips


@register_builder("openmic")
def build(
    *,
    root: Path | str,
    manifests_dir: Path | str,
    split_dir: Path | str | None = None,
    label_rule: str = "mask",
    valid_fraction: float = 0.15,
    valid_seed: int = 2022,
    allow_pickle: bool = False,
    threads: int = 4,
    dry_run: bool = False,
) -> BuildReport:
    """Build OpenMIC-2018 manifests (layout, splits and label rules in the module doc).

    Args:
        root: the unpacked dataset; manifests' audio paths are relative to it.
        manifests_dir: output folder.
        split_dir: folder with ``split01_train.csv``/``split01_test.csv``; default ``<root>/partitions``,
            or the committed ``data_manifests/openmic/splits`` when the root has no ``partitions/``.
        label_rule: ``mask`` (default) or ``paper``.
        valid_fraction, valid_seed: the validation draw (paper: 0.15, 2022).
        allow_pickle: let numpy unpickle an object-typed ``sample_key`` (only for a trusted file).
        threads: concurrent audio header reads.
        dry_run: check everything, write nothing.
    """
    started = time.perf_counter()
    root = Path(root)
    y_true, y_mask, keys, classes = _read_dataset(root, allow_pickle)
    labels, known = openmic_labels(y_true, y_mask, label_rule)
    rule_diff = rule_differences(y_true, y_mask)
    row = {key: i for i, key in enumerate(keys)}

    split_dir, split_source = resolve_split_dir(root, split_dir)
    split_keys, size_note = _split_keys(split_dir, valid_fraction, valid_seed)

    missing_keys = [{"split": s, "id": k, "path": "(not in openmic-2018.npz)"}
                    for s, ks in split_keys.items() for k in ks if k not in row]
    items = [(s, k, f"audio/{k[:3]}/{k}.ogg") for s, ks in split_keys.items() for k in ks if k in row]
    probes = probe_audio(root, items, threads=threads)
    clips = _clips(probes, row, labels, known)
    missing, unreadable = split_probes(probes)
    warnings = [size_note] if size_note else []
    if split_source.startswith("committed"):
        warnings.append(f"{root} has no partitions/ folder; used the split01 lists committed in {split_dir}")
    unsplit = len(keys) - len({k for ks in split_keys.values() for k in ks} & set(row))
    if unsplit:
        warnings.append(
            f"{unsplit} clip(s) of openmic-2018.npz are in neither partition file and were left out")
    if rule_diff:
        warnings.append(f"{rule_diff} label entries are known under one label rule and unknown under the "
                        f"other (using {label_rule!r}; see `pipeline prepare openmic --help`)")
    return write_outputs(
        dataset="openmic", manifests_dir=manifests_dir, audio_root=root, classes=classes, split_clips=clips,
        missing=missing_keys + missing, unreadable=unreadable, warnings=warnings, started=started,
        dry_run=dry_run,
        options={"root": str(root), "split_dir": str(split_dir), "split_source": split_source,
                 "label_rule": label_rule,
                 "valid_fraction": valid_fraction, "valid_seed": valid_seed, "rule_differences": rule_diff},
    )
