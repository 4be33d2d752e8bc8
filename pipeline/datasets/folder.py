"""A user's own data: a folder of audio files and a CSV of labels.

The CSV's first row is the header. Each row names its audio in one of two ways:

* a **file column** (``file``, ``path``, ``filename``, ``audio``, ``audio_path``): a path
  relative to the folder, or an absolute path;
* an **id column** (``id``, ``sample_key``, ``clip_id``, ``track_id``, ``key``): the
  file is ``<id>.<any readable extension>`` found anywhere below the folder (searched
  recursively; when several files share the id, the first of :data:`AUDIO_SUFFIXES` wins and
  a warning says so).

Labels, in either layout (or both):

* **tags**: a ``tags`` column holding the positive classes, separated by ``;``, ``|`` or ``,``
  (quote the field when using commas). Every other class is a known negative. Classes are
  the sorted union of all tags unless given explicitly.
* **one column per class**: ``1`` positive, ``0`` negative, empty (or ``?``) unknown.
* both: the class columns win; rows whose tags disagree with them are counted in a warning.

An optional ``split`` column (``train``/``valid``/``test``; ``val``/``validation`` accepted)
assigns splits; without it a seeded random split with the given fractions is made.

What users hand over is accepted as it is: a UTF-8 BOM, CRLF line ends, ``,``/``;``/tab
separators (the header decides), names in either Unicode normal form (a CSV typed in NFC
matches files copied from macOS in NFD). A CSV that is not UTF-8 is read as Windows-1252
(what Excel writes on Windows) with a warning naming the first non-UTF-8 byte; one that is
neither is an error naming the file and the byte offset. Files listed but absent or
unreadable are reported and left out; audio files in the folder that the CSV does not list
are counted in a warning.

Unlabeled audio: every audio file below each ``unlabeled`` folder (which must lie inside the
audio folder) joins the train split with every label unknown (labels 0, known all False):
such clips feed only the teacher terms of training. Their ids are their paths without suffix.
A file the CSV lists stays labelled (one warning counts them); unreadable files are reported
and left out like any other.
"""
from __future__ import annotations

import csv
import io
import re
import time
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np

from pipeline.datasets.base import (
    BuildReport,
    Probe,
    length_warnings,
    probe_audio,
    read_text,
    register_builder,
    split_probes,
    write_outputs,
)
from pipeline.errors import ManifestError
from pipeline.audio import AUDIO_SUFFIXES
from pipeline.manifests import SPLITS, Clip

FILE_COLUMNS = ("file", "path", "filename", "audio", "audio_path")
ID_COLUMNS = ("id", "sample_key", "clip_id", "track_id", "key")
_SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "val": "valid",
                "validation": "valid", "dev": "valid", "test": "test", "eval": "test", "evaluation": "test"}
_TAG_SEPARATORS = re.compile(r"[;|,]")
_UNKNOWN = ("", "?", "-", "na", "nan", "unknown")


def nfc(text: str) -> str:
    """``text`` in Unicode normal form C (how names are compared)."""
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Columns:
    """Which header column plays which role."""

    file: str | None
    id: str | None
    split: str | None
    tags: str | None
    classes: tuple[str, ...]


@dataclass(frozen=True)
class Row:
    """One CSV row, parsed.

    Attributes:
        line: line number in the CSV (the header is line 1).
        clip_id: the clip's id (the id column, else the path without suffix).
        audio_path: path relative to the audio folder (posix), or absolute; empty until resolved.
        labels: one 0/1 per class.
        known: one bool per class (False = unknown).
        split: ``train``/``valid``/``test``, or None until assigned.
    """

    line: int
    clip_id: str
    audio_path: str
    labels: tuple[int, ...]
    known: tuple[bool, ...]
    split: str | None


# --- step 1: the table ---------------------------------------------------------------------------

