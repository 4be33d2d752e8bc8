"""A user's own data: a folder of audio files and a CSV of labels.

Two CSV layouts are understood (first row is the header; the audio column may be called
``file``, ``path``, ``filename``, ``audio`` or ``audio_path``; paths are relative to the folder):

* **tags**: a ``tags`` column holding the positive classes of the file, separated by ``;``,
  ``|`` or ``,`` (quote the field in the CSV when using commas). Every other class is a
  known negative. Classes are the sorted union of all tags unless given explicitly.
* **one column per class**: ``1`` positive, ``0`` negative, empty (or ``?``) unknown.

An optional ``split`` column (``train``/``valid``/``test``; ``val``/``validation`` accepted)
assigns splits; without it a seeded random split with the given fractions is made.
Files listed but absent or unreadable are reported and left out; audio files in the folder
that the CSV does not list are counted in a warning.
"""
from __future__ import annotations

import csv
import re
import time
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np

from pipeline.datasets.base import BuildReport, probe_audio, register_builder, split_probes, write_outputs
from pipeline.errors import ManifestError
from pipeline.manifests import SPLITS, Clip

FILE_COLUMNS = ("file", "path", "filename", "audio", "audio_path")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")
_SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "val": "valid",
                "validation": "valid", "dev": "valid", "test": "test", "eval": "test", "evaluation": "test"}
_TAG_SEPARATORS = re.compile(r"[;|,]")


