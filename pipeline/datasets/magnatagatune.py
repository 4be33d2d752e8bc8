"""MagnaTagATune (MTT) from its official layout, with the standard "clean" split.

Expected under ``--root``::

    annotations_final.csv      tab-separated: clip_id, 188 tag columns (0/1), mp3_path
    mp3/<mp3_path>             the audio (``--audio-dir``; default ``mp3`` if present, else the root)

Classes: the 50 most frequent tags over all clips, in descending count order (ties keep
the CSV's column order), as in the EAsT code. There are no unknown labels.

Splits: the standard "clean" split (Lee et al. 2017; Won et al. 2020: 15,247 / 1,529 / 4,332
clips) is not part of the dataset. Give its lists with ``--split-dir DIR``; accepted files
per split (``train``, ``valid``, ``test``), first match wins:

* ``<split>.txt`` or ``<split>.csv``: one clip id or mp3 path per line;
* ``<split>.npy``: a numpy string array of ``"<index>\\t<mp3 path>"`` (sota-music-tagging-models
  ``split/mtat/``);
* ``<split>_list_pub.cP``: the original protocol-0 pickles of Lee et al. (``MTAT_split``),
  parsed as text and never unpickled.

Entries are matched by clip id or by mp3 path (folder and file stem; suffixes ignored).
Without split lists, ``random_split=True`` makes a seeded 70/15/15 split of the clips with
at least one top-50 tag (like the paper repository's ``split_magna.py``; not the paper's split).
"""
from __future__ import annotations

import csv
import io
import logging
import re
import time
from pathlib import Path, PurePosixPath

import numpy as np

from pipeline.datasets.base import (
    BuildReport,
    Probe,
    probe_audio,
    read_text,
    register_builder,
    split_probes,
    write_outputs,
)
from pipeline.errors import ManifestError
from pipeline.manifests import SPLITS, Clip

log = logging.getLogger(__name__)

ANNOTATIONS = "annotations_final.csv"
#: Searched in order when no --split-dir is given (relative paths start at the working directory).
DEFAULT_SPLIT_DIRS = ("data_manifests/magnatagatune/splits", "{root}/split", "{root}/splits")
_PICKLE_STRING = re.compile(r"^a?[SV]'?(.*?)'?$")
WHERE_SPLITS = ("the clean split lists ship with github.com/minzwon/sota-music-tagging-models "
                "(split/mtat/{train,valid,test}.npy) and github.com/jongpillee/music_dataset_split "
                "(MTAT_split/*_list_pub.cP); see data_manifests/magnatagatune/README.md")


def read_annotations(path: Path) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """``(clip_ids, mp3_paths, tag_names, tags (n, 188) uint8)`` of ``annotations_final.csv``."""
    if not path.is_file():
        raise ManifestError(f"{str(path)!r} not found; --root must be the MagnaTagATune folder")
    text, warning = read_text(path)
    if warning:
        log.warning(warning)
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))
    if not rows or "clip_id" not in rows[0] or "mp3_path" not in rows[0]:
        raise ManifestError(f"{path}: header must hold clip_id and mp3_path (tab-separated)")
    header = rows[0]
    id_col, path_col = header.index("clip_id"), header.index("mp3_path")
    tag_cols = [i for i in range(len(header)) if i not in (id_col, path_col)]
    ids, paths, values = [], [], []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ManifestError(f"{path}:{number}: {len(row)} fields, header has {len(header)}")
        try:
            values.append([int(row[i]) for i in tag_cols])
        except ValueError:
            raise ManifestError(f"{path}:{number}: tag values must be 0 or 1") from None
        ids.append(row[id_col].strip())
        paths.append(row[path_col].strip())
    tags = np.asarray(values, dtype=np.uint8).reshape(len(ids), len(tag_cols))
    return ids, paths, [header[i] for i in tag_cols], tags


def top_tags(tags: np.ndarray, names: list[str], n: int = 50) -> list[int]:
    """Column indices of the ``n`` most frequent tags, by descending count (stable on ties)."""
    counts = tags.sum(axis=0)
    order = sorted(range(len(names)), key=lambda j: (-int(counts[j]), j))
    return order[:n]


