"""The compact index (format 2): segments merge like a binary counter, lookups stay exact, a
hostile segment is refused before anything is sized from it, and `pipeline store upgrade`
turns a format-1 store into one that verifies and reads identical frames."""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import StoreError
from pipeline.stores import StoreSpec, create_store, open_store
from pipeline.stores.columns import id_hash
from pipeline.stores.upgrade import upgrade_store
from tests.stage2_fixtures import invoke
from tests.store_formats import edit_segment, segment_files, to_format1

DIM = 4


def _spec() -> StoreSpec:
    return StoreSpec(kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
                     hop_seconds=0.5, window_seconds=1.0, frame0_center_seconds=0.25, clip_level=False, dim=DIM,
                     dtype="float32")


def _frames(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal((3 + i % 5, DIM)).astype(np.float32)


def _build(root: Path, n: int, part_tracks: int = 3) -> None:
    store = create_store(root, _spec(), chunk_frames=8)
    with store.writer(part_tracks=part_tracks) as writer:
        for i in range(n):
            writer.add(f"t{i}", _frames(i), audio_sha256=f"{i:064x}" if i % 2 else "sha", duration=2.5)


@pytest.fixture
def world(tmp_path: Path) -> tuple[Path, Path]:
    """A 6-track store in one segment (two parts) and an ``outside`` folder."""
    root = tmp_path / "s"
    _build(root, 6)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    assert [f.name for f in segment_files(root)] == ["idx-000000-000001.npz"]
    return root, outside


# ---- the index grows like a binary counter ---------------------------------------------------
def test_segments_stay_logarithmic_and_lookups_exact(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _build(root, 3 * 37, part_tracks=3)  # 37 parts
    store = open_store(root)
    rows = store.index.rows
    assert len(rows) == bin(37).count("1") <= math.ceil(math.log2(37)) + 1
    assert sorted(os.listdir(root / "index")) == sorted(r.file for r in rows)  # superseded ones removed
    assert store.track_ids() == [f"t{i}" for i in range(111)]  # commit order
    for i in (0, 1, 57, 110):
        assert f"t{i}" in store
        np.testing.assert_array_equal(store.read(f"t{i}"), _frames(i))
        assert store.entry(f"t{i}").audio_sha256 == (f"{i:064x}" if i % 2 else "sha")
    assert "t111" not in store and 7 not in store and "" not in store
    assert store.verify().ok
    files, _ = store.disk_usage()
    assert files == 3 + len(rows) + 2 * 37  # teacher.json, parts.json, .lock + segments + zarr.json/shard


def test_a_reader_rereads_parts_json_when_a_segment_was_merged_away(world: tuple[Path, Path]) -> None:
    root, _ = world
    stale = (root / "parts.json").read_text()
    with create_store(root, _spec(), chunk_frames=8).writer(part_tracks=3) as writer:
        for i in range(6, 12):
            writer.add(f"t{i}", _frames(i), audio_sha256="s", duration=1.0)
    assert not (root / "index" / "idx-000000-000001.npz").exists()  # merged into idx-000000-000003
    reader = open_store(root)
    real, calls = reader._read_catalog, []

    def first_stale() -> str:
        calls.append(1)
        return stale if len(calls) == 1 else real()

    reader._cache.clear()
    reader._read_catalog = first_stale  # type: ignore[method-assign]
    reader.refresh()
    assert len(reader) == 12 and not reader.refused_parts and len(calls) >= 2


# ---- a hostile segment is refused --------------------------------------------------------------
def _refused(root: Path, match: str, *, gone: str = "t0") -> None:
    store = open_store(root)
    assert gone not in store
    report = store.verify()
    assert not report.ok and any(match in p for p in report.problems), report.problems


def _set_ids(arrays: dict, ids: list[str]) -> None:
    encoded = [i.encode() for i in ids]
    arrays["id.blob"] = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    arrays["id.ends"] = np.cumsum([len(e) for e in encoded]).astype("<i8")
    hashes = np.array([id_hash(e) for e in encoded], dtype=np.uint64)
    order = np.argsort(hashes, kind="stable")
    arrays["lookup.hash"], arrays["lookup.row"] = hashes[order], order.astype("<i4")


@pytest.mark.parametrize("track", ["../escape", "/abs/olute", "a/../../b", "", "bell\x07", "back\\slash", ".."])
def test_track_ids_with_paths_are_refused(world: tuple[Path, Path], track: str) -> None:
    root, _ = world
    edit_segment(root, lambda meta, arrays: _set_ids(arrays, [track] + [f"t{i}" for i in range(1, 6)]))
    _refused(root, "is not allowed", gone="t1")


def test_ids_that_only_look_like_paths_are_kept(world: tuple[Path, Path]) -> None:
    root, _ = world
    ids = ["a..b", "x/..y", "..z/q", "é/ü..", "t4", "t5"]
    edit_segment(root, lambda meta, arrays: _set_ids(arrays, ids))
    store = open_store(root)
    assert all(i in store for i in ids) and not store.refused_parts


@pytest.mark.parametrize("change,match", [
    (lambda m, a: a.__setitem__("part.rows", np.array([10**12, 30], "<i8")), "n_frames = 1000000000000 of part-000000"),
    (lambda m, a: a["track.offset"].__setitem__(0, 10_000), "n_frames of 't0'"),
    (lambda m, a: a["track.frames"].__setitem__(0, 0), "n_frames of 't0' = 0"),
    (lambda m, a: a["track.duration"].__setitem__(0, np.inf), "duration of 't0'"),
    (lambda m, a: a["lookup.hash"].__setitem__(slice(None), a["lookup.hash"][::-1].copy()), "not sorted"),
    (lambda m, a: a["lookup.row"].__setitem__(slice(None), 0), "not a permutation"),
    (lambda m, a: a["track.part"].__setitem__(0, 1), "commit order"),
    (lambda m, a: a.__setitem__("track.offset", a["track.offset"].astype("<f8")), "expected <i8"),
    (lambda m, a: a.__setitem__("id.ends", a["id.ends"][:-1]), "'id'"),
    (lambda m, a: a["id.ends"].__setitem__(-1, 10**9), "outside its bytes"),
    (lambda m, a: m.__setitem__("exec", "rm -rf /"), "unknown field"),
    (lambda m, a: m.__setitem__("dim", 5), "teacher.json says (4, float32)"),
    (lambda m, a: m.__setitem__("tracks", 7), "expected (7,)"),
    (lambda m, a: m.__setitem__("first", 3), "covers parts 3"),
])
def test_segments_with_lies_are_refused(world: tuple[Path, Path], change, match: str) -> None:  # noqa: ANN001
    root, _ = world
    edit_segment(root, change)
    _refused(root, match)


def test_a_huge_declared_array_is_refused_before_allocation(world: tuple[Path, Path]) -> None:
    root, _ = world
    path = segment_files(root)[0]
    with zipfile.ZipFile(path) as source:
        members = {i.filename: source.read(i) for i in source.infolist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)})
    members["track.offset.npy"] = header.getvalue() + b"\0" * 48
    with zipfile.ZipFile(path, "w") as target:
        for name, data in members.items():
            target.writestr(name, data)
    _refused(root, "declares (1000000000000,)")


