"""Third-party teachers through the ``east_pipeline.teachers`` entry-point group.

A plugin package written here is "installed" into a temporary folder (a package plus a
``.dist-info`` with ``entry_points.txt``, what pip leaves behind) and put on ``PYTHONPATH`` of a
``pipeline`` subprocess: it appears in ``pipeline teachers`` and extracts like a built-in.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from pipeline.audio import read_audio
from pipeline.stores import open_store
from tests.extract_fixtures import make_dataset

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
from dataclasses import dataclass
import numpy as np
from pipeline.teachers import Teacher, WindowGrid


@dataclass(frozen=True)
class LoudnessConfig:
    gain: float = 1.0


class LoudnessTeacher(Teacher):
    """Three numbers per 0.1-s window: mean, RMS and peak of the scaled samples."""

    name = "loudness"
    config_type = LoudnessConfig
    weights_hint = "needs no weights"

    @property
    def sample_rate(self):
        return 16000

    @property
    def embedding_dim(self):
        return 3

    @property
    def grid(self):
        return WindowGrid(16000, window=1600, hop=1600)

    def weight_files(self):
        return []

    def weights_available(self):
        return True

    def _load(self, device):
        pass

    def embed_windows(self, windows):
        x = windows * self.config.gain
        feats = [x.mean(axis=1), np.sqrt((x ** 2).mean(axis=1)), np.abs(x).max(axis=1)]
        return np.stack(feats, axis=1)[:, None, :].astype(np.float32)
'''


def install_plugin(site: Path) -> None:
    """What ``pip install`` would leave: the package and a dist-info naming the entry points."""
    (site / "loudness_plugin").mkdir(parents=True)
    (site / "loudness_plugin" / "__init__.py").write_text(PLUGIN)
    info = site / "loudness_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: loudness-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[east_pipeline.teachers]\n"
        "loudness = loudness_plugin:LoudnessTeacher\n"
        "broken = loudness_plugin:NoSuchClass\n"
    )


def pipeline(site: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=1800)


def test_plugin_is_listed_and_extracts(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_plugin(site)
    params = make_dataset(tmp_path, n_clips=3, seconds=2.0, dtype="float32", cache_audio=False)
    listed = pipeline(site, "--params", str(params), "teachers", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["loudness"]["kind"] == "plugin" and rows["loudness"]["usable"] is True
    assert rows["loudness"]["source"] == "loudness_plugin:LoudnessTeacher" and rows["loudness"]["dim"] == 3
    assert rows["broken"]["usable"] is False and "NoSuchClass" in rows["broken"]["note"]
    assert {"musicnn", "hear:<module>", "run:<run_dir>", "imported:<label>"} <= set(rows)

    extracted = pipeline(site, "--params", str(params), "extract", "--teacher", "loudness", "--no-progress")
    assert extracted.returncode == 0, extracted.stderr
    store = open_store(tmp_path / "stores" / "loudness")
    assert store.spec.teacher == "loudness" and len(store) == 3
    audio = read_audio(tmp_path / "audio" / "clip001.flac", sample_rate=16000)
    windows = audio[: len(audio) // 1600 * 1600].reshape(-1, 1600)
    expected = np.stack([windows.mean(1), np.sqrt((windows ** 2).mean(1)), np.abs(windows).max(1)], axis=1)
    np.testing.assert_allclose(store.read("clip001"), expected, rtol=1e-5, atol=1e-6)


def test_without_the_plugin_the_name_is_unknown(tmp_path: Path) -> None:
    params = make_dataset(tmp_path, n_clips=1, seconds=2.0)
    result = pipeline(tmp_path, "--params", str(params), "extract", "--teacher", "loudness", "--no-progress")
    assert result.returncode == 1
    assert "unknown teacher 'loudness'" in result.stderr and "hear:<module>" in result.stderr
    assert "Traceback" not in result.stderr
