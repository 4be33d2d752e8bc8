"""Regenerate the README's GPU speed table from ``benchmarks/results/gpu_check.json``.

The table sits in README.md between ``<!-- gpu-check:start -->`` and ``<!-- gpu-check:end -->``
and holds issue 12's rows: measured figure, float32 target, reduced-precision target.

Usage: python benchmarks/speed_table.py [--json benchmarks/results/gpu_check.json] [--print]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from gpu_check import TARGETS  # noqa: E402

START, END = "<!-- gpu-check:start -->", "<!-- gpu-check:end -->"
LABELS = {
    "musicnn": "musicnn port, forward only (3 s windows, hop 1 s)",
    "openl3": "OpenL3 (mel128, 512), forward only",
    "vggish": "VGGish, forward only",
    "passt": "PaSST-S, forward only",
    "panns": "PANNs CNN14 (clip level, 10 s), forward only",
}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _met(value: float | None, target: float | None) -> str:
    if value is None or target is None:
        return ""
    return " (met)" if value >= target else " (missed)"


def rows(data: dict) -> list[str]:
    """Markdown rows of the issue's table from one gpu_check JSON."""
    out = []
    for row in data.get("teachers", []):
        name, target = row["teacher"], TARGETS[row["teacher"]]
        unit = target["unit"]
        fp32, bf16 = row.get("forward_float32"), row.get("forward_bfloat16")
        out.append(f"| {LABELS[name]} | {_fmt(fp32)} {unit} fp32{_met(fp32, target['float32'])}, "
                   f"{_fmt(bf16)} bf16{_met(bf16, target['reduced'])}; "
                   f"{row['gflop_per_unit']['counted']:.2f} GFLOP/{row['gflop_per_unit']['unit']} counted; "
                   f"bf16 error {row['bfloat16_rel_error']:.1e}; GPU vs CPU {row['gpu_vs_cpu_rel_diff']:.1e} | "
                   f">= {target['float32']:,} | >= {target['reduced']:,} |")
        e2e = row.get("end_to_end", {})
        if "rate" in e2e:
            out.append(f"| {name}, end to end on real files | {_fmt(e2e['rate'])} {unit} = "
                       f"{e2e['over_forward_only']:.2f}x forward only{_met(e2e['over_forward_only'], 0.8)} | "
                       f">= 0.8x forward | same |")
    for row, (label, target) in zip(data.get("training", []),
                                    [("CP-ResNet rho 7 training fed by the real loader, fp32, batch 16", 900),
                                     ("same, bf16, batch 64", 1150)]):
        cell = f"{_fmt(row['clips_per_second'])} clips/s{_met(row['clips_per_second'], target)}"
        fp32_target, reduced_target = (f">= {target:,}", "-") if not row["amp_bf16"] else ("-", f">= {target:,}")
        out.append(f"| {label} | {cell} | {fp32_target} | {reduced_target} |")
    steps = data.get("step", [])
    if steps:
        cell = ", ".join(f"{r['east_over_baseline_throughput']:.2f}x ({'bf16' if r['amp_bf16'] else 'fp32'})"
                         for r in steps)
        out.append(f"| EAsT-Final step vs baseline step (throughput, same batch) | {cell} | >= 0.9x | >= 0.9x |")
    return out


def table(data: dict) -> str:
    head = [f"Measured by `{data.get('command', 'python benchmarks/gpu_check.py')}` on {data.get('device')} "
            f"(torch {data.get('torch')}, {data.get('wall_s', 0):.0f} s):", "",
            "| what | measured | float32 target | reduced-precision target |", "|---|---|---|---|"]
    return "\n".join(head + rows(data))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/gpu_check.json"))
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--print", action="store_true", help="print the table instead of editing the README")
    args = parser.parse_args()
    data = json.loads(Path(args.json).read_text())
    text = table(data)
    if args.print:
        print(text)
        return
    readme = Path(args.readme)
    content = readme.read_text()
    if START not in content or END not in content:
        raise SystemExit(f"{readme} has no {START} ... {END} block to replace")
    before, rest = content.split(START, 1)
    _old, after = rest.split(END, 1)
    readme.write_text(f"{before}{START}\n{text}\n{END}{after}")
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
