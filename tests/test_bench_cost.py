"""benchmarks/bench_cost.py: one student and musicnn with its probe, measured side by side."""
from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest

from pipeline.cost import cost_table
from tests.benchmark_fixtures import load_benchmark
from tests.stage2_fixtures import ROOT


def _bench() -> ModuleType:
    return load_benchmark("bench_cost")


def test_cost_rows_and_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)  # params.yaml's student and teacher settings
    out = tmp_path / "cost.json"
    bench = _bench()
    doc = bench.main(["--students", "mobile_fcn", "--repeats", "2", "--out", str(out),
                      "--probe", str(tmp_path / "absent.pt")])
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc))
    student, teacher = doc["rows"]
    assert (student["model"], teacher["model"]) == ("mobile_fcn", "musicnn")
    assert student["parameters"] == 306_388  # README: Mobile-FCN with 20 classes
    assert teacher["parameters"] > 700_000 and teacher["probe"] == "random"
    assert student["int8_bytes"] < student["float32_bytes"] and teacher["int8_bytes"] is None
    assert 0 < student["gflops_per_10s"] < student["export_gflops_per_10s"]  # the export's DFT is counted
    assert set(student["ms_per_10s"]) == {"torch", "onnx", "onnx_int8"} and set(teacher["ms_per_10s"]) == {"torch"}
    assert student["rtf"]["torch"] == pytest.approx(student["ms_per_10s"]["torch"] / 10_000)
    table = cost_table(doc, {"mobile_fcn": "0.547"}).splitlines()
    assert len(table) == 4 and table[2].startswith("| `mobile_fcn` | student | 306,388 |")
    assert table[2].endswith("| 0.547 |") and table[3].endswith("| - |")
    capsys.readouterr()
    bench.main(["--table", "--out", str(out)])
    assert capsys.readouterr().out.strip() == cost_table(doc)
