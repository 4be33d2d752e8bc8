"""Stores in object storage (``s3://``, any fsspec URL): many machines append, with no lock and no rename.

Beside the local layout (``teacher.json``, ``parts.json``, ``parts/``), an object store has::

    <url>/claims/part-000007                one object per part number, created only if absent
    <url>/parts/part-000007.zarr/...        the part's data objects
    <url>/commits/idx-000007-000007.npz     the part's index segment: the commit point

A commit (one :class:`ObjectPartWriter` per process or dask worker) writes the part in a local
scratch folder, claims the next free part number with a conditional create (``If-None-Match: *``;
a refusal means another writer holds that number, so it tries the next), uploads the data objects,
and last uploads the segment in one PUT, itself a conditional create. Readers list ``commits/``
and merge those segments, by part number, after the ones ``parts.json`` lists: a reader never
sees a segment before all its data objects are there, so never half a track. A track that two
writers committed in a race resolves to the copy in the lower part number (``verify`` notes the
other). A writer killed mid-part leaves a claim and perhaps data objects but no segment: readers
ignore them, ``verify`` notes them, and a rerun skips every committed track.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, AbstractSet, Iterator

from pipeline.errors import StoreError
from pipeline.files import FileFault, os_error_text
from pipeline.stores.index import PARTS_DIR, PARTS_FILE, part_name, part_seq
from pipeline.stores.protocol import CLAIMS_DIR, COMMITS_DIR, TEACHER_FILE
from pipeline.stores.segment import (
    MAX_SEGMENT_BYTES, SEGMENT_FILE, Segment, load_segment, segment_bytes, segment_file,
)

if TYPE_CHECKING:
    from pipeline.stores.location import Location
    from pipeline.stores.spec import StoreSpec

log = logging.getLogger(__name__)

#: a part number is claimed at most this many times in a row before the writer gives up
MAX_CLAIM_TRIES = 10_000


@contextmanager
def object_faults(where: str, *, doing: str, kept: str,
                  passthrough: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """Within the block an object-store failure (no bucket, bad credentials, network) becomes one line.

    Args:
        passthrough: exceptions the caller handles itself (e.g. FileNotFoundError: no store there).

    Raises:
        FileFault: naming ``where``, the error, ``kept`` and what to do (no traceback in the CLI).
    """
    handled: tuple[type[BaseException], ...] = (FileFault, *passthrough)
    caught: tuple[type[BaseException], ...] = (OSError, *_boto_errors())
    try:
        yield
    except handled:
        raise
    except caught as exc:
        text = os_error_text(exc) if isinstance(exc, OSError) and exc.errno else f"{type(exc).__name__}: {exc}"
        raise FileFault(
            f"{where}: {text[:300]} while {doing}; {kept}; check the bucket name and the credentials "
            "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL or the fsspec config), then rerun: "
            "extraction resumes with the missing tracks",
            path=where, errno=getattr(exc, "errno", None),
        ) from None


def _boto_errors() -> tuple[type[Exception], ...]:
    """botocore's own exception base (missing credentials, unreachable endpoint), when installed."""
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:  # pragma: no cover - s3fs needs botocore
        return ()
    return (BotoCoreError,)


# ---- reading -------------------------------------------------------------------------------
def commit_numbers(location: "Location") -> list[int]:
    """Part numbers that have a segment in ``commits/``, ascending (other names are ignored)."""
    numbers = []
    for name in location.listdir(COMMITS_DIR):
        match = SEGMENT_FILE.fullmatch(name)
        if match is not None and match[1] == match[2]:
            numbers.append(int(match[1]))
    return sorted(numbers)


def load_commits(location: "Location", spec: "StoreSpec", backend: str, covered: AbstractSet[int],
                 cache: dict[str, Segment]) -> tuple[list[Segment], dict[str, str]]:
    """The segments in ``commits/`` of parts not in ``covered`` (the parts ``parts.json``'s segments
    hold, e.g. after ``pipeline store compact``), in part order; ``cache`` (key ``commits/<file>``)
    keeps those already read. A part committed late, below a compacted range, is still found.

    Returns:
        ``(segments, refused part name -> reason)``; a refused segment's tracks are absent. A
        segment that vanished between listing and reading (folded by a compaction, which replaces
        ``parts.json`` first: the caller re-reads it) is left out.
    """
    segments: list[Segment] = []
    refused: dict[str, str] = {}
    for seq in (q for q in commit_numbers(location) if q not in covered):
        rel = f"{COMMITS_DIR}/{segment_file(seq, seq)}"
        if rel not in cache:
            try:
                cache[rel] = _load_commit(location, rel, seq, spec, backend)
            except FileNotFoundError:
                continue
            except (StoreError, OSError) as exc:
                refused[part_name(seq)] = str(exc)
                continue
        segments.append(cache[rel])
    for stale in [k for k in cache if k.startswith(f"{COMMITS_DIR}/") and cache[k].first in covered]:
        del cache[stale]
    return segments, refused


