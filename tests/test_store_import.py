"""``pipeline store import``: openl3 .npz, hear-eval-kit .npy pairs and plain .npy folders as stores."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.manifests import write_classes, write_manifest
from pipeline.stores import open_store
from tests.stage2_fixtures import ROOT, invoke, make_fake_data


@pytest.fixture
def fake(tmp_path: Path):  # noqa: ANN201
    """12 clips of 2.5 s at 16 kHz with 6-d frames every 0.5 s from 0.25 s, manifests and params."""
    data = make_fake_data(tmp_path / "fake", [2.5] * 12, sample_rate=16000, cache=False)
    manifests = tmp_path / "manifests"
    write_manifest(manifests / "train.jsonl", data.clips[:8])
    write_manifest(manifests / "valid.jsonl", data.clips[8:10])
    write_manifest(manifests / "test.jsonl", data.clips[10:])
    write_classes(manifests / "classes.json", [f"c{i}" for i in range(4)])
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(audio_root=str(data.audio_root), manifests=str(manifests))
    params["teachers_enabled"] = []
    params["extract"].update(store_root=str(tmp_path / "stores"), dtype="float32")
    params["probe"].update(steps=20, runs_root=str(tmp_path / "runs"))
    params["distill"].update(epochs=1, batch_size=4, runs_root=str(tmp_path / "runs"), device="cpu", amp=False)
    params["students"]["mobile_fcn"] = {"n_mels": 32, "dropout": 0.0}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return data, path


def _times(n: int, hop: float = 0.5, frame0: float = 0.25) -> np.ndarray:
    return frame0 + hop * np.arange(n)


def write_openl3(folder: Path, frames: dict[str, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for cid, emb in frames.items():
        np.savez(folder / f"{cid}.npz", embedding=emb, timestamps=_times(len(emb)))


def write_hear(folder: Path, frames: dict[str, np.ndarray], *, stamps: str = "json") -> None:
    """As heareval.embeddings.runner writes them: <audio name>.embedding.npy + .timestamps.json (ms)."""
    folder.mkdir(parents=True, exist_ok=True)
    for cid, emb in frames.items():  # hear-eval-kit keeps the audio file name: <id>.flac.embedding.npy
        np.save(folder / f"{cid}.flac.embedding.npy", emb)
        ms = (_times(len(emb)) * 1000.0).astype(np.float32)
        if stamps == "json":
            (folder / f"{cid}.flac.timestamps.json").write_text(json.dumps(ms.tolist()))
        else:
            np.save(folder / f"{cid}.flac.timestamps.npy", ms)


@pytest.mark.parametrize("fmt", ["openl3", "hear", "hear-npy"])
def test_imported_store_holds_the_files_and_trains_a_student(fake, tmp_path: Path, fmt: str) -> None:
    data, params = fake
    if fmt == "openl3":
        write_openl3(tmp_path / "cache", data.frames)
    else:
        write_hear(tmp_path / "cache", data.frames, stamps=fmt.removeprefix("hear").strip("-") or "json")
        fmt = "hear"
    result = invoke(params, "store", "import", str(tmp_path / "cache"), "--format", fmt, "--teacher", "mine")
    assert result.exit_code == 0, result.output
    assert "12 imported" in result.output and "0 files refused" in result.output
    store = open_store(tmp_path / "stores" / "imported-mine")
    spec = store.spec
    assert spec.teacher == "imported:mine" and spec.config["provenance"] == "imported"
    assert spec.config["format"] == fmt and len(spec.config["fingerprint"]) == 64
    assert spec.config["sample_rate_known"] is (fmt == "openl3")
    assert spec.sample_rate == (48000 if fmt == "openl3" else 16000)
    assert (spec.hop_seconds, spec.frame0_center_seconds, spec.dim) == (0.5, 0.25, 6)
    for cid, emb in data.frames.items():
        np.testing.assert_allclose(store.read(cid), emb, rtol=1e-6)
        np.testing.assert_allclose(store.frame_times(cid), _times(len(emb)), atol=1e-6)
    assert store.verify().ok
    again = invoke(params, "store", "import", str(tmp_path / "cache"), "--format", fmt, "--teacher", "mine")
    assert again.exit_code == 0 and "12 already stored" in again.output
    # stage two treats it like any other store
    run_dir = tmp_path / "runs" / "student"
    trained = invoke(params, "distill", "--variant", "east-final", "--teacher", "imported:mine", "--run-dir",
                     str(run_dir), "--no-progress")
    assert trained.exit_code == 0, trained.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["teacher"] == "imported:mine" and np.isfinite(metrics["valid_map"])
    probe = invoke(params, "probe", "--teacher", "imported:mine")
    assert probe.exit_code == 0, probe.output
    assert (tmp_path / "runs" / "probe-imported-mine" / "probe.pt").is_file()


def test_bad_files_are_one_line_each_and_the_rest_imports(fake, tmp_path: Path) -> None:
    data, params = fake
    frames = dict(data.frames)
    write_openl3(tmp_path / "cache", frames)
    np.savez(tmp_path / "cache" / "nobody.npz", embedding=frames["clip-000"], timestamps=_times(5))
    np.savez(tmp_path / "cache" / "clip-003.npz", embedding=np.zeros((5, 9), np.float32), timestamps=_times(5))
    stamps = _times(5)
    stamps[3] = stamps[1]
    np.savez(tmp_path / "cache" / "clip-004.npz", embedding=frames["clip-004"], timestamps=stamps)
    (tmp_path / "cache" / "clip-005.npz").write_bytes(b"not a zip file")
    result = invoke(params, "store", "import", str(tmp_path / "cache"), "--format", "openl3")
    assert result.exit_code == 2
    refused = [line for line in result.stderr.splitlines() if line.strip().startswith("refused")]
    assert len(refused) == 4, result.stderr
    text = "\n".join(refused)
    assert "nobody.npz: no clip in the manifests has the id or audio file 'nobody'" in text
    assert "clip-003.npz: dimension 9, but the store's is 6" in text
    assert "clip-004.npz: timestamps are not increasing at frame 3" in text
    assert "clip-005.npz: cannot be read" in text
    store = open_store(tmp_path / "stores" / "imported-openl3")
    assert sorted(store.track_ids()) == sorted(set(data.frames) - {"clip-003", "clip-004", "clip-005"})


def test_npy_folder_needs_the_grid_and_matches_audio_paths(fake, tmp_path: Path) -> None:
    data, params = fake
    folder = tmp_path / "npy" / "sub"
    folder.mkdir(parents=True)
    for cid, emb in data.frames.items():
        np.save(folder.parent / f"{cid}.npy", emb)  # audio path "clip-000.flac" without its extension
    missing = invoke(params, "store", "import", str(tmp_path / "npy"), "--format", "npy")
    assert missing.exit_code == 1 and "--hop and --frame0" in missing.output
    result = invoke(params, "store", "import", str(tmp_path / "npy"), "--format", "npy", "--hop", "0.5",
                    "--frame0", "0.25", "--teacher", "folder")
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "stores" / "imported-folder")
    assert len(store) == 12 and store.spec.window_seconds == 0.5


def test_off_grid_timestamps_are_refused(fake, tmp_path: Path) -> None:
    data, params = fake
    write_hear(tmp_path / "cache", {k: v for k, v in data.frames.items() if k != "clip-001"})
    emb = data.frames["clip-001"]
    np.save(tmp_path / "cache" / "clip-001.flac.embedding.npy", emb)
    (tmp_path / "cache" / "clip-001.flac.timestamps.json").write_text(
        json.dumps((_times(len(emb), hop=0.6) * 1000.0).tolist()))
    result = invoke(params, "store", "import", str(tmp_path / "cache"), "--format", "hear")
    assert result.exit_code == 2 and "clip-001.flac.embedding.npy: frame 1 at 0.85 s is off the store's grid" \
        in result.stderr


def test_bad_hear_timestamp_files_are_one_line_each(fake, tmp_path: Path) -> None:
    data, params = fake
    cache = tmp_path / "cache"
    write_hear(cache, data.frames)
    (cache / "clip-002.flac.timestamps.json").write_text("[0.25, 750.0,")
    (cache / "clip-003.flac.timestamps.json").write_text(json.dumps({"t": [1, 2]}))
    (cache / "clip-004.flac.timestamps.json").unlink()
    np.save(cache / "clip-005.flac.embedding.npy", data.frames["clip-005"].mean(axis=0))  # a scene embedding
    result = invoke(params, "store", "import", str(cache), "--format", "hear")
    assert result.exit_code == 2
    text = result.stderr
    assert "clip-002.flac.embedding.npy: its timestamps file clip-002.flac.timestamps.json is not JSON" in text
    assert "clip-003.flac.embedding.npy: its timestamps file clip-003.flac.timestamps.json is not a JSON list" in text
    assert "clip-004.flac.embedding.npy: its timestamps file clip-004.flac.timestamps.json (or .timestamps.npy) " \
           "is missing" in text
    assert "clip-005.flac.embedding.npy: embedding has shape (6,): a scene embedding" in text
    assert len(open_store(tmp_path / "stores" / "imported-hear")) == 8


def test_probe_and_distill_speak_of_the_import_not_of_an_extraction(
        fake, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Clips without a file are left out of probe and distill with a warning about the import; a split with
    none of its clips imported stops with one line saying what to do. No extraction or extract report exists."""
    import logging

    data, params = fake
    write_hear(tmp_path / "cache", {k: v for k, v in data.frames.items() if k not in ("clip-001", "clip-009")})
    assert invoke(params, "store", "import", str(tmp_path / "cache"), "--format", "hear", "--teacher", "mine"
                  ).exit_code == 0
    for args in (["probe", "--teacher", "imported:mine"],
                 ["distill", "--variant", "east-final", "--teacher", "imported:mine", "--run-dir",
                  str(tmp_path / "runs" / "r"), "--no-progress"]):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            result = invoke(params, *args)
        assert result.exit_code == 0, result.output
        said = [r.getMessage() for r in caplog.records if "not in the store" in r.getMessage()]
        assert len(said) == 1 and "`pipeline store import` had no usable file for them" in said[0], said
        assert "extract" not in said[0]

    write_hear(tmp_path / "valid-missing", {k: v for k, v in data.frames.items() if k not in ("clip-008", "clip-009")})
    invoke(params, "store", "import", str(tmp_path / "valid-missing"), "--format", "hear", "--teacher", "partial")
    stopped = invoke(params, "probe", "--teacher", "imported:partial")
    assert stopped.exit_code == 1 and len(stopped.output.strip().splitlines()) == 1
    assert "none of the 2 clip(s) of split 'valid' is in the store (`pipeline store import` had no usable file" \
        in stopped.output and "run `pipeline store import` again" in stopped.output
    assert "extract" not in stopped.output.replace("imported-partial", "")


def test_clip_ids_missing_from_an_imported_store_name_the_import(fake, tmp_path: Path) -> None:
    from pipeline.data import pooled_embeddings
    from pipeline.errors import StoreError

    data, params = fake
    write_hear(tmp_path / "cache", {k: v for k, v in data.frames.items() if k != "clip-002"})
    invoke(params, "store", "import", str(tmp_path / "cache"), "--format", "hear", "--teacher", "mine")
    store = tmp_path / "stores" / "imported-mine"
    with pytest.raises(StoreError, match=r"give `pipeline store import` their files .* and import again first"):
        pooled_embeddings(store, data.clips)
    with pytest.raises(StoreError, match=r"give `pipeline store import` its file .*, or check the store path"):
        open_store(store).entry("clip-002")
