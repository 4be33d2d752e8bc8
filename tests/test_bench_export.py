"""benchmarks/bench_export.py on a tiny random run: every figure is there and consistent."""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

from tests.run_fixtures import add_clips, make_run_dir
from tests.benchmark_fixtures import load_benchmark


def _bench() -> ModuleType:
    return load_benchmark("bench_export")


def test_bench_export_writes_sizes_maps_and_speed(tmp_path: Path) -> None:
    runs = []
    for seed in (0, 1):
        run = make_run_dir(tmp_path / "runs" / f"kd-{seed}", sample_rate=8000, clip_seconds=4.0, seed=seed)
        add_clips(run, tmp_path / f"data-{seed}", per_split=6, seed=seed)
        runs.append(str(run))
    out = tmp_path / "export.json"
    doc = _bench().main(["--runs", *runs, "--repeats", "2", "--out", str(out), "--work", str(tmp_path / "work")])
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc))
    for row in doc["runs"]:
        assert row["test_clips"] == 6 and row["calibration_clips"] == 6
        assert set(row["files"]) == {"float32", "int8-static", "int8-dynamic"}
        assert row["files"]["float32"]["max_abs_diff_vs_float32"] == 0.0
        for figures in row["files"].values():
            assert 0 < figures["test_map"] <= 1 and figures["ms_per_10s_clip"] > 0 and figures["bytes"] > 0
    static = doc["summary"]["int8-static"]
    assert len(static["map_change_per_run"]) == 2 and static["map_change_std"] is not None
    first = doc["runs"][0]["files"]
    assert static["map_change_per_run"][0] == first["int8-static"]["test_map"] - first["float32"]["test_map"]
    assert static["size_ratio"] > 1
