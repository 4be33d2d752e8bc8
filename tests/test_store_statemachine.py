"""A hypothesis state machine of the store against a model of which tracks must be present.

Rules: two writers in this process buffer tracks and commit (a second writer racing the
first); a writer "crashes" (its buffer is lost); a forked writer process is killed with
``os._exit`` at one of four points of its commit (data written, data renamed into
``parts/``, index segment written, ``parts.json`` replaced); an extractor restarts (``create_store``
resumes and cleans up after dead writers). After every step the store lists exactly the
committed tracks, each once, with the frames of its first committed copy, and ``verify``
is clean.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from pipeline.stores import StoreSpec, create_store, open_store

DIM = 3
IDS = st.sampled_from([f"t{i}" for i in range(8)])
WRITERS = st.sampled_from(["A", "B"])
#: where a forked writer dies: 0 after writing its data to tmp/, 1 after renaming it into parts/,
#: 2 after writing the index segment, 3 after replacing parts.json (the commit point)
KILL_POINTS = st.integers(0, 3)


def _spec() -> StoreSpec:
    return StoreSpec(kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
                     hop_seconds=0.5, window_seconds=1.0, frame0_center_seconds=0.25, clip_level=False, dim=DIM,
                     dtype="float32")


def _die_at(point: int) -> None:
    """In a forked child: patch the commit so that the process exits at ``point`` (no cleanup runs)."""
    import pipeline.stores.writer as writer_module
    from pipeline.stores.backend import get_backend

    backend = get_backend("zarr")
    real_write, real_rename, real_atomic = backend.write_part, os.rename, writer_module.write_atomic
    calls = {"atomic": 0}

    def write_part(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        real_write(*args, **kwargs)
        if point == 0:
            os._exit(137)

    def rename(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        real_rename(*args, **kwargs)
        if point == 1:
            os._exit(137)

    def atomic(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        real_atomic(*args, **kwargs)
        calls["atomic"] += 1
        if point == 1 + calls["atomic"]:
            os._exit(137)

    backend.write_part = write_part  # type: ignore[method-assign]
    os.rename = rename  # type: ignore[assignment]
    writer_module.write_atomic = atomic  # type: ignore[assignment]


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="store-sm-"))
        self.root = self.tmp / "s"
        create_store(self.root, _spec(), chunk_frames=4)
        self.writers = {name: open_store(self.root, mode="a").writer(part_tracks=1000) for name in "AB"}
        self.buffers: dict[str, dict[str, np.ndarray]] = {"A": {}, "B": {}}
        self.committed: dict[str, np.ndarray] = {}
        self.serial = 0
        self.kills = 0

    def _frames(self, rows: int) -> np.ndarray:
        self.serial += 1
        return np.full((rows, DIM), float(self.serial), dtype=np.float32)

    @rule(writer=WRITERS, track=IDS, rows=st.integers(1, 9))
    def add(self, writer: str, track: str, rows: int) -> None:
        frames = self._frames(rows)
        self.writers[writer].add(track, frames, audio_sha256="s", duration=float(rows))
        self.buffers[writer].setdefault(track, frames)

    @rule(writer=WRITERS)
    def commit(self, writer: str) -> None:
        self.writers[writer].commit()
        for track, frames in self.buffers[writer].items():
            self.committed.setdefault(track, frames)
        self.buffers[writer] = {}

    @rule(writer=WRITERS)
    def crash(self, writer: str) -> None:
        """The writer's process dies between commits: what it buffered is gone."""
        self.writers[writer].discard()
        self.writers[writer] = open_store(self.root, mode="a").writer(part_tracks=1000)
        self.buffers[writer] = {}

    @precondition(lambda self: self.kills < 3)  # forks are the slow rule
    @rule(tracks=st.lists(IDS, min_size=1, max_size=3, unique=True), point=KILL_POINTS)
    def killed_writer_process(self, tracks: list[str], point: int) -> None:
        frames = {track: self._frames(2) for track in tracks}
        self.kills += 1
        pid = os.fork()
        if pid == 0:  # the child: write, die at `point`
            try:
                _die_at(point)
                store = open_store(self.root, mode="a")
                writer = store.writer(part_tracks=1000)
                for track, value in frames.items():
                    writer.add(track, value, audio_sha256="s", duration=2.0)
                writer.commit()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) in (0, 137)
        if point == 3:
            for track, value in frames.items():
                self.committed.setdefault(track, value)

    @rule()
    def restart(self) -> None:
        """An extractor starts again: ``create_store`` resumes and removes what dead writers left."""
        create_store(self.root, _spec(), chunk_frames=4)
        leftovers = open_store(self.root).verify(checksums=False).notes
        assert all("scratch of a writer" in n for n in leftovers), leftovers  # only the live writers' locks

    @invariant()
    def store_matches_model(self) -> None:
        store = open_store(self.root)
        assert sorted(store.track_ids()) == sorted(self.committed)
        for track, frames in self.committed.items():
            np.testing.assert_array_equal(store.read(track), frames)
        report = store.verify()
        assert report.ok, report.problems

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


StoreMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=12, deadline=None, derandomize=True, database=None,
    suppress_health_check=list(HealthCheck),
)
TestStoreStateMachine = StoreMachine.TestCase