def test_compressed_or_foreign_members_are_refused(world: tuple[Path, Path]) -> None:
    root, _ = world
    path = segment_files(root)[0]
    with zipfile.ZipFile(path) as source:
        members = {i.filename: source.read(i) for i in source.infolist()}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for name, data in members.items():
            target.writestr(name, data)
    _refused(root, "is compressed")
    with zipfile.ZipFile(path, "w") as target:
        for name, data in {**members, "payload.pkl": b"cos\nsystem\n"}.items():
            target.writestr(name, data)
    _refused(root, "unexpected member 'payload.pkl'")
    path.write_bytes(b"not a zip")
    _refused(root, "is not a valid index segment")


def test_lying_hashes_hide_tracks_verify_names_them_and_upgrade_repairs(world: tuple[Path, Path]) -> None:
    root, _ = world
    edit_segment(root, lambda m, a: a["lookup.hash"].__setitem__(slice(None), np.arange(6, dtype=np.uint64)))
    store = open_store(root)
    assert "t0" not in store and store.track_ids() == [f"t{i}" for i in range(6)]
    assert any("lookup hashes do not match" in p and "'t0'" in p for p in store.verify().problems)
    upgrade_store(root)
    store = open_store(root)
    assert all(f"t{i}" in store for i in range(6)) and store.verify().ok


@pytest.mark.parametrize("file", ["../../outside/idx-000000-000001.npz", "/etc/passwd", "idx-000000-000002.npz",
                                  "idx-0-1.npz"])