def read_table(labels_csv: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]], list[str]]:
    """``(header, [(line, row)], warnings)`` of the CSV; all text NFC-normalised and stripped."""
    if not labels_csv.is_file():
        raise ManifestError(f"label file {str(labels_csv)!r} not found; pass --labels PATH")
    text, warning = read_text(labels_csv)
    text = nfc(text)
    first = text.splitlines()[0] if text.strip() else ""
    # the header decides the delimiter (tab, comma or semicolon), so tag lists may hold ';'
    delimiter = max("\t,;", key=first.count) if any(d in first for d in "\t,;") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not any(header):
        raise ManifestError(f"{labels_csv} is empty; it needs a header row")
    reader.fieldnames = header
    rows = [(number, {k: (v or "").strip() for k, v in row.items() if k is not None})
            for number, row in enumerate(reader, start=2)]
    return header, [r for r in rows if any(r[1].values())], [warning] if warning else []


def find_columns(header: Sequence[str], labels_csv: Path) -> Columns:
    """The role of each column; the audio is named by a file column or an id column."""
    def pick(names: Sequence[str]) -> str | None:
        return next((h for name in names for h in header if h.lower() == name), None)

    file_col, id_col = pick(FILE_COLUMNS), pick(ID_COLUMNS)
    if file_col is None and id_col is None:
        raise ManifestError(
            f"{labels_csv}: no audio file column; name a file column ({', '.join(FILE_COLUMNS)}) or an id "
            f"column ({', '.join(ID_COLUMNS)}; files are then <id>.<ext> anywhere below the folder) "
            f"(header is {list(header)})")
    split_col, tags_col = pick(["split"]), pick(["tags"])
    roles = {file_col, id_col, split_col, tags_col}
    return Columns(file_col, id_col, split_col, tags_col, tuple(h for h in header if h and h not in roles))


def _tags(row: dict[str, str], column: str | None) -> list[str]:
    return [t.strip() for t in _TAG_SEPARATORS.split(row.get(column, "") if column else "") if t.strip()]


def class_names(columns: Columns, rows: Sequence[tuple[int, dict[str, str]]], classes: Sequence[str] | None,
                labels_csv: Path) -> list[str]:
    """Class names in label order: given, else the class columns, else the union of the tags."""
    given = [nfc(c) for c in classes] if classes else None
    if columns.classes:
        names = given or list(columns.classes)
        absent = [c for c in names if c not in columns.classes]
        if absent:
            raise ManifestError(f"{labels_csv}: no column for class(es) {', '.join(absent)}")
    elif columns.tags is not None:
        seen = sorted({t for _, row in rows for t in _tags(row, columns.tags)})
        names = given or seen
        unknown = sorted(set(seen) - set(names))
        if unknown:
            raise ManifestError(f"{labels_csv}: tag(s) {', '.join(unknown)} are not in the given classes")
    else:
        names = []
    if not names:
        raise ManifestError(f"{labels_csv}: no classes found (need a 'tags' column or one column per class)")
    return names


# --- step 2: rows --------------------------------------------------------------------------------

def _parse_cell(value: str, where: str) -> tuple[int, bool]:
    """A per-class cell -> (label, known)."""
    if value.lower() in _UNKNOWN:
        return 0, False
    try:
        number = float(value)
    except ValueError:
        raise ManifestError(f"{where}: label {value!r} is not 1, 0 or empty (unknown)") from None
    if number not in (0.0, 1.0):
        raise ManifestError(f"{where}: label {value!r} is not 1, 0 or empty (unknown)")
    return int(number), True


def _row_labels(row: dict[str, str], number: int, columns: Columns, names: Sequence[str],
                labels_csv: Path) -> tuple[tuple[int, ...], tuple[bool, ...], bool]:
    """``(labels, known, tags_disagree)`` of one row."""
    tags = set(_tags(row, columns.tags))
    if not columns.classes:
        return tuple(int(n in tags) for n in names), (True,) * len(names), False
    parsed = [_parse_cell(row.get(c, ""), f"{labels_csv}:{number} column {c!r}") for c in names]
    labels, known = tuple(p[0] for p in parsed), tuple(p[1] for p in parsed)
    if columns.tags is None:
        return labels, known, False
    from_columns = {n for n, lab, kn in zip(names, labels, known) if kn and lab}
    unknown_names = {n for n, kn in zip(names, known) if not kn}
    disagree = (tags - unknown_names) != from_columns
    return labels, known, disagree