def _load_commit(location: "Location", rel: str, seq: int, spec: "StoreSpec", backend: str) -> Segment:
    where = location.join(rel)
    with location.open_whole(rel, MAX_SEGMENT_BYTES) as handle:
        seg = load_segment(handle, where=where, first=seq, last=seq)
    if (seg.dim, seg.dtype) != (spec.dim, spec.dtype) or seg.backend != backend:
        raise StoreError(f"index segment {where} says ({seg.dim}, {seg.dtype}) {seg.backend}, teacher.json says "
                         f"({spec.dim}, {spec.dtype}) {backend}")
    return seg


def uncommitted_claims(location: "Location", covered: AbstractSet[int] = frozenset()) -> list[str]:
    """Claimed part numbers with no segment in ``commits/`` and not in ``covered`` (the parts the
    index holds): writers that are running or died, as part names."""
    committed = set(commit_numbers(location)) | set(covered)
    names = []
    for name in location.listdir(CLAIMS_DIR):
        seq = part_seq(name)
        if seq is not None and seq not in committed:
            names.append(name)
    return names


# ---- writing -------------------------------------------------------------------------------
def claim_part(location: "Location", start: int, token: str) -> int:
    """Claim the lowest free part number ``>= start`` (a conditional create of ``claims/part-NNNNNN``).

    Raises:
        StoreError: no number could be claimed in :data:`MAX_CLAIM_TRIES` tries.
        OSError: the object store refused the write (see :func:`object_faults`).
    """
    taken = {q for q in (part_seq(n) for n in location.listdir(CLAIMS_DIR)) if q is not None}
    seq = max([start - 1, *taken]) + 1
    for _ in range(MAX_CLAIM_TRIES):
        try:
            location.fs.pipe_file(location.fs_path(f"{CLAIMS_DIR}/{part_name(seq)}"), token.encode(), mode="create")
            return seq
        except FileExistsError:
            seq += 1
    raise StoreError(f"store {location}: no free part number after {MAX_CLAIM_TRIES} tries from {start}")


def upload_part(location: "Location", local: Path, rel: str) -> None:
    """Upload the part data ``local`` (a file, or a folder of chunk files) to ``rel`` in the store."""
    target = location.fs_path(rel)
    if local.is_dir():
        files = sorted(p for p in local.rglob("*") if p.is_file())
        location.fs.put([str(p) for p in files], [f"{target}/{p.relative_to(local).as_posix()}" for p in files])
    else:
        location.fs.put_file(str(local), target)


def publish_segment(location: "Location", segment: Segment) -> None:
    """Upload ``segment`` as ``commits/idx-NNNNNN-NNNNNN.npz`` in one conditional PUT: the commit point.

    Raises:
        StoreError: the object exists already (another writer used this part number: never overwritten).
    """
    rel = f"{COMMITS_DIR}/{segment.file}"
    try:
        location.fs.pipe_file(location.fs_path(rel), segment_bytes(segment), mode="create")
    except FileExistsError:
        raise StoreError(f"{location.join(rel)} exists already: another writer committed part {segment.first} "
                         "without claiming it; the store is left as it was") from None


def scratch_folder() -> Path:
    """A private local folder (under ``TMPDIR``) where a part is written before it is uploaded."""
    return Path(tempfile.mkdtemp(prefix="east-part-"))


def remove_scratch(path: Path) -> None:
    """Remove a scratch folder made by :func:`scratch_folder` (nothing of the store lives there)."""
    shutil.rmtree(path, ignore_errors=True)


def init_object_store(location: "Location", teacher_text: str, catalog: str) -> bool:
    """Write ``teacher.json`` (a conditional create) and an empty ``parts.json``; False when a store exists.

    Two extractions starting at once: one creates, the other finds the store and resumes it.
    """
    fs = location.fs
    if location.exists(TEACHER_FILE):
        return False
    if not location.exists(PARTS_FILE):
        fs.pipe_file(location.fs_path(PARTS_FILE), catalog.encode("utf-8"))
    try:
        fs.pipe_file(location.fs_path(TEACHER_FILE), teacher_text.encode("utf-8"), mode="create")
    except FileExistsError:
        return False
    return True


def remove_object_store(location: "Location") -> None:
    """Delete every object under the store's URL (``--overwrite``, or an empty store of a failed run)."""
    if location.fs.exists(location.root):
        location.fs.rm(location.root, recursive=True)
    log.info("removed the objects of %s", location)


def part_objects_prefix(seq: int, suffix: str) -> str:
    """``parts/part-NNNNNN<suffix>``: where part ``seq``'s data objects go."""
    return f"{PARTS_DIR}/{part_name(seq)}{suffix}"
