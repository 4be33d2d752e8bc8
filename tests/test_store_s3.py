"""Stores on object storage, against a real S3-protocol server (moto on loopback, see conftest).

Stores written locally and uploaded are inspected, verified and read by probe and distill through
``s3://`` directly. Extraction straight into ``s3://`` is tested in ``test_extract_s3.py``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.stores import StoreSpec, create_store, open_store
from tests import stage2_fixtures
from tests.stage2_fixtures import TinyPipeline, invoke

tiny_pipeline = stage2_fixtures.tiny_pipeline  # the session's real pipeline (built once)
DIM = 8


def _upload(local: Path, url: str) -> None:
    import s3fs

    s3fs.S3FileSystem(skip_instance_cache=True).put(str(local), url.removeprefix("s3://"), recursive=True)


def _fake_store(path: Path, backend: str) -> dict[str, np.ndarray]:
    spec = StoreSpec(kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
                     hop_seconds=0.5, window_seconds=1.0, frame0_center_seconds=0.25, clip_level=False, dim=DIM)
    rng = np.random.default_rng(1)
    frames = {f"t{i}": rng.standard_normal((20 + 3 * i, DIM)).astype(np.float16) for i in range(7)}
    store = create_store(path, spec, backend=backend, chunk_frames=16)
    with store.writer(part_tracks=3) as writer:
        for track, value in frames.items():
            writer.add(track, value, audio_sha256="sha", duration=10.0)
    return frames


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_store_info_verify_and_reads_through_s3(tmp_path: Path, s3_server, backend: str) -> None:  # noqa: ANN001
    frames = _fake_store(tmp_path / "s", backend)
    url = f"s3://{s3_server.new_bucket()}/stores/fake"
    _upload(tmp_path / "s", url)

    info = invoke(None, "store", "info", "--json", url)
    assert info.exit_code == 0, info.output
    facts = json.loads(info.output)
    assert (facts["tracks"], facts["parts"], facts["backend"]) == (7, 3, backend)
    assert (facts["files"], facts["bytes_on_disk"]) == open_store(tmp_path / "s").disk_usage()
    verify = invoke(None, "store", "verify", url)
    assert verify.exit_code == 0 and "7 tracks" in verify.output and "clean" in verify.output

    store = open_store(url)
    window, times = store.read_window("t4", 2.0, 5.0)
    assert np.array_equal(window, frames["t4"][4:10]) and np.allclose(times, 2.25 + 0.5 * np.arange(6))
    with pytest.raises(Exception, match="read-only"):
        store.writer()


def test_hdf5_reads_through_s3_never_collect_garbage_on_the_io_thread(tmp_path: Path, s3_server) -> None:  # noqa
    """The deadlock seen under load: h5py holds its lock while s3fs serves the read on its event-loop
    thread; a garbage collection there that frees an h5py object waits for that lock forever. With
    the collector made to run at every allocation, reading every track of an HDF5 store through
    ``s3://`` must not run one collection on fsspec's IO thread (before the fix: thousands)."""
    import gc
    import threading

    frames = _fake_store(tmp_path / "s", "hdf5")
    url = f"s3://{s3_server.new_bucket()}/stores/fake"
    _upload(tmp_path / "s", url)
    store = open_store(url)
    threads: list[str] = []

    def note(phase: str, _info: dict) -> None:
        if phase == "start":
            threads.append(threading.current_thread().name)

    threshold = gc.get_threshold()
    gc.callbacks.append(note)
    gc.set_threshold(1, 1, 1)
    try:
        read = {track: store.read(track) for track in frames}
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(note)
    assert all(np.array_equal(read[t], frames[t]) for t in frames)
    assert "fsspecIO" not in threads, f"{threads.count('fsspecIO')} collections on the IO thread"
    assert gc.isenabled()


def test_verify_through_s3_names_a_corrupted_part(tmp_path: Path, s3_server) -> None:  # noqa: ANN001
    _fake_store(tmp_path / "s", "zarr")
    chunk = tmp_path / "s" / "parts" / "part-000001.zarr" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[12] ^= 0xFF
    chunk.write_bytes(bytes(data))
    url = f"s3://{s3_server.new_bucket()}/fake"
    _upload(tmp_path / "s", url)
    result = invoke(None, "store", "verify", url)
    assert result.exit_code == 1
    assert "problem: part-000001" in result.output and "t3" in result.output
    assert "Error:" in result.output and "re-extract" in result.output


@pytest.mark.slow
def test_probe_and_distill_read_teacher_frames_from_s3(
    tiny_pipeline: TinyPipeline, s3_server, tmp_path: Path  # noqa: ANN001
) -> None:
    bucket = s3_server.new_bucket()
    _upload(tiny_pipeline.store, f"s3://{bucket}/stores/musicnn")
    params = yaml.safe_load(tiny_pipeline.params.read_text())
    params["extract"]["store_root"] = f"s3://{bucket}/stores"
    params["probe"]["runs_root"] = str(tmp_path / "runs")
    params["distill"].update(loader="store", runs_root=str(tmp_path / "runs"))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))

    probe = invoke(path, "probe", "--teacher", "musicnn")
    assert probe.exit_code == 0, probe.output
    local = json.loads((tiny_pipeline.runs / "probe-musicnn" / "metrics.json").read_text())
    remote = json.loads((tmp_path / "runs" / "probe-musicnn" / "metrics.json").read_text())
    assert remote["test_map"] == pytest.approx(local["test_map"])  # the same frames, read through S3
    run = tmp_path / "runs" / "kd"
    distill = invoke(path, "distill", "--variant", "east-kd", "--run-dir", str(run), "--no-progress")
    assert distill.exit_code == 0, distill.output
    assert json.loads((run / "metrics.json").read_text())["teacher"] == "musicnn"
    # read-only and in place: nothing was copied next to the runs, nothing written to the bucket
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "runs"]
    listed = open_store(f"s3://{bucket}/stores/musicnn")
    assert len(listed) == 32 and listed.listed_parts() == open_store(tiny_pipeline.store).listed_parts()