def _split_of(row: dict[str, str], number: int, column: str | None, labels_csv: Path) -> str | None:
    if column is None:
        return None
    value = row.get(column, "").lower()
    if value not in _SPLIT_NAMES:
        raise ManifestError(f"{labels_csv}:{number}: split {value!r} is not one of train, valid, test")
    return _SPLIT_NAMES[value]


def _relative(written: str, root: Path) -> str:
    """A CSV path as posix, relative to ``root`` when it lies below it (absolute otherwise)."""
    path = PurePosixPath(written.replace("\\", "/"))
    if path.is_absolute():
        resolved = Path(path).resolve()
        if resolved.is_relative_to(root.resolve()):
            return resolved.relative_to(root.resolve()).as_posix()
    return path.as_posix()


def _clip_id(row: dict[str, str], number: int, columns: Columns, root: Path,
             labels_csv: Path) -> tuple[str, str]:
    """``(clip id, path relative to root (or absolute), or '' with an id column)``."""
    if columns.file is not None and row.get(columns.file):
        rel = _relative(row[columns.file], root)
        clip_id = row.get(columns.id, "") if columns.id else ""
        return clip_id or str(PurePosixPath(rel).with_suffix("")).lstrip("/"), rel
    if columns.id is not None and row.get(columns.id):
        return row[columns.id], ""
    raise ManifestError(f"{labels_csv}:{number}: empty {columns.file or columns.id!r}")


def parse_rows(rows: Sequence[tuple[int, dict[str, str]]], columns: Columns, names: Sequence[str],
               root: Path, labels_csv: Path) -> tuple[list[Row], dict[str, str], list[str]]:
    """Rows with ids, labels and splits; ``written`` maps ids to the path the CSV gave."""
    parsed: list[Row] = []
    written: dict[str, str] = {}
    seen: dict[str, int] = {}
    disagreeing: list[int] = []
    for number, row in rows:
        clip_id, rel = _clip_id(row, number, columns, root, labels_csv)
        if clip_id in seen:
            raise ManifestError(f"{labels_csv}:{number}: {clip_id!r} repeats line {seen[clip_id]} "
                                "(ids are the id column, else paths without suffix, and must be unique)")
        seen[clip_id] = number
        labels, known, disagree = _row_labels(row, number, columns, names, labels_csv)
        if disagree:
            disagreeing.append(number)
        written[clip_id] = rel
        parsed.append(Row(number, clip_id, "", labels, known, _split_of(row, number, columns.split, labels_csv)))
    warnings = []
    if disagreeing:
        warnings.append(f"{len(disagreeing)} row(s) of {labels_csv.name} have a 'tags' column that disagrees "
                        f"with the class columns (first: line {disagreeing[0]}); the class columns win")
    return parsed, written, warnings


# --- step 3: files -------------------------------------------------------------------------------

@dataclass
class AudioIndex:
    """The audio files below a folder, by NFC relative path and by NFC stem."""

    root: Path
    by_path: dict[str, str]
    by_stem: dict[str, list[str]]

    @classmethod
    def scan(cls, root: Path) -> "AudioIndex":
        by_path: dict[str, str] = {}
        by_stem: dict[str, list[str]] = {}
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
                continue
            rel = path.relative_to(root).as_posix()
            by_path[nfc(rel)] = rel
            for key in {nfc(path.stem), nfc(str(PurePosixPath(rel).with_suffix("")))}:
                by_stem.setdefault(key, []).append(rel)
        rank = {s: i for i, s in enumerate(AUDIO_SUFFIXES)}
        for candidates in by_stem.values():
            candidates.sort(key=lambda r: (rank.get(PurePosixPath(r).suffix.lower(), 99), r))
        return cls(root, by_path, by_stem)


