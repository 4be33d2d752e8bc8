"""The input readers under fuzzing: a short seeded slice of ``benchmarks/fuzz_inputs.py`` and its crash inputs.

Only errors of the project's hierarchy may leave the audio reader, the labels-CSV reader and
the manifest reader, whatever bytes they are given.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pipeline.errors import PipelineError

ROOT = Path(__file__).resolve().parents[1]
REGRESSIONS = sorted((ROOT / "tests" / "data" / "fuzz_regressions").glob("*.bin"))


def _fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_inputs", ROOT / "benchmarks" / "fuzz_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fuzz_inputs", module)
    spec.loader.exec_module(module)
    return module


fuzz = _fuzz()


def test_a_seeded_slice_finds_no_crash() -> None:
    results = fuzz.campaign(seconds=None, examples=120, seed=0)
    assert results["inputs"] >= 4 * 120
    for name, target in results["targets"].items():
        assert target["crashes"] == [], f"{name}: {target['crashes']}"
        assert target["rejected"] > 0  # the mutations do reach the readers' error paths


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_crash_inputs_found_by_fuzzing_are_project_errors(path: Path, tmp_path: Path) -> None:
    fuzz.make_seeds(tmp_path)  # the audio files the labels CSV names
    target = path.name.rsplit("-", 1)[0]
    try:
        fuzz.run_target(target, path.read_bytes(), tmp_path)
    except PipelineError:  # a one-line user error (it was a UnicodeDecodeError traceback)
        pass


def test_regressions_are_kept() -> None:
    assert {p.name.rsplit("-", 1)[0] for p in REGRESSIONS} == {"audio_flac", "labels_csv", "manifest"}
