"""Faults of a real extraction: kill -9 at random points, two extractors on one store, Ctrl-C and SIGTERM,
a dask worker killed mid-task.

No test waits for a length of time: each waits for what the process shows (committed tracks in the
store, the progress count and the signal's acknowledgement on its stderr).
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
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
        while not _exited(proc) and len(_stored(store)) < target:
            pass  # _exited waits a little for the process: no busy loop
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        after = _stored(store)
        assert len(after) == len(set(after))  # every committed track exactly once
        assert open_store(store).verify().ok
    assert kills >= 1
    committed = len(_stored(store))
    final = subprocess.run(_extract_cmd(params), capture_output=True, text=True, timeout=1800)
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
        _out, err = proc.communicate(timeout=1800)
        assert proc.returncode == 0, err
    store = open_store(tmp_path / "stores" / "musicnn")
    tracks = store.track_ids()
    assert sorted(tracks) == [f"clip{i:03d}" for i in range(N_CLIPS)]
    assert len(tracks) == len(set(tracks))
    report = store.verify()
    assert report.ok, report.problems


def _exited(proc: subprocess.Popen, wait: float = 0.02) -> bool:
    """True once ``proc`` has ended (waits up to ``wait`` s for it, so polling loops do not spin)."""
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        return False
    return True


class _Watch:
    """Reads a process's stderr in a thread: the progress bar's 'n/N' counts and the signal's acknowledgement."""

    def __init__(self, proc: subprocess.Popen, count: int) -> None:
        import threading

        self.seen: list[int] = []
        self.reached = threading.Event()  # the progress count reached ``count``
        self.received = threading.Event()  # set when the process says "received SIG..." (or stderr ends)
        self.acknowledged = False  # the process said "received SIG...": the signal has landed
        self.ended = threading.Event()
        self._count = count
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen) -> None:
        import re

        tail = b""
        while True:
            data = proc.stderr.read1(256) if proc.stderr else b""  # type: ignore[union-attr]
            if not data:
                self.ended.set()
                self.reached.set()
                self.received.set()
                return
            tail = (tail + data)[-400:]
            self.seen.extend(int(n) for n in re.findall(rb"\| *(\d+)/%d" % N_CLIPS, data))
            if max(self.seen, default=0) >= self._count:
                self.reached.set()
            if b"received SIG" in tail:
                self.acknowledged = True
                self.received.set()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_commits_the_tracks_computed_then_exits(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C or SIGTERM with the default part_tracks (256): the finished tracks are committed, not discarded."""
    params = make_dataset(tmp_path, n_clips=N_CLIPS, seconds=3.0, part_tracks=256)
    store = tmp_path / "stores" / "musicnn"
    # The last clip is a FIFO that nobody writes to yet: the run cannot finish before the signal.
    last = tmp_path / "audio" / f"clip{N_CLIPS - 1:03d}.flac"
    real_bytes = last.read_bytes()
    last.unlink()
    os.mkfifo(last)
    cmd = [c for c in _extract_cmd(params) if c != "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    watch = _Watch(proc, count=3)
    assert watch.reached.wait(1800) and not watch.ended.is_set(), "extraction ended before it could be interrupted"
    done_at_signal = max(watch.seen)
    os.kill(proc.pid, sig)
    # Handshake: the FIFO is released only once the process has said that the signal landed (released
    # before, it is read as a broken last clip and the run exits 2).
    assert watch.received.wait(1800) and watch.acknowledged, "the signal was not acknowledged"
    while not _exited(proc):
        _release_fifo(last)  # a reader blocked on the FIFO gets end-of-file
    last.unlink()
    last.write_bytes(real_bytes)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143)
    kept = _stored(store)
    assert done_at_signal <= len(kept) < N_CLIPS  # every track finished before the signal is kept
    assert open_store(store).verify().ok and open_store(store / "audio").verify().ok
    assert sorted(open_store(store / "audio").track_ids()) == sorted(kept)
    final = subprocess.run(_extract_cmd(params), capture_output=True, text=True, timeout=1800)
    assert final.returncode == 0, final.stderr
    report = json.loads((tmp_path / "stores" / "musicnn-extract-report.json").read_text())
    assert report["skipped"] == len(kept) and report["done"] == N_CLIPS - len(kept)


def _release_fifo(path: Path) -> None:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:  # ENXIO: nobody has it open for reading
        pass


def _worker_pids(parent: int) -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process(parent).children(recursive=True)
            if "multiprocessing" not in " ".join(p.cmdline()) or "spawn_main" in " ".join(p.cmdline())]


@pytest.mark.slow
@pytest.mark.parametrize("retries", ["default", "none"])
def test_a_dask_worker_killed_mid_task(tmp_path: Path, retries: str) -> None:
    """kill -9 of one of two dask workers mid-run: the other finishes, the store stays whole, a rerun fills the gap.

    With dask's default retries the lost task runs again on a restarted worker; with none
    (``allowed-failures: 0``) its tracks are reported failed and the rerun extracts them.
    """
    params = make_dataset(tmp_path, n_clips=N_CLIPS, seconds=3.0, part_tracks=1, workers=2)
    store = tmp_path / "stores" / "musicnn"
    env = dict(os.environ)
    if retries == "none":
        env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = "0"
    proc = subprocess.Popen(_extract_cmd(params), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    while not _exited(proc, wait=0.05) and len(_stored(store)) < 1:
        pass  # both workers have loaded the model and are embedding once a track is committed
    workers = _worker_pids(proc.pid)
    assert proc.poll() is None and len(workers) >= 2, workers
    os.kill(workers[0], signal.SIGKILL)
    _out, err = proc.communicate(timeout=1800)
    after = _stored(store)
    assert len(after) == len(set(after)) and open_store(store).verify().ok  # whole tracks only, each once
    if retries == "none":
        assert proc.returncode == 2 and "dask worker died" in err and len(after) < N_CLIPS
    final = subprocess.run(_extract_cmd(params), capture_output=True, text=True, timeout=1800)
    assert final.returncode == 0, final.stderr
    assert sorted(_stored(store)) == [f"clip{i:03d}" for i in range(N_CLIPS)]
    assert open_store(store).verify().ok and open_store(store / "audio").verify().ok
    report = json.loads((tmp_path / "stores" / "musicnn-extract-report.json").read_text())
    assert report["skipped"] == len(after) and report["done"] == N_CLIPS - len(after)
