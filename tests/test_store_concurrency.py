"""Parallel writers never clash and dedupe at commit (req. 3).

A SIGKILLed writer leaves a clean, resumable store (req. 4).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest

from pipeline.stores import StoreSpec, create_store, open_store
from pipeline.stores.index import frames_checksum

DIM = 4
CTX = mp.get_context("fork")


def _spec() -> StoreSpec:
    return StoreSpec(
        kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
        hop_seconds=0.5, window_seconds=1.0, frame0_center_seconds=0.25, clip_level=False, dim=DIM,
    )


def _frames(track: int, writer: int) -> np.ndarray:
    return np.full((2 + track % 5, DIM), writer * 1000 + track, dtype=np.float32)


def _parallel_writer(path: str, writer_id: int, ids: list[int], barrier, queue) -> None:  # noqa: ANN001
    store = open_store(path, mode="a")
    barrier.wait(10)
    with store.writer(part_tracks=5) as writer:
        for i in ids:
            writer.add(f"t{i:03d}", _frames(i, writer_id), audio_sha256="s", duration=1.0)
    queue.put((writer_id, writer.committed, writer.dropped))


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_two_processes_with_overlapping_ids_store_each_track_once(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "s"
    create_store(path, _spec(), backend=backend)
    barrier, queue = CTX.Barrier(2), CTX.Queue()
    jobs = [
        CTX.Process(target=_parallel_writer, args=(str(path), 1, list(range(0, 60)), barrier, queue)),
        CTX.Process(target=_parallel_writer, args=(str(path), 2, list(range(30, 90)), barrier, queue)),
    ]
    for job in jobs:
        job.start()
    reader, polls = open_store(path), 0
    while any(job.is_alive() for job in jobs) and polls < 500:  # readers only ever see whole tracks
        reader.refresh()
        for tid in reader.track_ids():
            assert frames_checksum(reader.read(tid)) == reader.entry(tid).checksum
        polls += 1
    results = {}
    for _ in jobs:
        writer_id, committed, dropped = queue.get(timeout=1800)
        results[writer_id] = (set(committed), set(dropped))
    for job in jobs:
        job.join(30)
        assert job.exitcode == 0
    store = open_store(path)
    ids = store.track_ids()
    assert len(ids) == len(set(ids)) == 90 and set(ids) == {f"t{i:03d}" for i in range(90)}
    (c1, d1), (c2, d2) = results[1], results[2]
    assert not c1 & c2 and c1 | c2 == set(ids)  # every id committed by exactly one writer
    assert len(d1) + len(d2) == 30 and d1 <= c2 and d2 <= c1  # the 30 shared ids were dropped once
    for tid in ids:  # the frames are those of the writer whose commit won
        owner = 1 if tid in c1 else 2
        np.testing.assert_array_equal(store.read(tid), _frames(int(tid[1:]), owner).astype(np.float16))
    names = [p.file for p in store.parts()]
    assert len(names) == len(set(names))
    report = store.verify()
    assert report.ok, report.problems
    assert not os.listdir(path / "tmp")


def _killed_writer(path: str, where: str, ready) -> None:  # noqa: ANN001
    """Commit part 0, then hang in the middle of part 1 (``where``) until SIGKILLed."""
    from pipeline.stores import get_backend, writer as writer_module

    store = open_store(path, mode="a")
    writer = store.writer(part_tracks=5)
    for i in range(5):
        writer.add(f"t{i}", _frames(i, 1), audio_sha256="s", duration=1.0)
    if where == "writing":
        backend = get_backend(store.backend)
        original = backend.write_part

        def hang(target, frames, layout):  # noqa: ANN001, ANN202
            original(target, frames, layout)
            ready.set()
            threading.Event().wait()  # hang until SIGKILLed

        backend.write_part = hang
    else:  # after the rename, holding the store lock, before parts.json is replaced
        original_write = writer_module.write_atomic

        def hang_on_parts_json(target, text):  # noqa: ANN001, ANN202
            if target.name == "parts.json":
                ready.set()
                threading.Event().wait()  # hang until SIGKILLed
            original_write(target, text)

        writer_module.write_atomic = hang_on_parts_json
    for i in range(5, 10):
        writer.add(f"t{i}", _frames(i, 1), audio_sha256="s", duration=1.0)


@pytest.mark.parametrize("where", ["writing", "publishing"])
def test_sigkill_mid_part_leaves_only_committed_parts(tmp_path: Path, where: str) -> None:
    path = tmp_path / "s"
    create_store(path, _spec())
    ready = CTX.Event()
    child = CTX.Process(target=_killed_writer, args=(str(path), where, ready))
    child.start()
    assert ready.wait(60), "the writer never reached the kill point"
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL

    store = open_store(path)
    assert store.track_ids() == [f"t{i}" for i in range(5)]  # exactly the committed part
    report = store.verify()
    assert report.ok, report.problems
    assert report.notes  # the leftovers are seen, and harmless
    resumed = create_store(path, _spec())  # resume: cleans leftovers of dead writers (the lock was released)
    assert not os.listdir(path / "tmp")
    assert sorted(os.listdir(path / "parts")) == ["part-000000.zarr"]
    assert sorted(os.listdir(path / "index")) == ["idx-000000-000000.npz"]
    todo = [i for i in range(10) if f"t{i}" not in resumed]
    assert todo == list(range(5, 10))  # finished tracks are never redone
    with resumed.writer() as writer:
        for i in todo:
            writer.add(f"t{i}", _frames(i, 1), audio_sha256="s", duration=1.0)
    final = open_store(path)
    assert len(final) == 10 and [p.name for p in final.parts()] == ["part-000000", "part-000001"]
    report = final.verify()
    assert report.ok and not report.notes


def test_clean_tmp_spares_a_live_writer(tmp_path: Path) -> None:
    import fcntl

    path = tmp_path / "s"
    store = create_store(path, _spec())
    (path / "tmp").mkdir(exist_ok=True)
    live = path / "tmp" / "host-1-live.zarr"
    live.mkdir()
    fd = os.open(path / "tmp" / "host-1-live.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    (path / "tmp" / "host-2-dead.h5").write_bytes(b"partial")
    try:
        removed = store.clean_tmp()
    finally:
        os.close(fd)
    assert removed == ["tmp/host-2-dead.h5"] and live.exists()
