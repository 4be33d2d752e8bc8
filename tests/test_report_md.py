"""`pipeline report`: the Markdown table with every row and the three PNG plots."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from pipeline.errors import TrainingError
from tests import stage2_fixtures
from tests.stage2_fixtures import TinyPipeline, VARIANTS, invoke

tiny_pipeline = stage2_fixtures.tiny_pipeline  # the session's real pipeline (built once)

LABELS = {"baseline": "Baseline (no teacher)", "east-final": "EAsT-Final", "east-kd": "EAsT-KD"}


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def _rows(markdown: str) -> dict[str, list[str]]:
    """The single-run table (the cost table follows "## Cost", the table over seeds "## Over seeds";
    tests/test_report_judging.py)."""
    rows = {}
    for line in markdown.split("## Over seeds")[0].split("## Cost")[0].splitlines():
        if line.startswith("| ") and not line.startswith("| model"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_report_has_every_row_and_real_plots(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = invoke(tiny_pipeline.params, "report", "--out", str(out))
    assert result.exit_code == 0, result.output
    text = (out / "report.md").read_text()
    rows = _rows(text)
    assert list(rows) == ["Teacher probe (musicnn)", *[LABELS[v] for v in VARIANTS]]
    probe = json.loads((tiny_pipeline.runs / "probe-musicnn" / "metrics.json").read_text())
    assert rows["Teacher probe (musicnn)"][0] == f"{probe['test_map']:.4f}"
    for variant in VARIANTS:
        evaluated = json.loads((tiny_pipeline.run_dir(variant) / "eval-test.json").read_text())
        cells = rows[LABELS[variant]]
        assert cells[0] == f"{evaluated['map']:.4f}" and cells[1] == f"{evaluated['roc_auc']:.4f}"
        assert cells[3] == f"{evaluated['parameters']:,}"
        assert cells[4] == ("0.00" if variant == "baseline" else "0.30")
        assert cells[5] == "0"  # the seed
    base = json.loads((tiny_pipeline.run_dir("baseline") / "eval-test.json").read_text())["map"]
    for variant in ("east-final", "east-kd"):
        east = json.loads((tiny_pipeline.run_dir(variant) / "eval-test.json").read_text())["map"]
        assert f"- {LABELS[variant]}: {east - base:+.4f}" in text
    for name, min_size in (("comparison", (600, 350)), ("curves", (1000, 350)), ("per_class", (900, 400))):
        path = out / f"{name}.png"
        assert path.stat().st_size > 5_000, name
        width, height = _png_size(path)
        assert width >= min_size[0] and height >= min_size[1], (name, width, height)
        assert f"![{name}]({name}.png)" in text
    # one seed per variant: judged over seeds too, and never better or worse with one pair
    assert "## Over seeds" in text and (out / "seeds.png").stat().st_size > 5_000 and "![seeds](seeds.png)" in text
    judged = {row["variant"]: row for row in json.loads((out / "judged.json").read_text())["configurations"]}
    assert judged["baseline"]["verdict"] == "reference (baseline)"
    for variant in ("east-final", "east-kd"):
        assert judged[variant]["verdict"] == "not distinguishable" and judged[variant]["paired"]["seeds"] == [0]


def test_report_without_evaluated_runs_is_an_error(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    from pipeline.config import load_params
    from stages.report import run

    with pytest.raises(TrainingError, match="no evaluated runs.*pipeline evaluate"):
        run(load_params(tiny_pipeline.params), out=str(tmp_path / "r"), runs_root=str(tmp_path / "empty"))


def test_report_leaves_out_runs_that_are_not_evaluated(tmp_path: Path) -> None:
    from pipeline.report import collect_runs, plot_all, write_markdown

    runs = tmp_path / "runs"
    (runs / "baseline").mkdir(parents=True)
    (runs / "baseline" / "eval-test.json").write_text(json.dumps(
        {"map": 0.5, "roc_auc": 0.7, "f1_macro": 0.3, "parameters": 1000, "cpu_ms_per_clip": 2.0}))
    (runs / "east-kd").mkdir()  # trained, never evaluated
    (runs / "east-kd" / "metrics.json").write_text(json.dumps({"valid_map": 0.4}))
    summaries = collect_runs(runs, list(VARIANTS), ["musicnn"])
    assert [s.name for s in summaries] == ["baseline"]
    plots = plot_all(summaries, tmp_path / "out")
    assert [p.name for p in plots] == ["comparison.png"]  # no history, no per-class file
    text = write_markdown(summaries, plots, tmp_path / "out").read_text()
    assert "| Baseline (no teacher) | 0.5000 | 0.7000 | 0.3000 | 1,000 | n/a | n/a |" in text
    assert "EAsT" not in _rows(text).__repr__()


def test_report_finds_runs_under_distill_default_names(tmp_path: Path) -> None:
    """`pipeline distill` alone writes <student>-<teacher>-<variant>; dvc.yaml writes <variant>."""
    from pipeline.report import collect_runs

    runs = tmp_path / "runs"
    for name, variant, value in (("mobile_fcn-musicnn-east-kd", "east-kd", 0.41),
                                 ("mobile_fcn-baseline", "baseline", 0.30), ("baseline", "baseline", 0.35),
                                 ("mobile_fcn-musicnn-east-final", "east-final", 0.2)):
        (runs / name).mkdir(parents=True)
        (runs / name / "config.json").write_text(json.dumps({"variant": variant}))
        if variant != "east-final":  # trained, not evaluated
            (runs / name / "eval-test.json").write_text(json.dumps({"map": value}))
    found = {s.name: s.metrics["map"] for s in collect_runs(runs, list(VARIANTS), [])}
    assert found == {"baseline": 0.35, "east-kd": 0.41}  # runs/<variant> wins over another name


def test_report_shows_the_cost_table_with_test_map(tmp_path: Path) -> None:
    """With benchmarks/bench_cost.py's JSON the report has the cost table, each model with its test mAP."""
    from pipeline.report import collect_runs, write_markdown

    runs = tmp_path / "runs"
    for variant, value in (("baseline", 0.5), ("east-kd", 0.55)):
        (runs / variant).mkdir(parents=True)
        (runs / variant / "eval-test.json").write_text(json.dumps({"map": value, "roc_auc": 0.7, "parameters": 10}))
        (runs / variant / "config.json").write_text(json.dumps({"student": "mobile_fcn", "variant": variant}))
    (runs / "probe-musicnn").mkdir()
    (runs / "probe-musicnn" / "metrics.json").write_text(json.dumps({"test_map": 0.66, "test_roc_auc": 0.8}))
    row = {"parameters": 10, "gflops_per_10s": 1.5, "ms_per_10s": {"torch": 20.0}, "rtf": {"torch": 0.002}}
    cost = {"command": "python benchmarks/bench_cost.py", "machine": {"cpus": 2, "load_average_before": [1.0]},
            "rows": [{**row, "model": "mobile_fcn", "role": "student", "float32_bytes": 5_640_000,
                      "int8_bytes": 4_800_000, "ms_per_10s": {"torch": 20.0, "onnx": 10.0, "onnx_int8": 8.0},
                      "rtf": {"torch": 0.002, "onnx": 0.001, "onnx_int8": 0.0008}},
                     {**row, "model": "musicnn", "role": "teacher + probe", "float32_bytes": 9_470_000,
                      "int8_bytes": None}]}
    summaries = collect_runs(runs, list(VARIANTS), ["musicnn"])
    (tmp_path / "out").mkdir()
    text = write_markdown(summaries, [], tmp_path / "out", cost=cost).read_text()
    assert "CPU ms / clip" not in text and "## Cost" in text
    assert ("| `mobile_fcn` | student | 10 | 5.64 / 4.80 | 1.50 | 20.0 / 10.0 / 8.0 | 0.0020 / 0.0008 | "
            "0.500 (Baseline (no teacher)), 0.550 (EAsT-KD) |") in text
    assert "| `musicnn` | teacher + probe | 10 | 9.47 / - | 1.50 | 20.0 / - / - | 0.0020 | 0.660 (probe) |" in text
