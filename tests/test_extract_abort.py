"""An extraction that aborts before committing anything leaves nothing that blocks the rerun."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.extract_fixtures import make_dataset

ROOT = Path(__file__).resolve().parents[1]

BROKEN_MODULE = '''
"""A HEAR module whose model cannot run (stands for any teacher failing on its first batch)."""
import torch
from torch import nn


class _Model(nn.Module):
    sample_rate = 16000
    timestamp_embedding_size = 8
    scene_embedding_size = 8


def load_model(model_file_path: str = "", **kwargs):
    return _Model()


def get_timestamp_embeddings(audio, model):
    if float(audio.abs().max()) == 0.0:  # the pipeline's probe call on silence works
        n = audio.shape[1] // 1600 + 1
        return torch.zeros(audio.shape[0], n, 8), torch.arange(n, dtype=torch.float32).repeat(audio.shape[0], 1) * 100
    raise RuntimeError("CUDA out of memory (simulated)")


def get_scene_embeddings(audio, model):
    raise RuntimeError("CUDA out of memory (simulated)")
'''


def _extract(params: Path, teacher: str) -> subprocess.CompletedProcess[str]:
    """``pipeline extract`` in a fresh process, with the folder of ``params`` importable (the HEAR module)."""
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "--params", str(params), "extract", "--teacher", teacher, "--no-progress"],
        capture_output=True, text=True, cwd=params.parent, timeout=1800,
        env={**os.environ, "PYTHONPATH": f"{params.parent}{os.pathsep}{ROOT}"})


def test_failed_first_batch_is_one_line_and_leaves_no_store(tmp_path: Path) -> None:
    params = make_dataset(tmp_path, n_clips=4)
    (tmp_path / "broken_hear.py").write_text(BROKEN_MODULE)
    data = yaml.safe_load(params.read_text())
    data.setdefault("extract", {})["workers"] = 2  # through dask workers: their logs must stay quiet
    params.write_text(yaml.safe_dump(data))
    out = _extract(params, "hear:broken_hear")
    lines = [row for row in out.stderr.splitlines() if row.strip()]
    assert out.returncode == 1, out.stderr
    assert len(lines) == 1 and "out of memory" in lines[0] and "Traceback" not in out.stderr, out.stderr
    assert not list(tmp_path.glob("stores/*broken*"))  # no empty store blocks the rerun