def _read_split_file(path: Path) -> list[str]:
    if path.suffix == ".npy":
        try:
            return [str(x) for x in np.load(path, allow_pickle=False).reshape(-1)]
        except ValueError as exc:
            raise ManifestError(f"{path} is not a numpy string array ({exc})") from None
    if path.suffix == ".cP":  # a pickle's string opcodes are Latin-1 bytes
        text = path.read_text(encoding="latin-1")
    else:
        text, warning = read_text(path)
        if warning:
            log.warning(warning)
    if path.suffix == ".cP":  # protocol-0 pickle of a list of str: read the string opcodes only
        return [m.group(1) for line in text.splitlines() if (m := _PICKLE_STRING.match(line)) and m.group(1)]
    return [line.split(",")[0].strip() for line in text.splitlines() if line.strip()]


def find_split_files(split_dir: Path) -> dict[str, Path]:
    """The list file of each split in ``split_dir`` (see the module doc for names)."""
    found = {}
    for split in SPLITS:
        for name in (f"{split}.txt", f"{split}.csv", f"{split}.npy", f"{split}_list_pub.cP"):
            if (split_dir / name).is_file():
                found[split] = split_dir / name
                break
    return found


def _entry_keys(entry: str) -> list[str]:
    entry = entry.strip().split("\t")[-1].strip()
    if entry.isdigit():
        return [entry]
    pure = PurePosixPath(entry.replace("\\", "/"))
    stem = pure.with_suffix("").name
    return [f"{pure.parent.name}/{stem}", stem] if pure.parent.name else [stem]


def _resolve_split_dir(root: Path, split_dir: Path | str | None) -> Path | None:
    if split_dir is not None:
        folder = Path(split_dir)
        if not find_split_files(folder):
            raise ManifestError(f"no split lists in {str(folder)!r} (need train/valid/test as .txt, .csv, "
                                f".npy or _list_pub.cP); {WHERE_SPLITS}")
        return folder
    for pattern in DEFAULT_SPLIT_DIRS:
        folder = Path(pattern.format(root=root))
        if folder.is_dir() and find_split_files(folder):
            return folder
    return None


def _row_lookup(ids: list[str], mp3_paths: list[str]) -> dict[str, int]:
    """Annotation row of each clip id, ``folder/stem`` and ``stem`` of the mp3 paths (ids win)."""
    lookup: dict[str, int] = {}
    for i, (clip_id, mp3) in enumerate(zip(ids, mp3_paths)):
        lookup[clip_id] = i
        for key in _entry_keys(mp3):
            lookup.setdefault(key, i)
    return lookup


def _listed_rows(folder: Path, lookup: dict[str, int]) -> tuple[dict[str, list[int]], list[dict[str, str]]]:
    """``(annotation rows per split, entries not in the annotations)`` of the split lists in ``folder``.

    Raises:
        ManifestError: a split has no list in ``folder``.
    """
    files = find_split_files(folder)
    absent = [s for s in SPLITS if s not in files]
    if absent:
        raise ManifestError(f"{folder} has no list for split(s) {', '.join(absent)}")
    split_rows: dict[str, list[int]] = {s: [] for s in SPLITS}
    missing_entries: list[dict[str, str]] = []
    for split, path in files.items():
        for entry in _read_split_file(path):
            row = next((lookup[k] for k in _entry_keys(entry) if k in lookup), None)
            if row is None:
                missing_entries.append({"split": split, "id": entry, "path": f"(not in {ANNOTATIONS})"})
            else:
                split_rows[split].append(row)
    return split_rows, missing_entries


def _random_rows(labels: np.ndarray, seed: int) -> dict[str, list[int]]:
    """A seeded 70/15/15 split of the rows of ``labels`` (n, classes) with at least one positive."""
    rows = np.flatnonzero(labels.any(axis=1))
    perm = rows[np.random.default_rng(seed).permutation(len(rows))]
    n_valid = n_test = int(round(0.15 * len(rows)))
    return {"valid": sorted(perm[:n_valid].tolist()),
            "test": sorted(perm[n_valid:n_valid + n_test].tolist()),
            "train": sorted(perm[n_valid + n_test:].tolist())}


def _check_disjoint(split_rows: dict[str, list[int]], ids: list[str]) -> None:
    """Raise :class:`ManifestError` when one annotation row is listed in two splits."""
    seen: dict[int, str] = {}
    for split, split_list in split_rows.items():
        for index in split_list:
            if index in seen and seen[index] != split:
                raise ManifestError(f"clip {ids[index]} is in both the {seen[index]} and the {split} list")
            seen[index] = split