def test_segment_names_outside_the_index_are_refused(world: tuple[Path, Path], file: str) -> None:
    root, _ = world
    data = json.loads((root / "parts.json").read_text())
    data["segments"][0]["file"] = file
    (root / "parts.json").write_text(json.dumps(data))
    with pytest.raises(StoreError, match="is not idx-<first>-<last>.npz"):
        open_store(root)
    result = invoke(None, "store", "info", str(root))
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("change,match", [
    (lambda d: d["segments"][0].update(last=10**8, file="idx-000000-100000000.npz"), "absurd range"),
    (lambda d: d["segments"].append(dict(d["segments"][0])), "overlap"),
    (lambda d: d.__setitem__("format", 3), "index format '3'"),
    (lambda d: d.__setitem__("parts", []), "its fields"),
    (lambda d: d["segments"][0].__setitem__("tracks", "6"), "tracks = '6'"),
])
def test_parts_json_with_lies_is_refused(world: tuple[Path, Path], change, match: str) -> None:  # noqa: ANN001
    root, _ = world
    data = json.loads((root / "parts.json").read_text())
    change(data)
    (root / "parts.json").write_text(json.dumps(data))
    with pytest.raises(StoreError, match=match):
        open_store(root)


def test_symlinked_or_missing_segments(world: tuple[Path, Path]) -> None:
    root, outside = world
    path = segment_files(root)[0]
    shutil.copy(path, outside / path.name)
    path.unlink()
    os.symlink(outside / path.name, path)
    _refused(root, "points outside its store")
    path.unlink()
    _refused(root, "index/idx-000000-000001.npz is missing")
    assert sorted(open_store(root).listed_parts()) == ["part-000000", "part-000001"]
    create_store(root, _spec(), chunk_frames=8)  # resume + clean_tmp: the parts of a lost segment stay
    assert sorted(os.listdir(root / "parts")) == ["part-000000.zarr", "part-000001.zarr"]


# ---- format 1 still reads; `store upgrade` converts it ----------------------------------------
def test_upgrade_of_a_format1_store_verifies_and_reads_identical_frames(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _build(root, 20, part_tracks=4)
    to_format1(root)
    old = open_store(root)
    assert old.index.format == 1 and len(old) == 20 and old.verify().ok
    before = {t: (old.entry(t), old.read(t)) for t in old.track_ids()}
    with pytest.raises(StoreError, match="pipeline store upgrade"):
        open_store(root, mode="a").writer()
    result = invoke(None, "store", "upgrade", str(root))
    assert result.exit_code == 0 and len(result.output.strip().splitlines()) == 1, result.output
    assert "index format 1 -> 2, 20 tracks in 5 parts; 5 index file(s) replaced by 1" in result.output
    assert sorted(os.listdir(root / "parts")) == [f"part-00000{i}.zarr" for i in range(5)]
    new = open_store(root)
    assert new.index.format == 2 and new.verify().ok and list(before) == new.track_ids()
    for track, (entry, frames) in before.items():
        assert new.entry(track) == entry
        np.testing.assert_array_equal(new.read(track), frames)
    with create_store(root, _spec(), chunk_frames=8).writer() as w:
        w.add("t20", _frames(20), audio_sha256="s", duration=1.0)
    assert len(open_store(root)) == 21


def test_upgrade_refuses_a_store_with_missing_parts(tmp_path: Path) -> None:
    root = tmp_path / "s"
    _build(root, 8, part_tracks=4)
    to_format1(root)
    (root / "parts" / "part-000001.json").unlink()
    result = invoke(None, "store", "upgrade", str(root))
    assert result.exit_code == 1 and "would drop their tracks" in result.output
    assert json.loads((root / "parts.json").read_text())["format"] == 1  # untouched


def test_id_checks_hold_across_blocks_of_rows() -> None:
    from pipeline.stores.columns import TextColumn, check_id_column

    ids = [f"d{i % 7}/track-{i}" for i in range(70_000)]
    check_id_column(TextColumn.build(ids, allow_digests=False), where="test")
    for at, bad in [(65_535, "x/../y"), (65_536, ".."), (69_999, "tail\x00")]:
        column = TextColumn.build(ids[:at] + [bad] + ids[at + 1:], allow_digests=False)
        with pytest.raises(StoreError, match="is not allowed"):
            check_id_column(column, where="test")
    assert TextColumn.build(ids).slice(65_530, 65_540).strings() == ids[65_530:65_540]
