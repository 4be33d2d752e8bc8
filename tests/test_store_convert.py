"""zarr <-> hdf5 conversion round trips exactly (req. 7); npy/memmap exports; the `pipeline store` CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.errors import StoreError
from pipeline.stores import StoreSpec, convert_store, create_store, export_store, open_store

DIM = 6


def _spec() -> StoreSpec:
    return StoreSpec(
        kind="embedding", teacher="fake", config={"layer": "x"}, weights_sha256="ab" * 32, sample_rate=16000,
        hop_seconds=1.0, window_seconds=3.0, frame0_center_seconds=1.5, clip_level=False, dim=DIM,
    )


def _store(path: Path, ids: list[str] | None = None):  # noqa: ANN202
    rng = np.random.default_rng(4)
    ids = ids or [f"c{i}" for i in range(10)]
    store = create_store(path, _spec(), chunk_frames=8)
    with store.writer(part_tracks=4) as writer:
        for i, tid in enumerate(ids):
            writer.add(tid, rng.standard_normal((3 + i, DIM)), audio_sha256=f"a{i}", duration=3.0 + i)
    return open_store(path)


def test_zarr_hdf5_round_trip_is_exact(tmp_path: Path) -> None:
    source = _store(tmp_path / "z")
    h5 = convert_store(source, tmp_path / "h", backend="hdf5")
    back = convert_store(tmp_path / "h", tmp_path / "z2", backend="zarr")
    assert h5.backend == "hdf5" and back.backend == "zarr"
    for copy in (open_store(tmp_path / "h"), open_store(tmp_path / "z2")):
        assert copy.spec == source.spec and copy.layout.chunk_frames == source.layout.chunk_frames
        assert copy.track_ids() == source.track_ids()
        assert [copy.entry(t) for t in copy.track_ids()] == [source.entry(t) for t in source.track_ids()]
        for tid in source.track_ids():
            got = copy.read(tid)
            assert got.dtype == np.float16 and np.array_equal(got, source.read(tid))
        assert copy.verify().ok
    with pytest.raises(StoreError, match="is the source store"):
        convert_store(source, tmp_path / "z", backend="hdf5")


def test_conversion_resumes_and_refuses_corrupt_sources(tmp_path: Path) -> None:
    source = _store(tmp_path / "z")
    partial = create_store(tmp_path / "h", source.spec, backend="hdf5", chunk_frames=8)
    with partial.writer() as writer:  # as if a conversion died after its first part
        for tid in source.track_ids()[:4]:
            e = source.entry(tid)
            writer.add(tid, source.read(tid), audio_sha256=e.audio_sha256, duration=e.duration)
    done = convert_store(source, tmp_path / "h", backend="hdf5")
    assert done.track_ids() == source.track_ids() and len(done.parts()) == 3
    shard = tmp_path / "z" / "parts" / "part-000000.zarr" / "c" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[3] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="part-000000 of .* cannot be read .*checksum"):
        convert_store(tmp_path / "z", tmp_path / "h2", backend="hdf5")


def test_npy_export_one_file_per_track(tmp_path: Path) -> None:
    source = _store(tmp_path / "z", ids=["a", "b", "set1/c", "set1/d"])
    out = export_store(source, tmp_path / "npy", format="npy", dtype="float32")
    index = json.loads((out / "index.json").read_text())
    assert set(index["tracks"]) == {"a", "b", "set1/c", "set1/d"}
    assert index["teacher"]["teacher"] == "fake" and index["dtype"] == "float32"
    for tid, row in index["tracks"].items():
        frames = np.load(out / row["file"], allow_pickle=False)
        assert frames.dtype == np.float32 and row["n_frames"] == len(frames)
        np.testing.assert_array_equal(frames, source.read(tid).astype(np.float32))
    assert (out / "set1" / "c.npy").is_file()
    with pytest.raises(StoreError, match="'../escape' is not allowed"):  # refused when written already
        _store(tmp_path / "bad", ids=["../escape"])


def test_memmap_export_is_a_store_with_one_npy_per_part(tmp_path: Path) -> None:
    source = _store(tmp_path / "z")
    out = export_store(source, tmp_path / "mm", format="memmap")
    files = sorted(p.name for p in (out / "parts").iterdir())
    assert files == [f"part-00000{i}.npy" for i in range(3)]
    assert sorted(p.name for p in (out / "index").iterdir()) == ["idx-000000-000001.npz", "idx-000002-000002.npz"]
    assert np.load(out / "parts" / "part-000000.npy", mmap_mode="r").shape == (3 + 4 + 5 + 6, DIM)
    mm = open_store(out)
    assert mm.backend == "memmap" and mm.track_ids() == source.track_ids()
    frames, times = mm.read_window("c7", 2.0, 6.0)
    ref_frames, ref_times = source.read_window("c7", 2.0, 6.0)
    assert np.array_equal(frames, ref_frames) and np.array_equal(times, ref_times) and len(times) == 4
    with pytest.raises(StoreError, match="export format"):
        export_store(source, tmp_path / "x", format="parquet")


def test_cli_info_verify_convert_export(tmp_path: Path) -> None:
    _store(tmp_path / "z")
    runner = CliRunner()
    result = runner.invoke(cli, ["store", "info", str(tmp_path / "z")])
    assert result.exit_code == 0, result.output
    assert "fake" in result.output and "layer=x" in result.output and "abababab" in result.output
    assert "10 in 3 parts" in result.output and "float16" in result.output and "raw float32" in result.output
    facts = json.loads(runner.invoke(cli, ["store", "info", "--json", str(tmp_path / "z")]).output)
    assert facts["tracks"] == 10 and facts["frames"] == sum(3 + i for i in range(10))
    assert facts["audio_hours"] == pytest.approx(sum(3.0 + i for i in range(10)) / 3600)
    assert facts["bytes_raw_float32"] == facts["frames"] * DIM * 4
    assert facts["files"] == 3 + 3 * 2 + 2  # teacher.json, parts.json, .lock + 3 zarr parts + 2 index segments

    args = ["store", "convert", str(tmp_path / "z"), "--backend", "hdf5", "--out", str(tmp_path / "h")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert open_store(tmp_path / "h").backend == "hdf5"
    args = ["store", "export", str(tmp_path / "h"), "--format", "npy", "--out", str(tmp_path / "n")]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "n").glob("*.npy"))) == 10
    result = runner.invoke(cli, ["store", "verify", str(tmp_path / "h")])
    assert result.exit_code == 0 and "clean" in result.output

    shard = tmp_path / "z" / "parts" / "part-000002.zarr" / "c" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[5] ^= 0xFF
    shard.write_bytes(bytes(data))
    result = runner.invoke(cli, ["store", "verify", str(tmp_path / "z")])
    assert result.exit_code == 1
    assert "problem: part-000002" in result.output and "'c8'" in result.output
    result = runner.invoke(cli, ["store", "info", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "teacher.json is missing" in result.output