def _split_rows(
    folder: Path | None,
    random_split: bool,
    seed: int,
    ids: list[str],
    mp3_paths: list[str],
    labels: np.ndarray,
) -> tuple[dict[str, list[int]], list[dict[str, str]], list[str]]:
    """``(annotation rows per split, list entries not in the annotations, warnings)``.

    The rows come from the split lists in ``folder``, else (with ``random_split``) from a seeded
    random split of the rows of ``labels`` (n, classes) that have a positive.

    Raises:
        ManifestError: no lists and no ``random_split``, a list is absent, or a clip is in two splits.
    """
    warnings: list[str] = []
    missing_entries: list[dict[str, str]] = []
    if folder is not None:
        split_rows, missing_entries = _listed_rows(folder, _row_lookup(ids, mp3_paths))
    elif random_split:
        split_rows = _random_rows(labels, seed)
        warnings.append(
            f"random 70/15/15 split (seed {seed}), not the standard clean split; {WHERE_SPLITS}")
    else:
        raise ManifestError(
            f"no MagnaTagATune split lists found (looked in {', '.join(DEFAULT_SPLIT_DIRS)}); "
            f"pass --split-dir DIR, or --random-split for a seeded random split; {WHERE_SPLITS}")
    _check_disjoint(split_rows, ids)
    return split_rows, missing_entries, warnings


def _clips(probes: list[Probe], ids: list[str], labels: np.ndarray) -> tuple[dict[str, list[Clip]], int]:
    """``(clips per split, how many have no positive label)`` of the readable ``probes``.

    ``labels`` is (n annotation rows, classes) bool, in the order of ``ids``; every class is known.
    """
    by_id = {clip_id: i for i, clip_id in enumerate(ids)}
    clips: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    untagged = 0
    for probe in probes:
        if probe.problem:
            continue
        row = by_id[probe.id]
        untagged += not labels[row].any()
        clips[probe.split].append(Clip(probe.id, probe.path, probe.duration, probe.sample_rate,
                                       tuple(int(v) for v in labels[row]), (True,) * labels.shape[1]))
    return clips, untagged


@register_builder("magnatagatune")
def build(
    *,
    root: Path | str,
    manifests_dir: Path | str,
    split_dir: Path | str | None = None,
    audio_dir: str | None = None,
    n_tags: int = 50,
    random_split: bool = False,
    seed: int = 2022,
    threads: int = 4,
    dry_run: bool = False,
) -> BuildReport:
    """Build MTT manifests (layout, classes and split lists in the module doc).

    Args:
        root: the dataset folder holding ``annotations_final.csv``.
        manifests_dir: output folder.
        split_dir: folder of split lists; default: the first of :data:`DEFAULT_SPLIT_DIRS` with lists.
        audio_dir: mp3 folder relative to ``root``; default ``mp3`` when it exists, else ``.``.
        n_tags: how many top tags are the classes.
        random_split: without split lists, make a seeded 70/15/15 split instead of failing.
        seed: random split seed.
        threads: concurrent audio header reads.
        dry_run: check everything, write nothing.
    """
    started = time.perf_counter()
    root = Path(root)
    ids, mp3_paths, tag_names, tags = read_annotations(root / ANNOTATIONS)
    columns = top_tags(tags, tag_names, n_tags)
    classes = [tag_names[j] for j in columns]
    labels = tags[:, columns].astype(bool)
    if audio_dir is None:
        audio_dir = "mp3" if (root / "mp3").is_dir() else ""
    prefix = PurePosixPath(audio_dir) if audio_dir not in ("", ".") else None

    folder = _resolve_split_dir(root, split_dir)
    split_rows, missing_entries, warnings = _split_rows(folder, random_split, seed, ids, mp3_paths, labels)

    def rel(row: int) -> str:
        return str(prefix / mp3_paths[row]) if prefix else mp3_paths[row]

    items = [(s, ids[r], rel(r)) for s in SPLITS for r in split_rows[s]]
    probes = probe_audio(root, items, threads=threads)
    clips, untagged = _clips(probes, ids, labels)
    if untagged:
        warnings.append(f"{untagged} listed clip(s) have none of the top-{n_tags} tags (all-negative labels)")
    missing, unreadable = split_probes(probes)
    return write_outputs(
        dataset="magnatagatune", manifests_dir=manifests_dir, audio_root=root, classes=classes,
        split_clips=clips, missing=missing_entries + missing, unreadable=unreadable, warnings=warnings,
        started=started, dry_run=dry_run,
        options={"root": str(root), "split_dir": str(folder) if folder else None, "audio_dir": audio_dir,
                 "n_tags": n_tags, "random_split": random_split and folder is None, "seed": seed},
    )
