"""hear-eval-kit's real embedding runner writes a cache that ``pipeline store import --format hear`` reads.

The test builds a task in heareval 2021.1.3's own layout (``<tasks>/<task>/task_metadata.json``,
``labelvocabulary.csv``, ``<split>.json`` and the audio in ``<sample rate>/<split>/``), runs
``python -m heareval.embeddings.runner`` on our HEAR module of musicnn, imports what the runner
wrote (``<file>.embedding.npy`` + ``<file>.timestamps.json``) and compares it with the
pipeline's own musicnn store of the same audio.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from pipeline.audio import read_audio, write_audio
from pipeline.cli import cli
from pipeline.config import load_params
from pipeline.stores import open_store
from stages.extract import run as extract
from tests.extract_fixtures import CLASSES, make_dataset

pytest.importorskip("heareval.embeddings.runner", reason="heareval is installed by scripts/install.sh")

ROOT = Path(__file__).resolve().parents[1]
MODULE = "pipeline.hear.musicnn"
RATE = 16000  # the module's sample_rate: the runner reads <task>/16000/<split>/
SECONDS = 5.0


def _task(tasks: Path, audio_root: Path, clip_ids: list[str]) -> Path:
    """A one-split ``event`` task in hear-eval-kit's layout holding the clips' audio as float WAV."""
    task = tasks / "east-demo"
    metadata = {"task_name": "east-demo", "version": "east-demo-1", "embedding_type": "event",
                "prediction_type": "multilabel", "split_mode": "trainvaltest", "sample_duration": SECONDS,
                "evaluation": ["event_onset_200ms_fms"], "splits": ["train"]}
    task.mkdir(parents=True)
    (task / "task_metadata.json").write_text(json.dumps(metadata))
    (task / "labelvocabulary.csv").write_text("idx,label\n" + "".join(f"{i},{c}\n" for i, c in enumerate(CLASSES)))
    labels = {}
    for i, clip_id in enumerate(clip_ids):
        audio = read_audio(audio_root / f"{clip_id}.flac", sample_rate=RATE)
        write_audio(task / str(RATE) / "train" / f"{clip_id}.wav", audio, RATE, subtype="FLOAT")
        labels[f"{clip_id}.wav"] = [{"label": CLASSES[i % len(CLASSES)], "start": 0.0, "end": SECONDS * 1000}]
    (task / "train.json").write_text(json.dumps(labels))
    return task


@pytest.mark.slow
def test_the_runners_embeddings_import_and_equal_the_pipelines_store(tmp_path: Path) -> None:
    params_path = make_dataset(tmp_path, n_clips=3, seconds=SECONDS, dtype="float32", cache_audio=False)
    data = yaml.safe_load(params_path.read_text())
    data["teachers"]["musicnn"] = {}  # the defaults, as the HEAR module loads them
    params_path.write_text(yaml.safe_dump(data))
    ids = [f"clip{i:03d}" for i in range(3)]
    _task(tmp_path / "tasks", tmp_path / "audio", ids)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    ran = subprocess.run([sys.executable, "-m", "heareval.embeddings.runner", MODULE, "--tasks-dir",
                          str(tmp_path / "tasks"), "--embeddings-dir", str(tmp_path / "embeddings")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    written = tmp_path / "embeddings" / MODULE / "east-demo" / "train"
    assert sorted(p.name for p in written.glob("*.timestamps.json")) == [f"{i}.wav.timestamps.json" for i in ids]
    assert not list(written.glob("*.timestamps.npy"))  # what the real tool writes, not what a README said

    result = CliRunner().invoke(cli, ["--params", str(params_path), "store", "import",
                                      str(tmp_path / "embeddings"), "--format", "hear", "--teacher", "heareval"])
    assert result.exit_code == 0, result.output
    assert "3 imported" in result.output and "0 files refused" in result.output

    assert extract(load_params(params_path), teacher="musicnn", progress=False).ok
    own = open_store(tmp_path / "stores" / "musicnn")
    imported = open_store(tmp_path / "stores" / "imported-heareval")
    assert sorted(imported.track_ids()) == sorted(own.track_ids()) == ids
    assert (imported.spec.hop_seconds, imported.spec.frame0_center_seconds, imported.spec.dim) == (
        own.spec.hop_seconds, own.spec.frame0_center_seconds, own.spec.dim)
    for track in ids:
        np.testing.assert_allclose(imported.read(track), own.read(track), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(imported.frame_times(track), own.frame_times(track), atol=1e-6)
