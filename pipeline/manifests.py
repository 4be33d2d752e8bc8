"""Dataset manifests: one JSON line per clip, one file per split, plus ``classes.json``.

A manifest folder holds ``<split>.jsonl`` (``train``, ``valid``, ``test``) and
``classes.json`` (the class names, in label order). Each line is a :class:`Clip`::

    {"id": "000046_3840", "audio_path": "000/000046_3840.ogg", "duration": 10.0,
     "sample_rate": 44100, "labels": [0, 1, ...], "known": [true, false, ...]}

``audio_path`` is relative to the data root (posix separators), so a manifest can be
committed and the audio kept anywhere. ``labels[c]`` is 1 (positive) or 0 (negative);
``known[c]`` is false where the label of class ``c`` is unknown (OpenMIC's partial
annotation): such entries are masked out of losses and metrics.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

import numpy as np

from pipeline.errors import ManifestError
from pipeline.files import write_atomic, write_json

CLASSES_FILE = "classes.json"
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Clip:
    """One labelled audio clip.

    Attributes:
        id: unique clip id within the dataset.
        audio_path: path relative to the data root, posix separators.
        duration: length in seconds.
        sample_rate: native sample rate of the file in Hz.
        labels: one 0/1 per class (1 = positive).
        known: one bool per class; False marks an unknown label (its 0/1 is meaningless).
    """

    id: str
    audio_path: str
    duration: float
    sample_rate: int
    labels: tuple[int, ...]
    known: tuple[bool, ...]

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.known):
            raise ManifestError(
                f"clip {self.id!r}: {len(self.labels)} labels but {len(self.known)} known flags; "
                "they must have one entry per class"
            )

    def resolve(self, audio_root: Path | str) -> Path:
        """The audio file's path under ``audio_root``."""
        return Path(audio_root) / PurePosixPath(self.audio_path)

    def to_json(self) -> dict[str, Any]:
        """The JSON-lines record of this clip."""
        return {
            "id": self.id,
            "audio_path": self.audio_path,
            "duration": round(float(self.duration), 6),
            "sample_rate": int(self.sample_rate),
            "labels": [int(v) for v in self.labels],
            "known": [bool(v) for v in self.known],
        }

    @classmethod
    def from_json(cls, record: Any) -> "Clip":
        """Parse one record; raises ``ValueError``/``KeyError``/``TypeError`` on bad data."""
        if not isinstance(record, dict):
            raise TypeError(f"expected a JSON object, got {type(record).__name__}")
        extra = sorted(set(record) - {"id", "audio_path", "duration", "sample_rate", "labels", "known"})
        if extra:
            raise KeyError(f"unknown key(s) {', '.join(extra)}")
        labels = record["labels"]
        known = record.get("known")
        if known is None:
            known = [True] * len(labels)
        if not isinstance(labels, list) or not isinstance(known, list):
            raise TypeError("labels and known must be lists")
        if any(v not in (0, 1) or isinstance(v, bool) for v in labels):
            raise ValueError(f"labels must be 0 or 1, got {labels!r}")
        if any(not isinstance(v, bool) for v in known):
            raise ValueError(f"known must be true/false, got {known!r}")
        duration = float(record["duration"])
        sample_rate = int(record["sample_rate"])
        if not duration > 0 or sample_rate <= 0:
            raise ValueError(f"duration and sample_rate must be positive, got {duration!r}, {sample_rate!r}")
        clip_id = record["id"]
        path = record["audio_path"]
        if not isinstance(clip_id, str) or not clip_id or not isinstance(path, str) or not path:
            raise ValueError("id and audio_path must be non-empty strings")
        return cls(
            id=clip_id,
            audio_path=path,
            duration=duration,
            sample_rate=sample_rate,
            labels=tuple(int(v) for v in labels),
            known=tuple(bool(v) for v in known),
        )


