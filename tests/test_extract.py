"""Stage one end to end with the real musicnn teacher: bad files, resume, long files, dask."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests.extract_fixtures import make_dataset
from pipeline.cli import cli
from pipeline.config import load_params
from pipeline.stores import open_store
from stages.extract import run


def test_corrupt_file_is_reported_and_skipped(tmp_path: Path) -> None:
    params_path = make_dataset(tmp_path, n_clips=5, corrupt=1)
    result = CliRunner().invoke(cli, ["--params", str(params_path), "extract", "--teacher", "musicnn", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "clip000" in result.output and "1 failed" in result.output
    store = open_store(tmp_path / "stores" / "musicnn")
    assert sorted(store.track_ids()) == [f"clip{i:03d}" for i in range(1, 5)]
    assert store.verify().ok
    report = json.loads((tmp_path / "stores" / "musicnn-extract-report.json").read_text())
    assert report["done"] == 4 and [f["track"] for f in report["failed"]] == ["clip000"]
    assert "clip000.flac" in report["failed"][0]["path"]


def test_rerun_skips_finished_tracks_and_frames_match_teacher(tmp_path: Path) -> None:
    params = load_params(make_dataset(tmp_path, n_clips=4))
    first = run(params, teacher="musicnn", progress=False)
    assert (first.done, first.skipped) == (4, 0)
    second = run(params, teacher="musicnn", progress=False)
    assert (second.done, second.skipped) == (0, 4)

    from pipeline.audio import read_audio
    from pipeline.teachers import build_teacher

    teacher = build_teacher("musicnn", dict(params.teachers["musicnn"])).load("cpu")
    store = open_store(tmp_path / "stores" / "musicnn")
    audio = read_audio(tmp_path / "audio" / "clip002.flac", sample_rate=16000)
    expected = teacher.embed(audio[None])[0]
    stored = store.read("clip002").astype(np.float32)
    assert stored.shape == expected.shape
    np.testing.assert_allclose(stored, expected, rtol=2e-3, atol=2e-3)  # float16 storage
    np.testing.assert_allclose(store.frame_times("clip002"), teacher.frame_times(len(expected)), atol=1e-9)
    cached = open_store(tmp_path / "stores" / "musicnn" / "audio").read("clip002")[:, 0] / 32768.0
    np.testing.assert_allclose(cached, audio, atol=1.5 / 32768)


def test_long_file_streams_in_blocks_with_the_same_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file decoded in blocks much shorter than itself gives exactly the whole-file frames."""
    import pipeline.extraction as extraction
    from pipeline.audio import write_audio
    from pipeline.datasets.demo import render_instrument
    from pipeline.manifests import Clip, write_manifest
    from pipeline.teachers import build_teacher

    params_path = make_dataset(tmp_path, n_clips=1)
    audio = np.concatenate([render_instrument(n, seconds=6.0, sample_rate=16000, seed=3) for n in
                            ("violin", "drums", "piano", "guitar")])  # 24 s
    write_audio(tmp_path / "audio" / "long.flac", audio, 16000)
    write_manifest(tmp_path / "manifests" / "train.jsonl",
                   [Clip("long", "long.flac", 24.0, 16000, (0,) * 20, (True,) * 20)])
    monkeypatch.setattr(extraction, "BLOCK_SECONDS", 2.5)  # 10 blocks, each shorter than a 3 s window
    report = run(load_params(params_path), teacher="musicnn", progress=False)
    assert report.done == 1
    teacher = build_teacher("musicnn", {"hop_seconds": 1.0}).load("cpu")
    from pipeline.audio import read_audio

    whole = teacher.embed(read_audio(tmp_path / "audio" / "long.flac", sample_rate=16000)[None])[0]
    stored = open_store(tmp_path / "stores" / "musicnn").read("long").astype(np.float32)
    assert stored.shape == whole.shape == (teacher.num_frames(len(audio)), 200)
    np.testing.assert_allclose(stored, whole, rtol=2e-3, atol=2e-3)


def test_dask_local_cluster_gives_the_same_store(tmp_path: Path) -> None:
    """Two dask worker processes write their own parts; the content equals the in-process run."""
    inline = load_params(make_dataset(tmp_path / "a", n_clips=6))
    parallel = load_params(make_dataset(tmp_path / "b", n_clips=6, workers=2))
    run(inline, teacher="musicnn", progress=False)
    report = run(parallel, teacher="musicnn", progress=False)
    assert report.workers == 2 and report.done == 6
    a, b = open_store(tmp_path / "a" / "stores" / "musicnn"), open_store(tmp_path / "b" / "stores" / "musicnn")
    assert sorted(a.track_ids()) == sorted(b.track_ids())
    assert len(b.parts()) >= 2  # several workers, several parts
    for track in a.track_ids():  # batches differ in composition and threads: float16 ulps only
        np.testing.assert_allclose(a.read(track).astype(np.float32), b.read(track).astype(np.float32),
                                   rtol=1e-3, atol=1e-4)
    assert b.verify().ok


def test_missing_weights_fail_before_touching_the_store(tmp_path: Path) -> None:
    params_path = make_dataset(tmp_path, n_clips=1)
    result = CliRunner().invoke(cli, ["--params", str(params_path), "extract", "--teacher", "openl3"])
    assert result.exit_code == 1
    assert "pip install openl3" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "stores" / "openl3").exists()


def test_stage_two_refuses_a_store_made_with_other_settings(tmp_path: Path) -> None:
    from pipeline.errors import ProvenanceError
    from pipeline.teacher_stores import checked_store

    params_path = make_dataset(tmp_path, n_clips=1)
    run(load_params(params_path), teacher="musicnn", progress=False)
    assert checked_store(load_params(params_path), "musicnn") == tmp_path / "stores" / "musicnn"
    other = load_params(params_path, {"teachers.musicnn.layer": "max_pool"})
    with pytest.raises(ProvenanceError, match=r"config.layer: 'penultimate' != 'max_pool'"):
        checked_store(other, "musicnn")
    url = (tmp_path / "stores" / "musicnn").as_uri()  # a shared store opened read-only by URL
    assert checked_store(load_params(params_path), "musicnn", url) == url
