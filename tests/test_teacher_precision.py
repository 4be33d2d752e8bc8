"""Per-teacher numeric precision: validation, provenance, and the relative error of bfloat16.

The error bounds asserted here are the figures ``pipeline teachers`` states
(:data:`pipeline.teachers.precision.MEASURED_BF16_ERROR`). Weights are random, in each
teacher's official file format (``benchmarks/random_weights.py``), except musicnn's real ones;
PaSST and CNN14 are shrunk for CPU time.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import random_weights  # noqa: E402

from pipeline.errors import ConfigError  # noqa: E402
from pipeline.teachers import build_teacher  # noqa: E402
from pipeline.teachers.panns import PannsTeacher  # noqa: E402
from pipeline.teachers.passt import PasstTeacher  # noqa: E402
from pipeline.teachers.precision import MEASURED_BF16_ERROR  # noqa: E402


class TinyPanns(PannsTeacher):
    architecture = random_weights.PANNS_TINY


class TinyPasst(PasstTeacher):
    architecture = random_weights.PASST_TINY


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> dict[str, dict]:
    return random_weights.teacher_settings(tmp_path_factory.mktemp("weights"), tiny=True)


def _make(name: str, settings: dict):  # noqa: ANN202
    if name == "panns":
        return TinyPanns(TinyPanns.config_type(**settings))
    if name == "passt":
        return TinyPasst(TinyPasst.config_type(**settings))
    return build_teacher(name, settings)


def _audio(sample_rate: int, seconds: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("name", ["musicnn", "openl3", "vggish", "passt", "panns"])
def test_bfloat16_error_is_within_the_stated_bound(name: str, settings: dict) -> None:
    torch.set_num_threads(1)
    exact = _make(name, settings[name]).load("cpu")
    reduced = _make(name, dict(settings[name], precision="bfloat16")).load("cpu")
    audio = _audio(exact.sample_rate)[None]
    reference, approx = exact.embed(audio), reduced.embed(audio)
    assert reference.shape == approx.shape and np.isfinite(approx).all()
    error = float(np.abs(approx - reference).max() / np.abs(reference).max())
    assert 0 < error <= MEASURED_BF16_ERROR[name], error  # > 0: the setting really changes the arithmetic


def test_musicnn_batched_patches_equal_the_shared_cpu_path() -> None:
    """The GPU shape (independent patches, batched convs) gives the CPU path's frames."""
    teacher = build_teacher("musicnn", {"hop_seconds": 1.0}).load("cpu")
    grid = teacher.grid
    audio = _audio(16000, 9.0)
    windows = grid.cut(audio, 0, grid.num_windows(len(audio)))
    shared = teacher.embed_windows(windows)
    calls = []
    original = teacher._net.forward_patches
    teacher._net.forward_patches = lambda *a: calls.append(1) or original(*a)
    teacher.share_overlap = False
    batched = teacher.embed_windows(windows)
    assert calls
    np.testing.assert_allclose(batched, shared, rtol=1e-5, atol=1e-5 * np.abs(shared).max())


def test_bad_precision_is_a_config_error_and_float32_is_not_provenance() -> None:
    with pytest.raises(ConfigError, match="precision 'half'.*float32, tf32, bfloat16, float16"):
        build_teacher("musicnn", {"precision": "half"})
    assert "precision" not in build_teacher("musicnn", {}).describe()["config"]  # old stores stay valid
    assert build_teacher("musicnn", {"precision": "bfloat16"}).describe()["config"]["precision"] == "bfloat16"
