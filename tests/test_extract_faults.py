"""Faults of a real extraction: kill -9 at random points, two extractors on one store."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.stores import open_store
from tests.extract_fixtures import make_dataset

N_CLIPS = 10


def _extract_cmd(params: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "--params", str(params), "extract", "--teacher", "musicnn",
            "--no-progress"]


def _stored(store: Path) -> list[str]:
    if not (store / "teacher.json").is_file():
        return []
    return open_store(store).track_ids()


@pytest.mark.slow
def test_kill_9_then_rerun_finishes_without_recomputing(tmp_path: Path) -> None:
    params = make_dataset(tmp_path, n_clips=N_CLIPS, seconds=3.0, part_tracks=2)
    store = tmp_path / "stores" / "musicnn"
    rng = random.Random(7)
    kills = 0
    for _attempt in range(3):
        before = len(_stored(store))
        if before == N_CLIPS:
            break
        proc = subprocess.Popen(_extract_cmd(params), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill at a random point of the run: once a random number of further tracks is committed,
        # plus a random fraction of a part's work, so the kill lands between and inside commits.
        target = min(N_CLIPS - 1, before + rng.randint(1, 4))
        deadline = time.time() + 120
        while proc.poll() is None and time.time() < deadline and len(_stored(store)) < target:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        after = _stored(store)
        assert len(after) == len(set(after))  # every committed track exactly once
        assert open_store(store).verify().ok
    assert kills >= 1
    committed = len(_stored(store))
    final = subprocess.run(_extract_cmd(params), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    report = json.loads((tmp_path / "stores" / "musicnn-extract-report.json").read_text())
    # Finished tracks are never recomputed: the rerun did exactly the ones that were missing.
    assert report["skipped"] == committed
    assert report["done"] == N_CLIPS - committed
    tracks = open_store(store).track_ids()
    assert sorted(tracks) == [f"clip{i:03d}" for i in range(N_CLIPS)]
    assert open_store(store).verify().ok
    assert open_store(store / "audio").verify().ok


@pytest.mark.slow
def test_two_extractors_on_one_store_stay_consistent(tmp_path: Path) -> None:
    params = make_dataset(tmp_path, n_clips=N_CLIPS, seconds=3.0, part_tracks=2)
    procs = [subprocess.Popen(_extract_cmd(params), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    store = open_store(tmp_path / "stores" / "musicnn")
    tracks = store.track_ids()
    assert sorted(tracks) == [f"clip{i:03d}" for i in range(N_CLIPS)]
    assert len(tracks) == len(set(tracks))
    report = store.verify()
    assert report.ok, report.problems
