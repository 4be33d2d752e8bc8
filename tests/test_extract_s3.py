"""Extraction straight into object storage (``s3://``) from dask workers that share no folder.

Against the real S3-protocol server of the suite (moto on loopback, ``s3_server`` in conftest).
No test waits for a length of time: the cluster test's teacher hands its pid over a FIFO when it
blocks mid-part, and the test kills that worker then.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import yaml

from pipeline.manifests import load_split
from pipeline.stores import EmbeddingStore, StoreSpec, create_store, open_store
from pipeline.stores.remote import commit_numbers
from tests import gated_teacher
from tests.extract_fixtures import make_dataset
from tests.stage2_fixtures import invoke

ROOT = Path(__file__).resolve().parents[1]
N_CLIPS = 8


def _params(tmp_path: Path, store_root: str, **extract: object) -> Path:
    path = make_dataset(tmp_path, n_clips=N_CLIPS, seconds=1.5, batch_seconds=0.5, **extract)
    data = yaml.safe_load(path.read_text())
    data["extract"]["store_root"] = store_root
    data["teachers"] = {"gated": {"gain": 1.0}}
    path.write_text(yaml.safe_dump(data))
    return path


def _env(site: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), **extra}
    env.pop(gated_teacher.GATE_ENV, None)
    return {**env, **extra}


def _extract(params: Path, env: dict[str, str], cwd: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "pipeline", "--params", str(params), "extract", "--teacher",
                             "gated", "--no-progress", *extra], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _worker(address: str, home: Path, env: dict[str, str]) -> subprocess.Popen:
    """A ``dask worker`` process (no nanny: its pid is the worker) whose cwd and TMPDIR are its own folder."""
    (home / "tmp").mkdir(parents=True)
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
         "--no-nanny", "--no-dashboard", "--local-directory", str(home / "tmp")],
        cwd=home, env={**env, "TMPDIR": str(home / "tmp")}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def _pid_through_fifo(fifo: Path, extract: subprocess.Popen) -> int | None:
    """The pid the gated teacher writes (None when the extraction ended first: it releases the FIFO)."""
    def release_when_done() -> None:
        extract.wait()
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:  # nobody reads any more
            pass

    threading.Thread(target=release_when_done, daemon=True).start()
    with open(fifo) as handle:  # blocks until the teacher (or the release) opens it for writing
        line = handle.readline().strip()
    return int(line) if line else None


def test_two_workers_without_a_shared_folder_extract_into_s3_and_survive_kill_9(
    tmp_path: Path, s3_server  # noqa: ANN001
) -> None:
    """Two ``dask worker`` processes in their own folders write parts straight into the bucket; one is
    SIGKILLed mid-part. The run completes (dask reruns the lost task): every clip once, verify clean,
    the frames equal a local extraction's, and a rerun resumes with nothing left to do."""
    from dask.distributed import Client, LocalCluster

    site, gate = tmp_path / "site", tmp_path / "gate"
    gated_teacher.install(site)
    gate.mkdir()
    os.mkfifo(gate / "fifo")
    url_root = f"s3://{s3_server.new_bucket()}/stores"
    env = _env(site)
    with LocalCluster(n_workers=0, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        workers = [_worker(cluster.scheduler_address, tmp_path / f"worker{i}", _env(site, EAST_TEST_GATE=str(gate)))
                   for i in range(2)]
        try:
            client.wait_for_workers(2, timeout=1800)
            params = _params(tmp_path / "data", url_root, scheduler=cluster.scheduler_address, part_tracks=2)
            (tmp_path / "client").mkdir()
            run = _extract(params, env, tmp_path / "client")
            pid = _pid_through_fifo(gate / "fifo", run)
            assert pid is not None, run.communicate()
            assert pid in [w.pid for w in workers]
            os.kill(pid, signal.SIGKILL)
            out, err = run.communicate(timeout=1800)
        finally:
            for worker in workers:
                worker.kill()
                worker.wait()
    assert run.returncode == 0, err[-3000:]

    url = f"{url_root}/gated"
    store = open_store(url)
    clips = [f"clip{i:03d}" for i in range(N_CLIPS)]
    assert sorted(store.track_ids()) == clips and len(store) == N_CLIPS  # nothing lost, each once
    assert len(store.index.duplicates) == 0 or all(k != i for _t, k, i in store.index.duplicates)
    report = store.verify()
    assert report.ok, report.problems
    assert report.tracks >= N_CLIPS and len(commit_numbers(store.location)) >= N_CLIPS // 2
    audio = open_store(f"{url}/audio")
    assert sorted(audio.track_ids()) == clips and audio.verify().ok
    for folder in ("worker0", "worker1", "client"):  # no store on the workers' (or the client's) disks
        assert not [p for p in (tmp_path / folder).rglob("teacher.json")]

    local = _local_extraction(tmp_path / "data", tmp_path / "local", store.spec)  # the same engine, in-process
    for clip in clips:
        assert np.array_equal(store.read(clip), local.read(clip)), clip

    again = subprocess.run([sys.executable, "-m", "pipeline", "--params", str(params), "extract", "--teacher",
                            "gated", "--no-progress"], env={**env, "EAST_TEST_GATE": ""}, capture_output=True,
                           text=True, timeout=1800, cwd=tmp_path / "client")
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads(store.location.fs.cat_file(f"{store.location.root}-extract-report.json"))
    assert (summary["skipped"], summary["done"]) == (N_CLIPS, 0)  # resumed: nothing recomputed
    assert sorted(open_store(url).track_ids()) == clips


def _local_extraction(data: Path, out: Path, spec: StoreSpec) -> EmbeddingStore:
    """The clips of ``data`` extracted by the gated teacher (no gate) into a local store like ``spec``'s."""
    from pipeline.extraction import extract_tracks

    store = create_store(out, spec, backend="zarr")
    with store.writer(part_tracks=2) as writer:
        outcomes = extract_tracks(gated_teacher.GatedTeacher(), load_split(data / "manifests", "train"),
                                  data / "audio", writer, batch_seconds=0.5)
    assert [o.status for o in outcomes] == ["done"] * N_CLIPS
    return open_store(out)


def test_two_writers_racing_on_one_track_keep_one_copy(tmp_path: Path, s3_server) -> None:  # noqa: ANN001
    """Both writers checked before either committed: the lower part number wins on every read,
    verify notes the other copy; a claim without a commit (a dead writer) is never read."""
    from pipeline.stores.remote import claim_part

    spec = StoreSpec(kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
                     hop_seconds=0.5, window_seconds=1.0, frame0_center_seconds=0.25, clip_level=False, dim=4)
    url = f"s3://{s3_server.new_bucket()}/racing"
    create_store(url, spec, chunk_frames=8)
    first, second = open_store(url, mode="a").writer(), open_store(url, mode="a").writer()
    ones, twos = np.ones((5, 4), np.float16), np.full((5, 4), 2, np.float16)
    first.add("shared", ones, audio_sha256="a", duration=2.5)
    second.add("shared", twos, audio_sha256="a", duration=2.5)
    second.add("own", twos, audio_sha256="b", duration=2.5)
    first._fresh = lambda items: items  # type: ignore[method-assign]  # the race: both saw an empty store
    second._fresh = lambda items: items  # type: ignore[method-assign]
    first.store.refresh = lambda: None  # type: ignore[method-assign]
    second.store.refresh = lambda: None  # type: ignore[method-assign]
    assert second.commit() == ["shared", "own"] and first.commit() == ["shared"]
    claim_part(open_store(url).location, 0, "a writer that died")  # claimed, never committed

    store = open_store(url)
    assert sorted(store.track_ids()) == ["own", "shared"] and len(store) == 2
    kept = store.entry("shared").part
    assert kept == "part-000000" and np.array_equal(store.read("shared"), twos)
    report = store.verify()
    assert report.ok, report.problems
    assert any("'shared'" in n and "two writers" in n for n in report.notes)
    assert any(n.startswith("claims/part-000002") for n in report.notes)
    cli = invoke(None, "store", "verify", url)
    assert cli.exit_code == 0 and "3 tracks" in cli.output and "clean" in cli.output, cli.output  # both copies checked
    third = open_store(url, mode="a").writer()
    third.add("shared", ones, audio_sha256="a", duration=2.5)
    assert third.commit() == [] and third.dropped == ["shared"]  # a rerun skips committed tracks
    third.close()


def test_a_missing_bucket_is_one_line(tmp_path: Path, s3_server) -> None:  # noqa: ANN001
    import s3fs

    bucket = s3_server.new_bucket()
    params = make_dataset(tmp_path, n_clips=2, seconds=1.5, store_root="s3://east-no-such-bucket/stores")
    result = invoke(params, "extract", "--teacher", "musicnn", "--no-progress")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "s3://east-no-such-bucket/stores/musicnn" in lines[0], result.output
    assert "bucket does not exist" in lines[0] and "nothing was written" in lines[0]
    assert "AWS_ACCESS_KEY_ID" in lines[0] and "Traceback" not in result.output
    assert s3fs.S3FileSystem(skip_instance_cache=True).ls(bucket) == []
