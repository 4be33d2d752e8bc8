"""verify: checksums and index <-> data consistency; corruption names the tracks and part (req. 6)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.stores import StoreSpec, create_store, export_store, open_store
from pipeline.stores.upgrade import upgrade_store
from tests.store_formats import to_format1

DIM, CHUNK = 8, 16


def _spec() -> StoreSpec:
    return StoreSpec(
        kind="embedding", teacher="fake", config={}, weights_sha256="0" * 64, sample_rate=16000,
        hop_seconds=0.5, window_seconds=1.0, frame0_center_seconds=0.25, clip_level=False, dim=DIM,
    )


def _store(path: Path, backend: str = "zarr"):  # noqa: ANN202
    rng = np.random.default_rng(3)
    store = create_store(path, _spec(), backend=backend, chunk_frames=CHUNK)
    with store.writer(part_tracks=6) as writer:
        for i in range(12):
            writer.add(f"t{i:02d}", rng.standard_normal((5 + 2 * i, DIM)), audio_sha256="s", duration=1.0)
    return open_store(path)


def _ids_in_rows(store, part: str, lo: int, hi: int) -> list[str]:  # noqa: ANN001
    entries = store.index.parts[part].entries
    return sorted(e.track_id for e in entries if e.offset < hi and e.offset + e.n_frames > lo)


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    data[at + 1] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("backend", ["zarr", "hdf5"])
def test_clean_store_verifies(tmp_path: Path, backend: str) -> None:
    report = _store(tmp_path / "s", backend).verify()
    assert report.ok and report.problems == [] and report.notes == []
    assert (report.parts, report.tracks) == (2, 12)
    assert report.frames == sum(5 + 2 * i for i in range(12))


def test_corrupted_zarr_chunk_names_its_tracks_and_part(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    _flip(tmp_path / "s" / "parts" / "part-000001.zarr" / "c" / "0" / "0", 10)  # inside chunk 0 of the shard
    report = open_store(tmp_path / "s").verify()
    expected = _ids_in_rows(store, "part-000001", 0, CHUNK)
    assert not report.ok and report.bad_tracks == {"part-000001": expected}
    line = next(p for p in report.problems if "part-000001" in p)
    assert all(repr(t) in line for t in expected) and "unreadable" in line


def test_corrupted_hdf5_chunk_names_its_tracks_and_part(tmp_path: Path) -> None:
    import h5py

    store = _store(tmp_path / "s", "hdf5")
    file = tmp_path / "s" / "parts" / "part-000000.h5"
    with h5py.File(file, "r") as handle:
        info = handle["frames"].id.get_chunk_info(1)
    _flip(file, info.byte_offset + 3)
    report = open_store(tmp_path / "s").verify()
    assert report.bad_tracks == {"part-000000": _ids_in_rows(store, "part-000000", CHUNK, 2 * CHUNK)}


def test_changed_frames_without_chunk_checksums_fail_the_track_checksum(tmp_path: Path) -> None:
    store = _store(tmp_path / "s")
    export = open_store(export_store(store, tmp_path / "mm", format="memmap"))
    entry = export.entry("t09")
    array = np.load(tmp_path / "mm" / "parts" / "part-000001.npy", mmap_mode="r")
    header = (tmp_path / "mm" / "parts" / "part-000001.npy").stat().st_size - array.nbytes
    _flip(tmp_path / "mm" / "parts" / "part-000001.npy", header + (entry.offset + 2) * DIM * 2)
    report = open_store(tmp_path / "mm").verify()
    assert report.bad_tracks == {"part-000001": ["t09"]}
    assert any("checksum mismatch" in p and "'t09'" in p for p in report.problems)


def _edit_index(path: Path, part: str, edit) -> None:  # noqa: ANN001
    """Edit the track rows of ``part`` in the store's index, written as format 1 (JSON) for the edit."""
    if not (path / "parts" / f"{part}.json").exists():
        to_format1(path)
    file = path / "parts" / f"{part}.json"
    data = json.loads(file.read_text())
    edit(data["tracks"])
    file.write_text(json.dumps(data))


def test_index_inconsistencies_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _store(path)

    def damage(tracks: list) -> None:
        tracks[2][1] = tracks[1][1]  # t02... overlaps its neighbour
        tracks[3][0] = "t07"  # an id that part-000001 holds as well

    _edit_index(path, "part-000000", damage)
    problems = "\n".join(open_store(path).verify(checksums=False).problems)
    assert "overlap" in problems and "'t01'" in problems and "'t02'" in problems
    assert "'t07' is listed in part-000000 and again in part-000001" in problems
    upgrade_store(path)  # the compact index keeps the rows as they are: verify finds the same
    assert open_store(path).verify(checksums=False).problems == problems.split("\n")


def test_rows_outside_the_part_refuse_the_part(tmp_path: Path) -> None:
    path = tmp_path / "s"
    _store(path)
    _edit_index(path, "part-000000", lambda tracks: tracks[0].__setitem__(1, 10_000))  # past the array's end
    store = open_store(path)
    assert "t00" not in store and "t07" in store  # the damaged part is refused, the others read
    problems = "\n".join(store.verify(checksums=False).problems)
    assert "part-000000: refused" in problems and "offset of 't00' = 10000" in problems


def test_missing_index_and_missing_data_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "s"
    store = _store(path)
    lost = [e.track_id for e in store.index.parts["part-000001"].entries]
    to_format1(path)
    (path / "parts" / "part-000000.json").unlink()
    shutil.rmtree(path / "parts" / "part-000001.zarr")
    report = open_store(path).verify()
    assert not report.ok
    assert any("part-000000: listed in parts.json" in p and "missing" in p for p in report.problems)
    assert any(p.startswith("part-000001: data cannot be opened") for p in report.problems)
    assert report.bad_tracks == {"part-000001": lost}


def test_verify_checks_the_stores_audio_cache_in_the_same_call(tmp_path: Path) -> None:
    """`pipeline store verify STORE` also verifies STORE/audio (most of a store's bytes) without a second call."""
    from tests.stage2_fixtures import invoke, make_fake_data

    data = make_fake_data(tmp_path, [2.0] * 5, sample_rate=8000, cache=True)
    clean = invoke(None, "store", "verify", str(data.store))
    assert clean.exit_code == 0, clean.output
    summaries = clean.output.strip().splitlines()
    assert len(summaries) == 2 and summaries[1].startswith(f"{data.store / 'audio'}: ") and "clean" in summaries[1]

    chunk = next(p for p in sorted((data.store / "audio" / "parts").rglob("*")) if p.is_file() and p.parent.name == "0")
    _flip(chunk, 20)
    damaged = invoke(None, "store", "verify", str(data.store))
    assert damaged.exit_code == 1
    problems = [line for line in damaged.output.splitlines() if line.startswith("problem: ")]
    assert problems and all(line.startswith(f"problem: {data.store / 'audio'}: part-") for line in problems)
    assert damaged.output.strip().splitlines()[-1].startswith(f"Error: {data.store / 'audio'}: ")

    (data.store / "audio" / "teacher.json").write_text("{not json")
    unreadable = invoke(None, "store", "verify", str(data.store))
    assert unreadable.exit_code == 1 and "the audio cache cannot be opened" in unreadable.output