def write_manifest(path: Path | str, clips: Iterable[Clip]) -> None:
    """Write clips as JSON lines, atomically (temporary file + rename).

    Raises:
        ManifestError: two clips share an id, or their class counts differ.
    """
    seen: set[str] = set()
    lines = []
    width = None
    for clip in clips:
        if clip.id in seen:
            raise ManifestError(f"duplicate clip id {clip.id!r} while writing {path}")
        seen.add(clip.id)
        if width is None:
            width = len(clip.labels)
        elif len(clip.labels) != width:
            raise ManifestError(
                f"clip {clip.id!r} has {len(clip.labels)} labels, others {width}; writing {path}")
        lines.append(json.dumps(clip.to_json(), separators=(", ", ": ")))
    write_atomic(path, "".join(line + "\n" for line in lines))


def read_manifest(path: Path | str) -> list[Clip]:
    """Read a JSON-lines manifest.

    Raises:
        ManifestError: missing file, a malformed line (file and line number named),
            a duplicate id, or inconsistent class counts.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest {str(path)!r} not found; run `pipeline prepare ...` first")
    clips: list[Clip] = []
    seen: dict[str, int] = {}
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:  # found by benchmarks/fuzz_inputs.py
        line_number = data[: exc.start].count(b"\n") + 1
        raise ManifestError(
            f"{path}:{line_number}: byte {exc.start} (0x{data[exc.start]:02x}) is not UTF-8; manifests are UTF-8 "
            "JSON lines: regenerate it with `pipeline prepare`") from None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            clip = Clip.from_json(json.loads(line))
        except (ValueError, KeyError, TypeError, ManifestError) as exc:
            raise ManifestError(
                f"{path}:{number}: bad manifest line ({exc}); fix or regenerate the manifest") from None
        if clip.id in seen:
            raise ManifestError(f"{path}:{number}: clip id {clip.id!r} already on line {seen[clip.id]}")
        if clips and len(clip.labels) != len(clips[0].labels):
            raise ManifestError(
                f"{path}:{number}: {len(clip.labels)} labels, but line 1 has {len(clips[0].labels)}"
            )
        seen[clip.id] = number
        clips.append(clip)
    return clips


def write_classes(path: Path | str, classes: Sequence[str]) -> None:
    """Write the class names (label order) as a JSON list, atomically."""
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ManifestError(f"duplicate class names in {names!r}")
    write_json(path, names, indent=1)


def read_classes(path: Path | str) -> list[str]:
    """Read ``classes.json`` (a JSON list of names) or a folder holding one.

    Raises:
        ManifestError: missing file or not a list of unique strings.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CLASSES_FILE
    if not path.is_file():
        raise ManifestError(f"class list {str(path)!r} not found; run `pipeline prepare ...` first")
    try:
        names = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc})") from None
    if (not isinstance(names, list) or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)):
        raise ManifestError(f"{path} must hold a JSON list of unique class names")
    return names


def available_splits(manifests_dir: Path | str) -> list[str]:
    """Split names that have a ``<split>.jsonl`` in ``manifests_dir`` (sorted)."""
    folder = Path(manifests_dir)
    return sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []


def load_split(manifests_dir: Path | str, split: str) -> list[Clip]:
    """Read ``<manifests_dir>/<split>.jsonl``, checking it against ``classes.json`` if present.

    Raises:
        ManifestError: the split is missing (the available ones are listed) or malformed.
    """
    folder = Path(manifests_dir)
    path = folder / f"{split}.jsonl"
    if not path.is_file():
        have = available_splits(folder)
        listing = ", ".join(have) if have else "none"
        raise ManifestError(
            f"no split {split!r} in {str(folder)!r} (available: {listing}); "
            "run `pipeline prepare ...` or check data.manifests in params.yaml"
        )
    clips = read_manifest(path)
    classes_path = folder / CLASSES_FILE
    if clips and classes_path.is_file():
        n = len(read_classes(classes_path))
        if len(clips[0].labels) != n:
            raise ManifestError(
                f"{path} has {len(clips[0].labels)} labels per clip but {classes_path} lists {n}")
    return clips