def _read_rows(labels_csv: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    if not labels_csv.is_file():
        raise ManifestError(f"label file {str(labels_csv)!r} not found; pass --labels PATH")
    try:
        return _parse_rows(labels_csv)
    except UnicodeDecodeError as exc:  # found by benchmarks/fuzz_inputs.py
        raise ManifestError(
            f"{labels_csv}: byte {exc.start} is not UTF-8; save the label file as UTF-8") from None


def _parse_rows(labels_csv: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    with open(labels_csv, newline="", encoding="utf-8-sig") as handle:
        first = handle.readline()
        handle.seek(0)
        # the header decides the delimiter (tab, comma or semicolon), so tag lists may hold ';'
        delimiter = max("\t,;", key=first.count) if any(d in first for d in "\t,;") else ","
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = [(number, {k: (v or "").strip() for k, v in row.items() if k is not None})
                for number, row in enumerate(reader, start=2)]
    if not header:
        raise ManifestError(f"{labels_csv} is empty; it needs a header row")
    return header, rows


def _parse_cell(value: str, where: str) -> tuple[int, bool]:
    """A per-class cell -> (label, known)."""
    if value in ("", "?", "-", "na", "nan", "unknown"):
        return 0, False
    try:
        number = float(value)
    except ValueError:
        raise ManifestError(f"{where}: label {value!r} is not 1, 0 or empty (unknown)") from None
    if number not in (0.0, 1.0):
        raise ManifestError(f"{where}: label {value!r} is not 1, 0 or empty (unknown)")
    return int(number), True


def _random_split(ids: Sequence[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ManifestError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    order = sorted(ids)
    perm = np.random.default_rng(seed).permutation(len(order))
    n_valid = int(round(fractions[1] * len(order)))
    n_test = int(round(fractions[2] * len(order)))
    assigned = {}
    for rank, index in enumerate(perm):
        split = "valid" if rank < n_valid else "test" if rank < n_valid + n_test else "train"
        assigned[order[index]] = split
    return assigned


@register_builder("folder")
def build(
    *,
    root: Path | str,
    labels_csv: Path | str,
    manifests_dir: Path | str,
    classes: Sequence[str] | None = None,
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    threads: int = 4,
    dry_run: bool = False,
) -> BuildReport:
    """Build manifests for a folder of audio and a label CSV (layouts in the module doc).

    Args:
        root: the audio folder; manifests' paths are relative to it.
        labels_csv: the CSV of labels.
        manifests_dir: output folder.
        classes: class names and order; default: from the CSV (tag union, or class columns).
        fractions: train/valid/test shares for the random split (without a split column).
        seed: random split seed.
        threads: concurrent audio header reads.
        dry_run: check everything, write nothing.

    Raises:
        ManifestError: missing CSV, no audio column, bad label values, duplicate files,
            unknown split names, or tags not among explicit ``classes``.
    """
    started = time.perf_counter()
    root, labels_csv = Path(root), Path(labels_csv)
    if not root.is_dir():
        raise ManifestError(f"audio folder {str(root)!r} not found; pass --root DIR")
    header, rows = _read_rows(labels_csv)
    file_col = next((h for h in header if h.lower() in FILE_COLUMNS), None)
    if file_col is None:
        raise ManifestError(f"{labels_csv}: no audio file column; name one of {', '.join(FILE_COLUMNS)} "
                            f"(header is {header})")
    split_col = next((h for h in header if h.lower() == "split"), None)
    tags_col = next((h for h in header if h.lower() == "tags"), None)
    class_cols = [h for h in header if h not in (file_col, split_col, tags_col) and h]

    records: list[tuple[str, str, tuple[int, ...], tuple[bool, ...], str | None]] = []
    if tags_col is not None:
        tag_lists = {n: [t.strip() for t in _TAG_SEPARATORS.split(row.get(tags_col, "")) if t.strip()]
                     for n, row in rows}
        names = list(classes) if classes else sorted({t for tags in tag_lists.values() for t in tags})
        unknown_tags = sorted({t for tags in tag_lists.values() for t in tags} - set(names))
        if unknown_tags:
            raise ManifestError(
                f"{labels_csv}: tag(s) {', '.join(unknown_tags)} are not in the given classes")
    else:
        if classes:
            absent = [c for c in classes if c not in class_cols]
            if absent:
                raise ManifestError(f"{labels_csv}: no column for class(es) {', '.join(absent)}")
        names = list(classes) if classes else class_cols
    if not names:
        raise ManifestError(f"{labels_csv}: no classes found (need a 'tags' column or one column per class)")

    seen: dict[str, int] = {}
    for number, row in rows:
        rel = row.get(file_col, "")
        if not rel:
            raise ManifestError(f"{labels_csv}:{number}: empty {file_col!r}")
        rel = PurePosixPath(rel.replace("\\", "/")).as_posix()
        clip_id = str(PurePosixPath(rel).with_suffix(""))
        if clip_id in seen:
            raise ManifestError(f"{labels_csv}:{number}: {rel!r} repeats line {seen[clip_id]} "
                                "(ids are paths without suffix and must be unique)")
        seen[clip_id] = number
        if tags_col is not None:
            present = set(tag_lists[number])
            labels = tuple(int(n in present) for n in names)
            known = (True,) * len(names)
        else:
            parsed = [_parse_cell(row.get(c, ""), f"{labels_csv}:{number} column {c!r}") for c in names]
            labels = tuple(p[0] for p in parsed)
            known = tuple(p[1] for p in parsed)
        split = None
        if split_col is not None:
            value = row.get(split_col, "").lower()
            if value not in _SPLIT_NAMES:
                raise ManifestError(
                    f"{labels_csv}:{number}: split {value!r} is not one of train, valid, test")
            split = _SPLIT_NAMES[value]
        records.append((clip_id, rel, labels, known, split))

    if split_col is None:
        assigned = _random_split([r[0] for r in records], tuple(fractions), seed)  # type: ignore[arg-type]
        records = [(i, p, lab, kn, assigned[i]) for i, p, lab, kn, _ in records]
    probes = probe_audio(root, [(r[4] or "train", r[0], r[1]) for r in records], threads=threads)
    clips: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    for (clip_id, rel, labels, known, split), probe in zip(records, probes):
        if not probe.problem:
            clip = Clip(clip_id, rel, probe.duration, probe.sample_rate, labels, known)
            clips[split or "train"].append(clip)
    missing, unreadable = split_probes(probes)
    listed = {r[1] for r in records}
    extra = [p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
             and p.relative_to(root).as_posix() not in listed]
    warnings = []
    if extra:
        warnings.append(f"{len(extra)} audio file(s) in {root} are not in {labels_csv.name} and were ignored "
                        f"(e.g. {extra[0].relative_to(root).as_posix()})")
    return write_outputs(
        dataset="folder", manifests_dir=manifests_dir, audio_root=root, classes=names, split_clips=clips,
        missing=missing, unreadable=unreadable, warnings=warnings, started=started, dry_run=dry_run,
        options={"root": str(root), "labels_csv": str(labels_csv), "fractions": list(fractions), "seed": seed,
                 "split_column": split_col is not None, "layout": "tags" if tags_col else "columns"},
    )
