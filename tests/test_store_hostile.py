"""A store is input from someone else: hostile or broken stores are refused, not obeyed.

Each case builds one damaged store and expects a one-line :class:`StoreError` (from opening,
reading, writing or the CLI) or a ``verify`` finding, while nothing outside the store is
read or written (a sentinel folder next to it is compared before and after).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from pipeline.errors import StoreError
from pipeline.stores import StoreSpec, create_store, open_store
from pipeline.stores.index import frames_checksum
from tests.stage2_fixtures import invoke
from tests.store_formats import to_format1

DIM, CHUNK = 4, 8


def _spec(**changes: object) -> StoreSpec:
    base: dict = dict(kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
                      hop_seconds=0.5, window_seconds=1.0, frame0_center_seconds=0.25, clip_level=False, dim=DIM,
                      dtype="float32")
    base.update(changes)
    return StoreSpec(**base)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """A clean 2-part store ``s`` (format-1 index) and an ``outside`` folder holding a secret and a copy of a part."""
    root = tmp_path / "s"
    store = create_store(root, _spec(), chunk_frames=CHUNK)
    rng = np.random.default_rng(0)
    with store.writer(part_tracks=3) as writer:
        for i in range(6):
            writer.add(f"t{i}", rng.standard_normal((10 + i, DIM)), audio_sha256="sha", duration=5.0)
    to_format1(root)  # these cases edit the JSON index of format 1; format 2's are in test_store_index.py
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"name": "part-000000"}')
    shutil.copytree(root / "parts" / "part-000000.zarr", outside / "part-000000.zarr")
    shutil.copy(root / "teacher.json", outside / "teacher.json")
    return root, outside


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _edit_json(path: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _index(root: Path, part: str = "part-000000") -> Path:
    return root / "parts" / f"{part}.json"


def _refused_on_open(root: Path, match: str) -> None:
    with pytest.raises(StoreError, match=match) as info:
        open_store(root)
    assert "\n" not in str(info.value)
    result = invoke(None, "store", "info", str(root))  # the CLI: one line, exit 1
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output


def _finding(root: Path, match: str, *, lost: str = "t0") -> None:
    store = open_store(root)
    report = store.verify()
    assert not report.ok and any(match in p for p in report.problems), report.problems
    if lost in store:  # the track is listed: reading it is refused with one line
        with pytest.raises(StoreError) as info:
            store.read(lost)
        assert "\n" not in str(info.value)


# ---- names that lead outside -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../outside/part-000000", "/etc/passwd", "part-000000/../../x", "part-0"])
def test_part_names_outside_the_store_are_refused(world: tuple[Path, Path], name: str) -> None:
    root, outside = world
    before = _snapshot(outside)
    _edit_json(root / "parts.json", lambda d: d["parts"].append({"name": name}))
    _refused_on_open(root, "not of the form part-NNNNNN")
    assert _snapshot(outside) == before


@pytest.mark.parametrize("file", ["../../outside/part-000000.zarr", "/tmp/part-000000.zarr", "part-000001.zarr"])
def test_part_data_file_outside_the_part_is_refused(world: tuple[Path, Path], file: str) -> None:
    root, _ = world
    _edit_json(_index(root), lambda d: d.__setitem__("file", file))
    _finding(root, "is not part-000000.<zarr|h5|npy>")
    assert "t0" not in open_store(root) and "t3" in open_store(root)


@pytest.mark.parametrize("track", ["../escape", "/abs/olute", "a/../../b", "", "bell\x07"])
def test_track_ids_with_paths_are_refused(world: tuple[Path, Path], track: str) -> None:
    root, _ = world
    _edit_json(_index(root), lambda d: d["tracks"][0].__setitem__(0, track))
    _finding(root, "is not allowed")
    with pytest.raises(StoreError, match="is not allowed"):
        with create_store(root.parent / "fresh", _spec()).writer() as writer:
            writer.add(track, np.zeros((3, DIM)), audio_sha256="s", duration=1.0)


# ---- symlinks out of the store -------------------------------------------------------------
def test_symlinked_part_data_outside_is_refused(world: tuple[Path, Path]) -> None:
    root, outside = world
    shutil.rmtree(root / "parts" / "part-000000.zarr")
    os.symlink(outside / "part-000000.zarr", root / "parts" / "part-000000.zarr")
    _finding(root, "points outside its store")


def test_symlinked_chunk_inside_a_part_is_refused(world: tuple[Path, Path]) -> None:
    root, outside = world
    chunk = root / "parts" / "part-000000.zarr" / "c" / "0" / "0"
    chunk.unlink()
    os.symlink(outside / "part-000000.zarr" / "c" / "0" / "0", chunk)
    _finding(root, "points outside its store")


def test_symlinked_metadata_is_refused(world: tuple[Path, Path]) -> None:
    root, outside = world
    _index(root).unlink()
    os.symlink(outside / "secret.json", _index(root))
    _finding(root, "points outside its store")
    (root / "teacher.json").unlink()
    os.symlink(outside / "teacher.json", root / "teacher.json")
    _refused_on_open(root, "points outside its store")


@pytest.mark.parametrize("folder", ["tmp", "parts"])
def test_writer_never_follows_a_symlinked_folder_out(world: tuple[Path, Path], folder: str) -> None:
    root, outside = world
    target = outside / "elsewhere"
    target.mkdir()
    if folder == "parts":
        shutil.copytree(root / "parts", target, dirs_exist_ok=True)
    shutil.rmtree(root / folder, ignore_errors=True)
    os.symlink(target, root / folder)
    before = _snapshot(outside)
    with pytest.raises(StoreError, match="points outside its store"):
        store = open_store(root, mode="a")
        with store.writer() as writer:
            writer.add("new", np.zeros((3, DIM)), audio_sha256="s", duration=1.0)
    assert _snapshot(outside) == before


# ---- metadata that lies ----------------------------------------------------------------------
def test_index_dim_or_dtype_disagreeing_with_teacher_json(world: tuple[Path, Path]) -> None:
    root, _ = world
    _edit_json(_index(root), lambda d: d.__setitem__("dtype", "float16"))
    _finding(root, "teacher.json says (4, float32)")
    _edit_json(_index(root, "part-000001"), lambda d: d.__setitem__("dim", 5))
    _finding(root, "teacher.json says (4, float32)", lost="t3")


def test_teacher_json_dtype_disagreeing_with_the_arrays(world: tuple[Path, Path]) -> None:
    root, _ = world
    _edit_json(root / "teacher.json", lambda d: d.__setitem__("dtype", "float16"))
    for part in ("part-000000", "part-000001"):
        _edit_json(_index(root, part), lambda d: d.__setitem__("dtype", "float16"))
    _finding(root, "float32, but its index and teacher.json say")


def test_index_rows_disagreeing_with_the_array(world: tuple[Path, Path]) -> None:
    root, _ = world

    def grow(data: dict) -> None:
        data["n_frames"] += 50
        data["tracks"][0][2] += 50 - sum(row[2] for row in data["tracks"][1:]) * 0  # t0 claims 50 more rows
        for row in data["tracks"][1:]:
            row[1] += 50

    _edit_json(_index(root), grow)
    _finding(root, "but its index and teacher.json say")


# ---- absurd sizes ------------------------------------------------------------------------------
def test_a_10_to_the_12_frame_track_is_refused_before_any_allocation(world: tuple[Path, Path]) -> None:
    root, _ = world

    def huge(data: dict) -> None:
        data["n_frames"] = 10**12
        data["tracks"][0][2] = 10**12 - 100

    _edit_json(_index(root), huge)
    store = open_store(root)
    assert "t0" not in store  # nothing sized from the lie (frame_times would need 8 TB)
    _finding(root, "n_frames = 1000000000000 is not an integer")


@pytest.mark.parametrize("field,value", [("dim", 10**9), ("sample_rate", 0), ("hop_seconds", float("inf"))])
def test_absurd_teacher_json_values_are_refused(world: tuple[Path, Path], field: str, value: object) -> None:
    root, _ = world
    _edit_json(root / "teacher.json", lambda d: d.__setitem__(field, value))
    _refused_on_open(root, "out of range|not a finite")


def test_absurd_chunk_size_is_refused(world: tuple[Path, Path]) -> None:
    root, _ = world
    _edit_json(root / "teacher.json", lambda d: d["store"].__setitem__("chunk_frames", 10**12))
    _refused_on_open(root, "chunk_frames .1000000000000. is not an integer")


# ---- bad frames --------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_frames_are_refused_even_with_a_matching_checksum(world: tuple[Path, Path], bad: float) -> None:
    import zarr

    root, _ = world
    array = zarr.open_array(str(root / "parts" / "part-000000.zarr"), mode="r+")
    array[2, 1] = bad
    frames = np.asarray(array[0:10])
    _edit_json(_index(root), lambda d: d["tracks"][0].__setitem__(5, frames_checksum(frames)))
    _finding(root, "NaN or Inf frames in tracks: 't0'")
    with pytest.raises(StoreError, match="NaN or Inf"):
        open_store(root).read_window("t0", 0.0, 2.0)


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_truncated_chunks_are_refused(tmp_path: Path, backend: str) -> None:
    store = create_store(tmp_path / "s", _spec(), backend=backend, chunk_frames=CHUNK)
    with store.writer() as writer:
        for i in range(4):
            writer.add(f"t{i}", np.ones((12, DIM)), audio_sha256="s", duration=6.0)
    data = (tmp_path / "s" / "parts" / "part-000000.zarr" / "c" / "0" / "0" if backend == "zarr"
            else tmp_path / "s" / "parts" / "part-000000.h5")
    with open(data, "r+b") as handle:
        handle.truncate(data.stat().st_size // 2)
    _finding(tmp_path / "s", "part-000000")
    result = invoke(None, "store", "verify", str(tmp_path / "s"))
    assert result.exit_code == 1 and result.output.strip().splitlines()[-1].startswith("Error:")


def test_index_naming_missing_parts(world: tuple[Path, Path]) -> None:
    root, _ = world
    _edit_json(root / "parts.json", lambda d: d["parts"].append({"name": "part-000009"}))
    store = open_store(root)
    assert len(store) == 6 and store.missing_parts == ["part-000009"]
    _finding(root, "part-000009: listed in parts.json but parts/part-000009.json is missing", lost="none")


# ---- teacher.json and part index with unknown fields or wrong types -------------------------
@pytest.mark.parametrize("change,match", [
    (lambda d: d.__setitem__("exec", "rm -rf /"), "unknown field"),
    (lambda d: d["store"].__setitem__("codec", "pickle"), "unknown field"),
    (lambda d: d.__setitem__("dim", "4"), "field 'dim' = '4' is not int"),
    (lambda d: d.__setitem__("clip_level", "no"), "field 'clip_level'"),
    (lambda d: d.__setitem__("sample_rate", 16000.5), "field 'sample_rate'"),
    (lambda d: d.__setitem__("config", ["a"]), "field 'config'"),
    (lambda d: d["store"].__setitem__("chunk_frames", "8"), "chunk_frames"),
    (lambda d: d["store"].__setitem__("backend", "pickle"), "unknown store backend"),
])
def test_teacher_json_with_unknown_fields_or_wrong_types(world: tuple[Path, Path], change, match: str) -> None:  # noqa: ANN001, E501
    root, _ = world
    _edit_json(root / "teacher.json", change)
    _refused_on_open(root, match)


@pytest.mark.parametrize("change,match", [
    (lambda d: d.__setitem__("extra", 1), "unknown field"),
    (lambda d: d.__setitem__("n_frames", "33"), "n_frames = '33'"),
    (lambda d: d["tracks"][0].__setitem__(4, "long"), "duration of 't0'"),
    (lambda d: d["tracks"].append([1, 2]), "is not [id"),
    (lambda d: d.__setitem__("name", "part-000001"), "names itself"),
])
def test_part_index_with_unknown_fields_or_wrong_types(world: tuple[Path, Path], change, match: str) -> None:  # noqa: ANN001, E501
    root, _ = world
    _edit_json(_index(root), change)
    _finding(root, match)


def test_parts_json_with_wrong_types_is_refused(world: tuple[Path, Path]) -> None:
    root, _ = world
    (root / "parts.json").write_text('{"format": 1, "parts": [{"name": 7}]}')
    _refused_on_open(root, "not of the form")
    (root / "parts.json").write_text('{"format": 1, "parts": "part-000000"}')
    _refused_on_open(root, "malformed")


@pytest.mark.parametrize("how", ["external_link", "external_storage", "soft_link"])
def test_hdf5_parts_referring_to_files_outside_are_refused(tmp_path: Path, how: str) -> None:
    import h5py

    root = tmp_path / "s"
    store = create_store(root, _spec(), backend="hdf5", chunk_frames=CHUNK)
    with store.writer() as writer:
        writer.add("t0", np.ones((10, DIM)), audio_sha256="s", duration=5.0)
    part = root / "parts" / "part-000000.h5"
    outside = tmp_path / "outside.h5"
    with h5py.File(part, "r") as source, h5py.File(outside, "w") as copy:
        copy.create_dataset("frames", data=source["frames"][:])
    raw = tmp_path / "outside.raw"
    raw.write_bytes(np.ones((10, DIM), dtype=np.float32).tobytes())
    part.unlink()
    with h5py.File(part, "w") as handle:
        if how == "external_link":
            handle["frames"] = h5py.ExternalLink(str(outside), "frames")
        elif how == "external_storage":
            handle.create_dataset("frames", shape=(10, DIM), dtype="float32",
                                  external=[(str(raw), 0, raw.stat().st_size)])
        else:
            handle.create_dataset("hidden", data=np.ones((10, DIM), dtype=np.float32))
            handle["frames"] = h5py.SoftLink("/hidden")
    _finding(root, "refers to data outside the part")
