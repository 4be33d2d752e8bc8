"""Metrics files that DVC tracks hold no wall-clock field: a rerun on the same inputs writes the same bytes.

Wall time, clips per second and CPU milliseconds per clip go to ``timings*.json`` beside them (not DVC
outputs); the commands still print them and the report still shows CPU ms per clip.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.report import collect_runs
from tests.stage2_fixtures import invoke
from tests.test_store_import import fake, write_hear  # noqa: F401 - the fixture

WALL_CLOCK = ("seconds", "train_seconds", "train_clips_per_second", "cpu_ms_per_clip", "wall_seconds",
              "audio_seconds_per_second")


def _bytes(*paths: Path) -> list[bytes]:
    return [path.read_bytes() for path in paths]


@pytest.mark.slow
def test_probe_distill_and_evaluate_metrics_are_byte_identical_on_a_rerun(fake, tmp_path: Path) -> None:  # noqa: F811
    data, params = fake
    write_hear(tmp_path / "cache", data.frames)
    assert invoke(params, "store", "import", str(tmp_path / "cache"), "--format", "hear", "--teacher", "mine"
                  ).exit_code == 0
    probe_dir, run_dir = tmp_path / "runs" / "probe-imported-mine", tmp_path / "runs" / "r"
    commands = [["probe", "--teacher", "imported:mine"],
                ["distill", "--variant", "east-kd", "--teacher", "imported:mine", "--run-dir", str(run_dir),
                 "--no-progress"],
                ["evaluate", str(run_dir)]]
    outputs = [invoke(params, *args) for args in commands]
    assert all(out.exit_code == 0 for out in outputs), [out.output for out in outputs]
    tracked = [probe_dir / "metrics.json", run_dir / "metrics.json", run_dir / "eval-test.json"]
    for path in tracked:
        assert not set(json.loads(path.read_text())) & set(WALL_CLOCK), path
    assert json.loads((probe_dir / "timings.json").read_text())["seconds"] > 0
    assert set(json.loads((run_dir / "timings.json").read_text())) == {"train_seconds", "train_clips_per_second"}
    assert json.loads((run_dir / "timings-eval-test.json").read_text())["cpu_ms_per_clip"] > 0
    assert " s) " in outputs[0].output and "clips/s on cpu" in outputs[1].output and "ms per clip" in outputs[2].output
    [summary] = collect_runs(tmp_path / "runs", ["r"], [])
    assert summary.metrics["cpu_ms_per_clip"] > 0  # the report still shows it

    first = _bytes(*tracked)
    (run_dir / "last.pt").unlink()  # a fresh run, not a resume
    (run_dir / "best.pt").unlink()
    again = [invoke(params, *args) for args in commands]
    assert all(out.exit_code == 0 for out in again), [out.output for out in again]
    assert _bytes(*tracked) == first


def test_the_extract_report_dvc_tracks_holds_no_wall_clock_field(tmp_path: Path) -> None:
    from tests.extract_fixtures import make_dataset

    params = make_dataset(tmp_path, n_clips=2, seconds=2.0, cache_audio=False)
    result = invoke(params, "extract", "--teacher", "hear:tests.toy_hear", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "stores" / "hear-tests.toy_hear-extract-report.json").read_text())
    assert report["done"] == 2 and not set(report) & set(WALL_CLOCK)
    timings = json.loads((tmp_path / "stores" / "timings-hear-tests.toy_hear-extract.json").read_text())
    assert timings["wall_seconds"] > 0 and timings["audio_seconds_per_second"] > 0
    assert "audio-s/s" in result.output
