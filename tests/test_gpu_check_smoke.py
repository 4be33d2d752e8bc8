"""``benchmarks/gpu_check.py --smoke`` runs every measurement of the GPU check on the CPU, so the
one prepared device command cannot rot between GPU runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_smoke_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    prepared = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke",
                               "--prepare", str(tmp_path / "assets")], env=env, capture_output=True, text=True,
                              timeout=1800)  # the musicnn checkpoint copy the device run loads
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    assert (tmp_path / "assets" / "MTT_musicnn" / ".index").is_file()
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke",
                             "--assets", str(tmp_path / "assets"), "--out", str(out)],
                            env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    data = json.loads(out.read_text())
    assert [row["teacher"] for row in data["teachers"]] == ["musicnn", "openl3", "vggish", "passt", "panns"]
    for row in data["teachers"]:
        assert row["forward_float32"] > 0 and row["forward_bfloat16"] > 0 and row["gpu_equals_cpu"]
        assert row["gflop_per_unit"]["counted"] > 0
    assert data["teachers"][0]["end_to_end"]["rate"] > 0
    assert len(data["training"]) == 2 and all(r["clips_per_second"] > 0 for r in data["training"])
    assert len(data["step"]) == 2 and all(r["east_over_baseline_throughput"] > 0 for r in data["step"])
    assert "target 10,000" in result.stdout  # each figure is printed beside its target
    table = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "speed_table.py"), "--json", str(out),
                            "--print"], env=env, capture_output=True, text=True, timeout=1800)
    assert table.returncode == 0, table.stderr
    assert "| musicnn port, forward only" in table.stdout
