"""The cost table: what each student and each teacher with its probe costs to tag 10 s of audio.

``benchmarks/bench_cost.py`` measures the rows side by side in one run and writes
``benchmarks/results/cost.json``; this module turns that JSON into the Markdown table the README
and ``pipeline report`` show (the report adds each model's test mAP).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

#: where the benchmark writes its JSON and the report looks for it
COST_JSON = Path("benchmarks/results/cost.json")


def read_cost(path: Path | str = COST_JSON) -> dict[str, Any] | None:
    """The benchmark's JSON document, or None when the file is not there."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 1e6:.2f}"


def _ms(row: Mapping[str, Any], key: str) -> str:
    value = row["ms_per_10s"].get(key)
    return "-" if value is None else f"{value:.1f}"


def _rtf(row: Mapping[str, Any]) -> str:
    rtf = row["rtf"]
    return f"{rtf['torch']:.4f}" + (f" / {rtf['onnx_int8']:.4f}" if rtf.get("onnx_int8") else "")


def cost_table(doc: Mapping[str, Any], test_map: Mapping[str, str] | None = None) -> str:
    """Markdown table of ``doc['rows']`` (bench_cost.py's JSON).

    Args:
        doc: the benchmark's JSON document.
        test_map: model name -> text of a ``test mAP`` column (no column when None; ``-`` for a
            model missing from it).

    Returns:
        The table, one row per model, without a trailing newline.
    """
    head = ("| model | role | parameters | file MB float32 / int8 | GFLOPs / 10 s | CPU ms / 10 s, 1 thread: "
            "torch / ONNX / ONNX int8 | real-time factor (torch / int8) |")
    rule = "|---|---|---|---|---|---|---|"
    if test_map is not None:
        head, rule = head + " test mAP |", rule + "---|"
    lines = [head, rule]
    for row in doc["rows"]:
        cells = [f"`{row['model']}`", row["role"], f"{row['parameters']:,}",
                 f"{_mb(row['float32_bytes'])} / {_mb(row['int8_bytes'])}", f"{row['gflops_per_10s']:.2f}",
                 f"{_ms(row, 'torch')} / {_ms(row, 'onnx')} / {_ms(row, 'onnx_int8')}", _rtf(row)]
        if test_map is not None:
            cells.append(test_map.get(row["model"], "-"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
