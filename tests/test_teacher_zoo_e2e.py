"""A ``hear:`` teacher and a ``run:`` teacher each through extract, probe and distill (east-final, east-kd).

On a rendered demo set of 12/6/6 three-second clips: a small Mobile-FCN is trained first
(labels only) and then serves as the ``run:`` teacher; the ``hear:`` teacher is the HEAR
module written in the tests. The stored frames equal the module / model run directly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tests.toy_hear as toy
from pipeline.audio import read_audio
from pipeline.stores import open_store
from tests.stage2_fixtures import ROOT, invoke


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from pipeline.config import load_params
    from stages import prepare

    root = tmp_path_factory.mktemp("zoo")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(audio_root=str(root / "audio"), manifests=str(root / "manifests"))
    params["demo"].update(n_train=12, n_valid=6, n_test=6, clip_seconds=3.0)
    params["teachers_enabled"] = []
    params["extract"].update(workers=0, store_root=str(root / "stores"), device="cpu", dtype="float32")
    params["teachers"]["hear"].update(mode="window", window_seconds=2.0, context_seconds=0.1)
    params["teachers"]["run"].update(layer=0)  # 0.96-s frames: several per clip (the last map has one)
    params["probe"].update(steps=30, runs_root=str(root / "runs"))
    params["distill"].update(epochs=1, batch_size=6, runs_root=str(root / "runs"), device="cpu", amp=False)
    params["students"]["mobile_fcn"] = {"n_mels": 32, "dropout": 0.0}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    torch.set_num_threads(1)
    prepare.run(load_params(path), builder="demo")
    teacher = invoke(path, "distill", "--variant", "baseline", "--run-dir", str(root / "runs" / "big"),
                     "--no-progress")
    assert teacher.exit_code == 0, teacher.output
    return root, path


def _direct(name: str, root: Path, audio_path: Path) -> np.ndarray:
    if name.startswith("hear:"):
        audio = read_audio(audio_path, sample_rate=16000)
        emb, _ = toy.get_timestamp_embeddings(torch.from_numpy(audio[None]), toy.load_model())
        return emb[0].numpy()
    from pipeline.students.trained import load_run

    run = load_run(root / "runs" / "big")
    with torch.no_grad():
        out = run.model(torch.from_numpy(read_audio(audio_path, sample_rate=run.sample_rate)[None]))
    return out.features[0][0].numpy()


@pytest.mark.parametrize("kind", ["hear", "run"])
def test_teacher_through_extract_probe_and_distill(demo: tuple[Path, Path], kind: str) -> None:
    root, params = demo
    name = "hear:tests.toy_hear" if kind == "hear" else f"run:{root / 'runs' / 'big'}"
    slug = "hear-tests.toy_hear" if kind == "hear" else "run-big"
    extracted = invoke(params, "extract", "--teacher", name, "--no-progress")
    assert extracted.exit_code == 0, extracted.output
    store = open_store(root / "stores" / slug)
    assert len(store) == 24 and store.verify().ok
    spec = store.spec
    assert not spec.clip_level and spec.window_seconds == spec.hop_seconds > 0  # a frame stands for one hop
    assert store.entry(store.track_ids()[0]).n_frames > 1
    clip = json.loads((root / "manifests" / "test.jsonl").read_text().splitlines()[0])
    expected = _direct(name, root, root / "audio" / clip["audio_path"])
    np.testing.assert_allclose(store.read(clip["id"])[: len(expected)], expected, rtol=1e-5, atol=1e-5)

    probe = invoke(params, "probe", "--teacher", name)
    assert probe.exit_code == 0, probe.output
    assert (root / "runs" / f"probe-{slug}" / "probe.pt").is_file()
    for variant in ("east-final", "east-kd"):
        run_dir = root / "runs" / f"{slug}-{variant}"
        trained = invoke(params, "distill", "--variant", variant, "--teacher", name, "--run-dir", str(run_dir),
                         "--no-progress")
        assert trained.exit_code == 0, trained.output
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert metrics["teacher"] == name and metrics["variant"] == variant and np.isfinite(metrics["valid_map"])
        history = (run_dir / "history.csv").read_text().splitlines()
        header = history[0].split(",")
        row = dict(zip(header, history[1].split(",")))
        assert np.isfinite(float(row["train_feat"]))  # the teacher term was computed
        if variant == "east-kd":
            assert np.isfinite(float(row["train_kd"]))
