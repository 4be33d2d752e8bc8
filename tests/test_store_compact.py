"""``pipeline store compact``: an object store's commit objects folded into one index segment.

Against the suite's real S3-protocol server (moto on loopback, ``s3_server`` in conftest).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import StoreError
from pipeline.stores import StoreSpec, create_store, open_store
from pipeline.stores import object_writer
from pipeline.stores.compact import compact_store
from pipeline.stores.remote import claim_part, commit_numbers
from tests.stage2_fixtures import invoke

SPEC = StoreSpec(kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
                 hop_seconds=0.5, window_seconds=1.0, frame0_center_seconds=0.25, clip_level=False, dim=4)


def _frames(k: int) -> np.ndarray:
    return (np.arange(12, dtype=np.float32).reshape(3, 4) + 100 * k).astype(np.float16)


def _commit(url: str, first: int, count: int) -> None:
    """Tracks ``t<first>..`` committed one part each by a fresh writer (as separate workers do)."""
    writer = open_store(url, mode="a").writer(part_tracks=1)
    for k in range(first, first + count):
        writer.add(f"t{k:03d}", _frames(k), audio_sha256=f"sha{k}", duration=1.5)
    writer.close()


def _store(s3_server, name: str) -> str:  # noqa: ANN001
    url = f"s3://{s3_server.new_bucket()}/{name}"
    create_store(url, SPEC, chunk_frames=4)
    return url


def _listing(url: str, folder: str) -> list[str]:
    store = open_store(url)
    return store.location.listdir(folder)


def _assert_all_there(url: str, n: int) -> None:
    store = open_store(url)
    assert sorted(store.track_ids()) == [f"t{k:03d}" for k in range(n)]
    for k in range(n):
        assert np.array_equal(store.read(f"t{k:03d}"), _frames(k)), k
    report = store.verify()
    assert report.ok, report.problems


def test_compaction_folds_every_commit_into_one_segment(s3_server) -> None:  # noqa: ANN001
    url = _store(s3_server, "fold")
    _commit(url, 0, 5)
    before = open_store(url)  # a reader that opened before the compaction
    assert len(commit_numbers(before.location)) == 5

    result = compact_store(url)

    assert (result.tracks, result.parts, result.commits_folded) == (5, 5, 5)
    assert _listing(url, "commits") == [] and _listing(url, "claims") == []
    catalog = json.loads(open_store(url).location.read_text("parts.json"))
    assert catalog["segments"] == [{"file": "idx-000000-000004.npz", "first": 0, "last": 4, "tracks": 5}]
    assert _listing(url, "index") == ["idx-000000-000004.npz"]
    _assert_all_there(url, 5)
    before.refresh()  # the old reader re-reads parts.json: nothing lost
    assert sorted(before.track_ids()) == [f"t{k:03d}" for k in range(5)]

    _commit(url, 5, 2)  # writers go on after a compaction; a second one folds the new commits in
    assert open_store(url).index.max_seq() == 6
    again = compact_store(url)
    assert (again.commits_folded, again.index_files_removed) == (2, 1)
    assert _listing(url, "index") == ["idx-000000-000006.npz"]
    _assert_all_there(url, 7)


def test_a_live_claim_bounds_the_fold_and_its_late_commit_is_still_read(s3_server, monkeypatch) -> None:  # noqa: ANN001
    """A slow writer holds part 2 while parts 0, 1 and 3 commit: compaction folds 0 and 1 only, and
    part 2, committed after it, is read; a dead writer's claim and data go with ``dead_after``."""
    url = _store(s3_server, "live")
    _commit(url, 0, 2)
    location = open_store(url).location
    slow = claim_part(location, 0, "slow writer")
    assert slow == 2
    _commit(url, 3, 1)  # part 3

    result = compact_store(url)  # the claim is seconds old: alive
    assert (result.commits_folded, result.live_claims) == (2, 1)
    assert open_store(url).index.rows[-1].last == 1 and commit_numbers(location) == [3]

    monkeypatch.setattr(object_writer, "claim_part", lambda *_a: slow)  # the slow writer commits part 2 now
    writer = open_store(url, mode="a").writer()
    writer.add("t002", _frames(2), audio_sha256="sha2", duration=1.5)
    assert writer.commit() == ["t002"]
    writer.close()
    monkeypatch.undo()
    _assert_all_there(url, 4)
    assert compact_store(url).commits_folded == 2  # 2 and 3 join the segment, in order
    assert _listing(url, "commits") == [] and _listing(url, "index") == ["idx-000000-000003.npz"]

    dead = claim_part(location, open_store(url).index.max_seq() + 1, "killed mid-part")  # as writers claim
    location.fs.pipe_file(location.fs_path(f"parts/part-{dead:06d}.zarr/zarr.json"), b"{}")
    kept = compact_store(url)
    assert kept.dead_claims == () and kept.live_claims == 1
    gone = compact_store(url, dead_after=0.0)
    assert gone.dead_claims == (f"part-{dead:06d}",)
    assert _listing(url, "claims") == [] and f"part-{dead:06d}.zarr" not in _listing(url, "parts")
    report = open_store(url).verify()
    assert report.ok and not report.notes, (report.problems, report.notes)
    _assert_all_there(url, 4)


def test_compact_from_the_command_line(s3_server, tmp_path: Path) -> None:  # noqa: ANN001
    url = _store(s3_server, "cli")
    _commit(url, 0, 3)
    result = invoke(None, "store", "compact", url, "--dead-after", "0")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (f"{url}: 3 tracks in 3 parts, one index segment; folded 3 commit object(s), "
                                     "replaced 0 older segment(s)")
    again = invoke(None, "store", "compact", url)
    assert again.exit_code == 0 and again.output.strip() == f"{url}: 3 tracks in 3 parts; no commit objects to fold"
    local = invoke(None, "store", "compact", str(tmp_path))
    assert local.exit_code == 1 and "is a local store" in local.output and "Traceback" not in local.output


def test_a_local_store_is_refused() -> None:
    with pytest.raises(StoreError, match="local store"):
        compact_store("/tmp/somewhere")