def resolve_paths(rows: Sequence[Row], written: dict[str, str], index: AudioIndex) -> tuple[list[Row], list[str]]:
    """Each row's audio path: the CSV's path (matched after NFC), or the file ``<id>.<ext>``.

    Paths that match no file are kept as written, so the probe reports them missing.
    """
    out, ambiguous = [], []
    for row in rows:
        rel = written[row.clip_id]
        if rel:
            path = index.by_path.get(nfc(rel), rel)
        else:
            candidates = index.by_stem.get(nfc(row.clip_id), [])
            if not candidates and nfc(row.clip_id) in index.by_path:  # an id written with its suffix
                candidates = [index.by_path[nfc(row.clip_id)]]
            if len(candidates) > 1:
                ambiguous.append(f"{row.clip_id} ({', '.join(candidates[:3])})")
            path = candidates[0] if candidates else f"{row.clip_id}.*"
        out.append(replace(row, audio_path=path))
    warnings = []
    if ambiguous:
        warnings.append(f"{len(ambiguous)} id(s) match several files, the first suffix of "
                        f"{', '.join(AUDIO_SUFFIXES)} was used: {'; '.join(ambiguous[:3])}")
    return out, warnings


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


def assign_splits(rows: Sequence[Row], fractions: tuple[float, float, float], seed: int) -> list[Row]:
    """Rows without a split column get a seeded random split."""
    if all(r.split is not None for r in rows):
        return list(rows)
    assigned = _random_split([r.clip_id for r in rows], tuple(fractions), seed)  # type: ignore[arg-type]
    return [replace(r, split=assigned[r.clip_id]) for r in rows]


def _inside(folder: Path | str, root: Path) -> str:
    """``folder`` as a posix path relative to ``root`` ('' for root itself).

    ``folder`` is absolute or relative to the working directory; a relative one that does not
    exist there is looked up under ``root``.

    Raises:
        ManifestError: ``folder`` does not exist or lies outside ``root``.
    """
    path = Path(folder)
    if not path.is_absolute() and not path.is_dir() and (root / path).is_dir():
        path = root / path
    resolved = path.resolve()
    if not resolved.is_dir():
        raise ManifestError(f"unlabeled folder {str(folder)!r} not found; pass an existing folder")
    if not resolved.is_relative_to(root.resolve()):
        raise ManifestError(f"unlabeled folder {str(folder)!r} is outside the audio folder {str(root)!r}; manifests' "
                            "paths are relative to it: move or link the folder under data.audio_root (--audio)")
    rel = resolved.relative_to(root.resolve()).as_posix()
    return "" if rel == "." else rel


def unlabeled_rows(folders: Sequence[Path | str], index: AudioIndex, rows: Sequence[Row],
                   n_classes: int) -> tuple[list[Row], list[str]]:
    """Train rows, all labels unknown, for every audio file below ``folders`` that the CSV does not list.

    Args:
        folders: folders inside ``index.root`` (absolute, or relative to the working directory).
        index: the audio files below the audio folder.
        rows: the CSV's rows with resolved paths (their files stay labelled).
        n_classes: labels per clip.

    Returns:
        ``(rows, warnings)``; one warning counts the files that the CSV labels.

    Raises:
        ManifestError: a folder is missing or outside the audio folder.
    """
    prefixes = [_inside(folder, index.root) for folder in folders]
    listed = {nfc(r.audio_path) for r in rows}
    taken = {r.clip_id for r in rows}
    out: list[Row] = []
    labelled = 0
    for key, rel in index.by_path.items():
        if not any(not prefix or key.startswith(nfc(prefix) + "/") for prefix in prefixes):
            continue
        if key in listed:
            labelled += 1
            continue
        clip_id = str(PurePosixPath(rel).with_suffix(""))
        clip_id = rel if clip_id in taken else clip_id  # x.wav next to x.flac: the suffix tells them apart
        taken.add(clip_id)
        out.append(Row(0, clip_id, rel, (0,) * n_classes, (False,) * n_classes, "train"))
    warnings = [f"{labelled} file(s) under the unlabeled folder(s) are listed in the labels CSV and stay labelled"
                ] if labelled else []
    return out, warnings


