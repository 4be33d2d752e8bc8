"""Faults during a part commit: a full disk (ENOSPC) at every fsync of a commit, and on a real tmpfs.

After the fault the store is consistent (``verify`` clean, every listed track whole, nothing
half-committed left in ``parts/`` or ``tmp/``), the error is one line that says the disk is
full, and a rerun with space completes.
"""
from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import StoreError
from pipeline.stores import StoreSpec, create_store, open_store

DIM = 16
FIRST, SECOND = ["a0", "a1", "a2"], ["b0", "b1", "b2"]


def _spec() -> StoreSpec:
    return StoreSpec(kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
                     hop_seconds=0.5, window_seconds=1.0, frame0_center_seconds=0.25, clip_level=False, dim=DIM,
                     dtype="float32")


def _frames(track: str, rows: int = 20) -> np.ndarray:
    return np.random.default_rng(abs(hash(track)) % 2**32).standard_normal((rows, DIM)).astype(np.float32)


def _add(store, tracks: list[str], rows: int = 20) -> None:  # noqa: ANN001
    with store.writer(part_tracks=len(tracks)) as writer:
        for track in tracks:
            if track not in store:
                writer.add(track, _frames(track, rows), audio_sha256="s", duration=10.0)


def _count_fsyncs(tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> int:
    store = create_store(tmp_path / "count", _spec(), backend=backend, chunk_frames=8)
    _add(store, FIRST)
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    _add(store, SECOND)
    monkeypatch.setattr(os, "fsync", real)
    return len(calls)


def _consistent(root: Path) -> list[str]:
    store = open_store(root)
    report = store.verify()
    assert report.ok and report.notes == [], (report.problems, report.notes)
    assert sorted(os.listdir(root / "parts")) == sorted(p.file for p in store.parts())  # no uncommitted part left
    assert sorted(os.listdir(root / "index")) == sorted(r.file for r in store.index.rows)  # nor index segment
    assert [n for n in os.listdir(root / "tmp") if not n.endswith(".lock")] == []
    for track in store.track_ids():
        np.testing.assert_array_equal(store.read(track), _frames(track))
    return sorted(store.track_ids())


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_enospc_at_every_fsync_of_a_commit(tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> None:
    total = _count_fsyncs(tmp_path, backend, monkeypatch)
    assert total >= 4  # data, part index, parts.json, folders
    outcomes = []
    for fail_at in range(1, total + 1):
        root = tmp_path / f"s{fail_at}"
        store = create_store(root, _spec(), backend=backend, chunk_frames=8)
        _add(store, FIRST)
        calls = []
        real = os.fsync

        def full(fd: int) -> None:
            calls.append(fd)
            if len(calls) == fail_at:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd)

        monkeypatch.setattr(os, "fsync", full)
        try:
            _add(store, SECOND)
            outcomes.append("committed")  # a folder fsync failed: the data were already durable
        except StoreError as exc:
            message = str(exc)
            assert "no space left on device" in message and "rerun" in message and "\n" not in message
            outcomes.append("refused")
        finally:
            monkeypatch.setattr(os, "fsync", real)
        tracks = _consistent(root)
        assert tracks in (FIRST, FIRST + SECOND)  # never part of a part
        assert (tracks == FIRST) == (outcomes[-1] == "refused")
        _add(open_store(root, mode="a"), SECOND)  # the rerun, with space
        assert _consistent(root) == FIRST + SECOND
    assert outcomes.count("refused") >= 3


@pytest.fixture
def tiny_disk(tmp_path: Path):  # noqa: ANN201
    """A 256 KiB tmpfs mounted for the test (needs root; skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); test_enospc_at_every_fsync_of_a_commit covers ENOSPC")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk_on_a_real_tmpfs_then_rerun_with_space(tiny_disk: Path) -> None:
    root = tiny_disk / "store"
    store = create_store(root, _spec(), chunk_frames=64)
    tracks = [f"t{i:02d}" for i in range(40)]  # 40 x 20 KiB: more than the disk holds
    with pytest.raises(StoreError, match="no space left on device") as info:
        with store.writer(part_tracks=2) as writer:
            for track in tracks:
                writer.add(track, _frames(track, 320), audio_sha256="s", duration=10.0)
    assert "\n" not in str(info.value)
    kept = sorted(open_store(root).track_ids())
    assert 0 < len(kept) < len(tracks) and len(kept) % 2 == 0  # whole parts only
    report = open_store(root).verify()
    assert report.ok, report.problems
    subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_disk)], check=True)
    store = open_store(root, mode="a")
    with store.writer(part_tracks=2) as writer:
        for track in tracks:
            if track not in store:
                writer.add(track, _frames(track, 320), audio_sha256="s", duration=10.0)
    final = open_store(root)
    assert sorted(final.track_ids()) == tracks and final.verify().ok
    np.testing.assert_array_equal(final.read("t39"), _frames("t39", 320))
