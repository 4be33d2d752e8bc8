"""The 8-bit store form (``dtype: uint8``): error bound, every reader dequantises alike, conversions."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pipeline.batch import Batch
from pipeline.cli import cli
from pipeline.audio_source import AudioSource
from pipeline.data import ClipDataset, hot_copy
from pipeline.errors import StoreError
from pipeline.stores import StoreSpec, convert_store, create_store, export_store, open_store
from pipeline.stores.quant import LEVELS, dequantise, quant_params, quantise, value_range
from tests.stage2_fixtures import make_fake_data

DIM = 5


def _bound(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """scale / 2 per dimension, plus the float32 rounding of ``code * scale + shift`` (relative, and
    the smallest normal float32 for ranges that underflow the float32 scale)."""
    magnitude = np.abs(x).astype(np.float64) + np.abs(shift) + LEVELS * scale
    return scale / 2.0 + 4 * np.finfo(np.float32).eps * magnitude + np.finfo(np.float32).tiny


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 40), st.integers(1, 6)),
              elements=st.floats(-1e4, 1e4, width=32)))
def test_round_trip_error_is_at_most_half_a_step_per_dimension(x: np.ndarray) -> None:
    scale, shift = quant_params(*value_range([x], x.shape[1]))
    codes = quantise(x, scale, shift)
    back = dequantise(codes, scale, shift)
    assert codes.dtype == np.uint8 and back.dtype == np.float32 and back.shape == x.shape
    assert (np.abs(back.astype(np.float64) - x) <= _bound(x, scale, shift)).all()
    assert (scale >= 0).all() and np.array_equal(codes.min(axis=0), np.zeros(x.shape[1], np.uint8))


def _spec(dtype: str = "uint8") -> StoreSpec:
    return StoreSpec(kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
                     hop_seconds=1.0, window_seconds=3.0, frame0_center_seconds=1.5, clip_level=False, dim=DIM,
                     dtype=dtype)


def _frames() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    out = {f"t{i}": (rng.standard_normal((4 + i, DIM)) * (1 + i)).astype(np.float32) for i in range(9)}
    for value in out.values():
        value[:, 3] = 2.5  # a constant dimension in every part
    return out


def _store(path: Path, dtype: str = "uint8", backend: str = "zarr", frames: dict | None = None):  # noqa: ANN202
    store = create_store(path, _spec(dtype), backend=backend, chunk_frames=8)
    with store.writer(part_tracks=4) as writer:
        for track, value in (frames or _frames()).items():
            writer.add(track, value, audio_sha256="sha", duration=4.0)
    return open_store(path)


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_a_store_returns_frames_within_the_bound_and_verifies_clean(tmp_path: Path, backend: str) -> None:
    frames = _frames()
    with np.errstate(all="raise"):  # the constant dimension divides nothing by zero
        store = _store(tmp_path / "s", backend=backend, frames=frames)
    assert len(store.parts()) == 3 and store.spec.frame_dtype == "float32"
    for track, x in frames.items():
        got = store.read(track)
        scale, shift = store.quant_params(store.entry(track).part)
        assert got.dtype == np.float32 and store.read_stored(track).dtype == np.uint8
        assert (np.abs(got - x) <= _bound(x, scale, shift)).all()
        assert scale[3] == 0 and np.array_equal(got[:, 3], x[:, 3])  # constant: read back exactly
    window, _times = store.read_window("t5", 2.0, 5.0)
    assert np.array_equal(window, store.read("t5")[1:4])
    assert store.read("t2", 3, 3).dtype == np.float32
    report = store.verify()
    assert report.ok and "clean" in report.summary()


def test_every_backend_and_the_loader_return_the_same_dequantised_frames(tmp_path: Path) -> None:
    data = make_fake_data(tmp_path / "data", [3.0, 4.5, 2.5, 5.0])
    eight = convert_store(data.store, tmp_path / "u8", backend="zarr", dtype="uint8")
    copies = [convert_store(eight, tmp_path / "h5", backend="hdf5"),
              open_store(export_store(eight, tmp_path / "mm", format="memmap")),
              open_store(hot_copy(eight.path, tmp_path / "cache"))]
    for copy in copies:
        assert copy.spec == eight.spec and copy.verify().ok
        for track in eight.track_ids():
            assert np.array_equal(copy.read_stored(track), eight.read_stored(track))
            assert np.array_equal(copy.read(track), eight.read(track))
    kwargs = {"clip_seconds": 2.0, "random_crop": True, "seed": 3}
    audio = AudioSource(data.audio_root, data.sample_rate, data.cache)
    loaders = [ClipDataset(data.clips, audio, teacher_store=path, **kwargs)
               for path in (eight.path, copies[0].path, copies[2].path)]
    for i in range(len(loaders[0])):
        items = [loader[i].teachers[0] for loader in loaders]
        assert items[0].dtype == np.float32 and items[0].shape[0] > 0
        assert all(np.array_equal(items[0], item) for item in items[1:])


def test_conversion_to_and_from_the_8_bit_form(tmp_path: Path) -> None:
    frames = _frames()
    half = _store(tmp_path / "f16", dtype="float16", frames=frames)
    eight = convert_store(half, tmp_path / "u8", backend="hdf5", dtype="uint8", compression="zstd")
    assert (eight.spec.dtype, eight.layout.compression, len(eight.parts())) == ("uint8", "zstd", 3)
    assert eight.spec.differences(half.spec) == ["dtype: 'uint8' != 'float16'"]
    back = convert_store(eight, tmp_path / "f32", backend="zarr", dtype="float32")
    assert back.verify().ok and eight.verify().ok
    for track in half.track_ids():
        x = half.read(track).astype(np.float32)
        scale, shift = eight.quant_params(eight.entry(track).part)
        assert (np.abs(eight.read(track) - x) <= _bound(x, scale, shift)).all()
        assert back.read(track).dtype == np.float32 and np.array_equal(back.read(track), eight.read(track))
    export = export_store(eight, tmp_path / "npy", format="npy")
    assert np.array_equal(np.load(export / "t1.npy"), eight.read("t1"))


def test_the_cli_converts_into_the_8_bit_form(tmp_path: Path) -> None:
    _store(tmp_path / "f16", dtype="float16")
    result = CliRunner().invoke(cli, ["store", "convert", str(tmp_path / "f16"), "--backend", "zarr",
                                      "--dtype", "uint8", "--out", str(tmp_path / "u8")])
    assert result.exit_code == 0, result.output
    assert "float16" in result.output and "uint8" in result.output
    assert open_store(tmp_path / "u8").spec.dtype == "uint8"


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_frames_are_refused_with_one_line(tmp_path: Path, bad: float) -> None:
    store = create_store(tmp_path / "s", _spec())
    x = np.zeros((3, DIM), np.float32)
    x[1, 2] = bad
    with pytest.raises(StoreError, match="NaN or Inf") as caught:
        with store.writer() as writer:
            writer.add("t", x, audio_sha256="", duration=3.0)
    assert "\n" not in str(caught.value) and len(open_store(tmp_path / "s")) == 0


def test_an_audio_cache_is_never_8_bit() -> None:
    with pytest.raises(StoreError, match="embedding stores"):
        StoreSpec.for_audio(8000).__class__(**{**StoreSpec.for_audio(8000).to_json(), "dtype": "uint8"})


def test_a_segment_with_bad_parameters_is_refused(tmp_path: Path) -> None:
    import zipfile

    store = _store(tmp_path / "s")
    segment = sorted((tmp_path / "s" / "index").iterdir())[0]
    with zipfile.ZipFile(segment) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    raw = bytearray(members["part.scale.npy"])
    raw[-4:] = np.array([np.nan], np.float32).tobytes()
    members["part.scale.npy"] = bytes(raw)
    with zipfile.ZipFile(segment, "w") as archive:
        for name, blob in members.items():
            archive.writestr(name, blob)
    reopened = open_store(store.path)
    assert len(reopened) < len(store) and any("NaN or Inf" in why for why in reopened.refused_parts.values())
    assert not reopened.verify().ok


def _batches(clips: list, store: str, cache: str, data) -> list[Batch]:  # noqa: ANN001
    import torch
    from torch.utils.data import DataLoader

    dataset = ClipDataset(clips, AudioSource(data.audio_root, data.sample_rate, cache), clip_seconds=2.0,
                          teacher_store=store, random_crop=True, seed=5)
    loader = DataLoader(dataset, batch_size=2, shuffle=True, collate_fn=dataset.collate,
                        generator=torch.Generator().manual_seed(1))
    return list(loader)


def test_the_loader_over_s3_returns_the_local_batches(tmp_path: Path, s3_server) -> None:  # noqa: ANN001
    import s3fs

    data = make_fake_data(tmp_path / "data", [3.0, 4.5, 2.5, 5.0, 3.5])
    local = convert_store(data.store, tmp_path / "u8", backend="zarr", dtype="uint8").path
    convert_store(data.cache, tmp_path / "u8" / "audio", backend="zarr")
    url = f"s3://{s3_server.new_bucket()}/u8"
    s3fs.S3FileSystem(skip_instance_cache=True).put(str(local), url.removeprefix("s3://"), recursive=True)
    expected = _batches(data.clips, str(local), f"{local}/audio", data)
    direct = _batches(data.clips, url, f"{url}/audio", data)  # loader: store, reading through fsspec
    copied = _batches(data.clips, str(hot_copy(url, tmp_path / "c")), str(hot_copy(f"{url}/audio", tmp_path / "c")),
                      data)  # loader: memmap, the copy filled from S3
    assert len(expected) == 3 and expected[0].teachers[0].frames.shape[0] == 2
    for got in (direct, copied):
        assert len(got) == len(expected)
        for mine, theirs in zip(got, expected):
            assert len(mine.teachers) == len(theirs.teachers)
            for a, b in ((mine.audio, theirs.audio), (mine.teachers[0].frames, theirs.teachers[0].frames),
                         (mine.labels, theirs.labels)):
                assert np.array_equal(np.asarray(a), np.asarray(b))
