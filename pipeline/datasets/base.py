"""What every dataset builder shares: the registry, the build report, writing the outputs.

A builder reads a dataset's own layout and writes ``<manifests_dir>/{train,valid,test}.jsonl``,
``classes.json`` and ``report.json``. Clips whose audio is missing or unreadable are left out
of the manifests but never silently: the report lists each one with the reason.
"""
from __future__ import annotations

import codecs
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from pipeline.errors import AudioError, ManifestError
from pipeline.files import write_json
from pipeline.manifests import (
    CLASSES_FILE,
    SPLITS,
    Clip,
    is_unlabeled,
    write_classes,
    write_manifest,
)
from pipeline.registry import Registry

REPORT_FILE = "report.json"


@dataclass
class BuildReport:
    """The outcome of one builder run (also written as ``report.json``).

    Attributes:
        dataset: builder name.
        manifests_dir: where the manifests were written.
        audio_root: the folder the manifests' audio paths are relative to.
        classes: class names in label order.
        splits: clips written per split.
        missing: clips left out because their audio file does not exist
            (``{"split", "id", "path"}``).
        unreadable: clips left out because their audio cannot be decoded
            (``{"split", "id", "path", "reason"}``).
        warnings: other things the user should know (unlabelled files, classes
            without known positives in a split, ...).
        label_stats: per split: ``positives``, ``negatives``, ``unknown`` counts per class.
        unlabeled: per split, the clips with no known label (teacher terms only; also in ``splits``).
        options: the settings the builder ran with.
        seconds: wall time of the build.
        dry_run: True when nothing was written.
    """

    dataset: str
    manifests_dir: str
    audio_root: str
    classes: list[str]
    splits: dict[str, int]
    missing: list[dict[str, str]] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    label_stats: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    unlabeled: dict[str, int] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-friendly data."""
        return asdict(self)

    def write(self, path: Path | str) -> None:
        """Write the report as indented JSON, atomically."""
        write_json(path, self.to_json(), indent=1, default=str)

    def summary(self, max_listed: int = 5) -> str:
        """A few human-readable lines for the console."""
        total = sum(self.splits.values())
        head = "would write" if self.dry_run else "wrote"
        lines = [
            f"{self.dataset}: {head} {total} clips "
            f"({', '.join(f'{k} {v}' for k, v in self.splits.items())}), {len(self.classes)} classes, "
            f"to {self.manifests_dir} (audio root {self.audio_root}) in {self.seconds:.1f} s"
        ]
        for kind, items in (("missing", self.missing), ("unreadable", self.unreadable)):
            if items:
                lines.append(f"  {len(items)} clip(s) left out, audio {kind}:")
                for item in items[:max_listed]:
                    reason = f": {item['reason']}" if "reason" in item else ""
                    lines.append(f"    {item.get('split', '?')}/{item['id']} {item['path']}{reason}")
                if len(items) > max_listed:
                    lines.append(f"    ... and {len(items) - max_listed} more (see {REPORT_FILE})")
        if any(self.unlabeled.values()):
            lines.append("  unlabeled (no known label; feature and KD terms only): "
                         + ", ".join(f"{k} {v}" for k, v in self.unlabeled.items() if v))
        for warning in self.warnings:
            lines.append(f"  warning: {warning}")
        if (self.missing or self.unreadable) and not self.dry_run:
            lines.append(f"  full list: {Path(self.manifests_dir) / REPORT_FILE}")
        return "\n".join(lines)


#: Dataset builders by name; each is ``build(**options) -> BuildReport``.
BUILDERS: Registry[Callable[..., BuildReport]] = Registry("dataset builder")


def register_builder(name: str) -> Callable[[Callable[..., BuildReport]], Callable[..., BuildReport]]:
    """Decorator registering a builder function under ``name``."""
    return BUILDERS.register(name)


#: The fallback encoding of text files that are not UTF-8 (what Excel writes on Windows).
FALLBACK_ENCODING = "cp1252"

#: Byte-order marks and their codecs; UTF-32 LE first (its BOM starts with UTF-16 LE's).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
#: Bytes looked at to recognise UTF-16 without a BOM by its NUL bytes.
_SNIFF_BYTES = 4096


def read_text(path: Path) -> tuple[str, str | None]:
    """A text file's content, whatever Unicode encoding or Windows-1252 it was saved in.

    A byte-order mark decides (UTF-8, UTF-16 LE/BE as Excel's "Unicode Text" writes, UTF-32 LE/BE).
    Without one: UTF-8; else UTF-16 when NUL bytes fill every other byte (ASCII text in UTF-16
    without a BOM); else Windows-1252 with a warning.

    Returns:
        ``(text, warning)``; ``warning`` is None for text with a BOM or in UTF-8, and says which
        encoding was assumed (file and first odd byte) otherwise.

    Raises:
        ManifestError: the bytes do not decode in the encoding found, or hold NUL bytes that
            are not UTF-16 (a spreadsheet or other binary file), naming the file, the byte offset
            and the fix.
    """
    data = Path(path).read_bytes()
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode(path, data[len(bom):], encoding, offset=len(bom)), None
    if b"\x00" in data:  # no text has NUL bytes; ASCII in UTF-16 is half NULs (and valid UTF-8)
        return _without_bom(path, data)
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        offset, byte = exc.start, data[exc.start]
    try:
        text = data.decode(FALLBACK_ENCODING)
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{path}: byte {exc.start} (0x{data[exc.start]:02x}) is neither UTF-8 nor Windows-1252; "
            "save the file as UTF-8 (e.g. `iconv -f LATIN1 -t UTF-8 IN > OUT`)") from None
    warning = (f"{path} is not UTF-8 (byte {offset}: 0x{byte:02x}); read it as Windows-1252 (cp1252). "
               "Save it as UTF-8 to be sure of the names")
    return text, warning


def _decode(path: Path, data: bytes, encoding: str, *, offset: int) -> str:
    """``data`` decoded as ``encoding``; a bad byte is one ManifestError naming its offset in the file."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"{path}: byte {offset + exc.start} does not decode as {encoding.upper()} (the encoding its "
            f"byte-order mark or NUL bytes announce: {exc.reason}); the file is damaged or cut: save it "
            "again as CSV UTF-8") from None


def _without_bom(path: Path, data: bytes) -> tuple[str, str]:
    """Text holding NUL bytes and no BOM: UTF-16 LE/BE when the NULs fill every other byte, else an error."""
    sample = data[:_SNIFF_BYTES]
    pairs = max(len(sample) // 2, 1)
    odd_nul = sample[1::2].count(0) / pairs  # 'a\x00b\x00': ASCII in UTF-16 LE
    even_nul = sample[0::2].count(0) / pairs  # '\x00a\x00b': ASCII in UTF-16 BE
    if max(odd_nul, even_nul) >= 0.5 and min(odd_nul, even_nul) < 0.1 and len(data) % 2 == 0:
        encoding = "utf-16-le" if odd_nul > even_nul else "utf-16-be"
        text = _decode(path, data, encoding, offset=0)
        return text, (f"{path} has no byte-order mark; read it as {encoding.upper()} from its NUL bytes. "
                      "Save it as CSV UTF-8 to be sure")
    first = data.index(b"\x00")
    raise ManifestError(
        f"{path}: byte {first} is a NUL byte and the file is neither UTF-8 nor UTF-16 text (a spreadsheet "
        "or other binary file?); save it as CSV UTF-8 (Excel: File > Save As > CSV UTF-8)")


def label_stats(clips: Sequence[Clip], n_classes: int) -> dict[str, list[int]]:
    """Known positives, known negatives and unknowns per class."""
    if not clips:
        zeros = [0] * n_classes
        return {"positives": zeros, "negatives": list(zeros), "unknown": list(zeros)}
    labels = np.asarray([c.labels for c in clips], dtype=bool)
    known = np.asarray([c.known for c in clips], dtype=bool)
    return {
        "positives": (labels & known).sum(0).astype(int).tolist(),
        "negatives": (~labels & known).sum(0).astype(int).tolist(),
        "unknown": (~known).sum(0).astype(int).tolist(),
    }


def coverage_warnings(stats: Mapping[str, Mapping[str, list[int]]], classes: Sequence[str]) -> list[str]:
    """Warnings for classes with no known positive, and for classes with no known negative, per non-empty split.

    Either makes the class undefined for AP and ROC-AUC there (with no negative every ranking scores
    AP 1.0), so the metrics leave it out of their macro means.
    """
    warnings = []
    for split, counts in stats.items():
        total = np.sum([np.asarray(counts[k]) for k in ("positives", "negatives", "unknown")], axis=0)
        if not np.any(total):
            if split in SPLITS:
                warnings.append(f"split {split!r} is empty: probe, distill and evaluate need clips in "
                                "train, valid and test (add clips, or change the split column or fractions)")
            continue
        known = total - np.asarray(counts["unknown"])
        for kind in ("positive", "negative"):
            absent = [classes[i] for i, n in enumerate(counts[f"{kind}s"]) if n == 0 and known[i]]
            if absent:
                warnings.append(f"split {split!r} has no known {kind} for: {', '.join(absent)} (AP and ROC-AUC are "
                                "undefined there: these classes are left out of that split's mean mAP and ROC-AUC)")
        unknown = [classes[i] for i, n in enumerate(known) if n == 0]
        if unknown:
            warnings.append(f"split {split!r} has no known label for: {', '.join(unknown)} "
                            "(left out of every metric there)")
    return warnings


def write_outputs(
    *,
    dataset: str,
    manifests_dir: Path | str,
    audio_root: Path | str,
    classes: Sequence[str],
    split_clips: Mapping[str, Sequence[Clip]],
    missing: Iterable[Mapping[str, str]] = (),
    unreadable: Iterable[Mapping[str, str]] = (),
    warnings: Iterable[str] = (),
    options: Mapping[str, Any] | None = None,
    started: float | None = None,
    dry_run: bool = False,
) -> BuildReport:
    """Write ``{split}.jsonl``, ``classes.json`` and ``report.json``; return the report.

    Splits named in :data:`~pipeline.manifests.SPLITS` are always written (possibly empty).
    With ``dry_run`` nothing is written and the report says what would be.
    """
    folder = Path(manifests_dir)
    names = list(SPLITS) + [s for s in split_clips if s not in SPLITS]
    stats = {s: label_stats(split_clips.get(s, []), len(classes)) for s in names}
    report = BuildReport(
        dataset=dataset,
        manifests_dir=str(folder),
        audio_root=str(audio_root),
        classes=list(classes),
        splits={s: len(split_clips.get(s, [])) for s in names},
        missing=[dict(m) for m in missing],
        unreadable=[dict(u) for u in unreadable],
        warnings=list(warnings) + coverage_warnings(stats, classes),
        label_stats=stats,
        unlabeled={s: sum(is_unlabeled(c) for c in split_clips.get(s, [])) for s in names},
        options={k: (str(v) if isinstance(v, Path) else v) for k, v in (options or {}).items()},
        dry_run=dry_run,
    )
    if not dry_run:
        folder.mkdir(parents=True, exist_ok=True)
        for split in names:
            write_manifest(folder / f"{split}.jsonl", split_clips.get(split, []))
        write_classes(folder / CLASSES_FILE, classes)
    report.seconds = time.perf_counter() - started if started is not None else 0.0
    if not dry_run:
        report.write(folder / REPORT_FILE)
    return report


@dataclass(frozen=True)
class Probe:
    """Result of checking one clip's audio file."""

    split: str
    id: str
    path: str
    sample_rate: int = 0
    duration: float = 0.0
    problem: str = ""  # "", "missing" or "unreadable"
    reason: str = ""
    note: str = ""  # a readable file's header disagrees with its stream (see pipeline.audio.length_note)


def probe_audio(
    audio_root: Path | str,
    items: Sequence[tuple[str, str, str]],
    *,
    threads: int = 4,
) -> list[Probe]:
    """Read the headers of many files (in threads), keeping their order.

    Args:
        audio_root: folder the relative paths start from.
        items: ``(split, clip id, relative posix path)`` triples.
        threads: concurrent header reads (libsndfile releases the GIL).

    Returns:
        One :class:`Probe` per item: rate and duration, or the problem.
    """
    from pipeline.audio import audio_info, length_note

    root = Path(audio_root)

    def one(item: tuple[str, str, str]) -> Probe:
        split, clip_id, rel = item
        path = root / rel
        if not path.is_file():
            return Probe(split, clip_id, rel, problem="missing", reason="no such file")
        try:
            info = audio_info(path)
        except AudioError as exc:
            return Probe(split, clip_id, rel, problem="unreadable", reason=str(exc))
        return Probe(split, clip_id, rel, sample_rate=info.sample_rate, duration=info.duration,
                     note=length_note(info))

    if threads <= 1 or len(items) < 8:
        return [one(item) for item in items]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, items, chunksize=32))


def length_warnings(probes: Sequence[Probe]) -> list[str]:
    """Warnings for the files whose header length disagrees with their stream: one for truncated files
    (their clips use the part that decodes), one for files longer than their header says."""
    noted = [p for p in probes if p.note and not p.problem]
    truncated = [p for p in noted if "truncated" in p.note]
    longer = [p for p in noted if p not in truncated]
    warnings = []
    if truncated:
        warnings.append(f"{len(truncated)} file(s) are truncated (their clips use the audio that decodes); first: "
                        f"{truncated[0].path}: {truncated[0].note}")
    if longer:
        warnings.append(f"{len(longer)} file(s) are longer than their header says; first: {longer[0].path}: "
                        f"{longer[0].note}")
    return warnings


def split_probes(probes: Iterable[Probe]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The ``missing`` and ``unreadable`` report entries of ``probes``."""
    missing, unreadable = [], []
    for p in probes:
        if p.problem == "missing":
            missing.append({"split": p.split, "id": p.id, "path": p.path})
        elif p.problem:
            unreadable.append({"split": p.split, "id": p.id, "path": p.path, "reason": p.reason})
    return missing, unreadable