def is_unlabeled(clip: Clip) -> bool:
    """True for an unlabeled clip: no known label at all (``known`` all False).

    Such clips feed only the teacher terms of training (feature and KD losses); they never
    enter the label loss, the probe's fit or a metric.
    """
    return not any(clip.known)


def labelled(clips: Iterable[Clip]) -> list[Clip]:
    """The clips with at least one known label (unlabeled ones left out), in order."""
    return [c for c in clips if not is_unlabeled(c)]


def label_arrays(clips: Sequence[Clip]) -> tuple[np.ndarray, np.ndarray]:
    """Stack labels and the known mask.

    Returns:
        ``(labels, known)``: ``(n, C)`` float32 0/1 labels and ``(n, C)`` bool mask.
    """
    clips = list(clips)
    if not clips:
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), bool)
    labels = np.asarray([c.labels for c in clips], dtype=np.float32)
    known = np.asarray([c.known for c in clips], dtype=bool)
    return labels, known


def usable_splits(
    manifests_dir: Path | str,
    splits: Sequence[str],
    *,
    stored: Any = None,
    stage: str = "this stage",
) -> dict[str, list[Clip]]:
    """The clips of ``splits`` that a later stage can use, with one warning for those it cannot.

    Clips that extraction could not decode (listed in ``<store>-extract-report.json``), or that
    ``pipeline store import`` had no usable file for, are not in the store; they are left out
    here, with ONE warning for all splits together, instead of blocking every later stage. The
    messages name what made the store (:func:`missing_from_store`).

    Args:
        manifests_dir: the manifests folder.
        splits: split names, e.g. ``("train", "valid")``.
        stored: a container of the track ids in the store (an open store), or None.
        stage: the stage's name for the messages (``distill``, ...).

    Returns:
        Split name -> usable clips (never empty).

    Raises:
        ManifestError: a split is missing or has no usable clip, naming the split and what to do.
    """
    import logging

    out: dict[str, list[Clip]] = {}
    left_out: list[str] = []
    for split in splits:
        clips = load_split(manifests_dir, split)
        if not clips:
            raise ManifestError(
                f"split {split!r} in {manifests_dir} has no clips, and {stage} needs it; add clips to it "
                "or rebuild the manifests with another split (a split column, data.fractions), then "
                "`pipeline prepare`")
        kept = clips if stored is None else [c for c in clips if c.id in stored]
        left_out += [f"{split}/{c.id}" for c in clips if stored is not None and c.id not in stored]
        if not kept:
            why, fix = missing_from_store(stored)
            raise ManifestError(
                f"none of the {len(clips)} clip(s) of split {split!r} is in the store ({why}); {stage} needs "
                f"them: {fix}")
        out[split] = kept
    if left_out:
        why, _fix = missing_from_store(stored)
        logging.getLogger("pipeline").warning(
            "%s: %d clip(s) are not in the store (%s) and are left out: %s%s", stage, len(left_out), why,
            ", ".join(left_out[:3]), " ..." if len(left_out) > 3 else "")
    return out


def missing_from_store(stored: Any) -> tuple[str, str]:
    """Why clips of the manifests are not in ``stored`` and what to do, for the store's origin.

    Args:
        stored: an open store (its ``spec`` says whether ``pipeline store import`` made it).

    Returns:
        ``(why, what to do)``, each a phrase for a one-line message.
    """
    spec = getattr(stored, "spec", None)
    if getattr(spec, "imported", False):
        return ("`pipeline store import` had no usable file for them",
                "the import listed its refused files and the clips without a file; provide their files and run "
                "`pipeline store import` again")
    path = getattr(stored, "path", None)
    report = f"{str(path).rstrip('/')}-extract-report.json" if path else "the extract report"
    return (f"extraction could not decode them; see {report}",
            f"see {report}, fix or replace the files, and run `pipeline extract` again")