def _unlisted(index: AudioIndex, rows: Sequence[Row], labels_csv: Path) -> list[str]:
    listed = {nfc(r.audio_path) for r in rows}
    extra = [rel for key, rel in index.by_path.items() if key not in listed]
    if not extra:
        return []
    return [f"{len(extra)} audio file(s) in {index.root} are not in {labels_csv.name} and were ignored "
            f"(e.g. {extra[0]})"]


def _clips(rows: Sequence[Row], probes: Sequence[Probe]) -> dict[str, list[Clip]]:
    """Clips per split of the rows whose probe (same order as ``rows``) found readable audio.

    A row without a split goes to train.
    """
    clips: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    for row, probe in zip(rows, probes):
        if not probe.problem:
            clips[row.split or "train"].append(
                Clip(row.clip_id, row.audio_path, probe.duration, probe.sample_rate, row.labels, row.known))
    return clips


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
    dataset: str = "folder",
    unlabeled: Sequence[Path | str] = (),
) -> BuildReport:
    """Build manifests for a folder of audio and a label CSV (layouts in the module doc).

    Args:
        root: the audio folder; manifests' paths are relative to it.
        labels_csv: the CSV of labels.
        manifests_dir: output folder.
        classes: class names and order; default: from the CSV (class columns, or tag union).
        fractions: train/valid/test shares for the random split (without a split column).
        seed: random split seed.
        threads: concurrent audio header reads.
        dry_run: check everything, write nothing.
        dataset: the name the report gives the dataset.
        unlabeled: folders inside ``root`` whose audio files join train as unlabeled clips.

    Raises:
        ManifestError: missing CSV, undecodable CSV, no audio or id column, bad label values,
            duplicate ids, unknown split names, tags not among explicit ``classes``, or an
            ``unlabeled`` folder that is missing or outside ``root``.
    """
    started = time.perf_counter()
    root, labels_csv = Path(root), Path(labels_csv)
    if not root.is_dir():
        raise ManifestError(f"audio folder {str(root)!r} not found; pass --audio DIR")
    header, table, warnings = read_table(labels_csv)
    columns = find_columns(header, labels_csv)
    names = class_names(columns, table, classes, labels_csv)
    rows, written, more = parse_rows(table, columns, names, root, labels_csv)
    index = AudioIndex.scan(root)
    rows, ambiguous = resolve_paths(rows, written, index)
    rows = assign_splits(rows, fractions, seed)
    extra, more_warnings = unlabeled_rows(unlabeled, index, rows, len(names))
    rows, more = rows + extra, more + more_warnings
    probes = probe_audio(root, [(r.split or "train", r.clip_id, r.audio_path) for r in rows], threads=threads)
    clips = _clips(rows, probes)
    missing, unreadable = split_probes(probes)
    return write_outputs(
        dataset=dataset, manifests_dir=manifests_dir, audio_root=root, classes=names, split_clips=clips,
        missing=missing, unreadable=unreadable,
        warnings=warnings + more + ambiguous + _unlisted(index, rows, labels_csv) + length_warnings(probes),
        started=started, dry_run=dry_run,
        options={"root": str(root), "labels_csv": str(labels_csv), "fractions": list(fractions), "seed": seed,
                 "split_column": columns.split is not None, "id_column": columns.id,
                 "unlabeled": [str(u) for u in unlabeled],
                 "layout": "+".join(k for k, v in (("tags", columns.tags), ("columns", columns.classes)) if v)},
    )
