"""The README's numbers from a fresh run's outputs, never from memory.

``collect`` reads what a fresh ``make demo`` and ``make test`` left (the runs, the probe, the logs
of ``time make demo`` and ``time make test``) into ``benchmarks/results/readme_numbers.json``;
``render`` rewrites the README's marked blocks from that JSON (``--check`` fails when they differ,
which ``tests/test_readme_numbers.py`` does). Usage, after both commands ran with their output
saved::

    (time make demo) > demo.log 2>&1; (time make test) > test.log 2>&1
    python scripts/readme_numbers.py collect --demo-log demo.log --test-log test.log
    python scripts/readme_numbers.py render --write
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "readme_numbers.json"
README = ROOT / "README.md"
BLOCKS = ("demo-table", "demo-timing", "test-timing")


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(round(seconds % 60)):02d} s"


def wall_seconds(log: str) -> float:
    """The ``real`` line bash's ``time`` printed at the end of ``log`` (``real 9m38.120s``), in seconds.

    Raises:
        ValueError: no such line.
    """
    found = re.findall(r"^real\s+(\d+)m([\d.]+)s", log, flags=re.M)
    if not found:
        raise ValueError("no `real XmY.Zs` line: run the command under bash's `time`")
    minutes, seconds = found[-1]
    return int(minutes) * 60 + float(seconds)


def pytest_counts(log: str) -> dict[str, int]:
    """Counts of pytest's last summary line (``700 passed, 7 skipped in 480.1s``): outcome -> n.

    Raises:
        ValueError: the log has no summary line.
    """
    lines = [row for row in log.splitlines() if re.search(r"\d+ (passed|failed)", row) and " in " in row]
    if not lines:
        raise ValueError("no pytest summary line in the test log")
    pattern = r"(\d+) (passed|failed|skipped|xfailed|xpassed|errors?)"
    return {word: int(n) for n, word in re.findall(pattern, lines[-1])}


def demo_rows(runs: Path, teacher: str, variants: list[str]) -> list[dict[str, Any]]:
    """One row per model of the demo table: label, test mAP, ROC-AUC, macro F1, parameters."""
    sys.path.insert(0, str(ROOT))
    from pipeline.report import collect_runs

    return [{"model": s.label, "map": s.metrics.get("map"), "roc_auc": s.metrics.get("roc_auc"),
             "f1_macro": s.metrics.get("f1_macro"), "parameters": s.metrics.get("parameters")}
            for s in collect_runs(runs, variants, [teacher])]


def collect(args: argparse.Namespace) -> dict[str, Any]:
    """Gather the numbers into one JSON object (written to ``args.out``)."""
    import torch

    demo_log = Path(args.demo_log).read_text(errors="replace")
    test_log = Path(args.test_log).read_text(errors="replace")
    data = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": args.python or platform.python_version(),
                    "torch": torch.__version__, "distill_threads": args.threads},
        "demo": {"rows": demo_rows(Path(args.runs), args.teacher, args.variants),
                 "make_demo_seconds": wall_seconds(demo_log), "conditions": args.demo_conditions},
        "tests": {"counts": pytest_counts(test_log), "make_test_seconds": wall_seconds(test_log),
                  "conditions": args.test_conditions},
    }
    Path(args.out).write_text(json.dumps(data, indent=2) + "\n")
    return data


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_blocks(data: dict[str, Any]) -> dict[str, str]:
    """The text of each marked README block from the collected numbers."""
    rows = ["| model | test mAP | ROC-AUC | macro F1 | parameters |", "|---|---|---|---|---|"]
    for row in data["demo"]["rows"]:
        params = _fmt(row["parameters"], ",") + (" (+ the teacher)" if row["model"].startswith("Teacher") else "")
        rows.append(f"| {row['model']} | {_fmt(row['map'], '.3f')} | {_fmt(row['roc_auc'], '.3f')} | "
                    f"{_fmt(row['f1_macro'], '.3f')} | {params} |")
    machine = data["machine"]
    demo_load = f"; {data['demo']['conditions']}" if data["demo"].get("conditions") else ""
    test_load = f"; {data['tests']['conditions']}" if data["tests"].get("conditions") else ""
    counts = data["tests"]["counts"]
    tests = sum(counts.get(k, 0) for k in ("passed", "failed", "skipped", "xfailed", "xpassed"))
    return {
        "demo-table": "\n".join(rows),
        "demo-timing": (f"`make demo` took {_minutes(data['demo']['make_demo_seconds'])} on {machine['cpus']} CPU "
                        f"cores (Python {machine['python']}, torch {machine['torch']}{demo_load}); `distill.threads` "
                        "is fixed at "
                        f"{machine['distill_threads']}, so the numbers below do not depend on the core count."),
        "test-timing": (f"`make test` runs {tests} tests in {_minutes(data['tests']['make_test_seconds'])} on "
                        f"{machine['cpus']} cores{test_load}"),
    }


def apply(text: str, blocks: dict[str, str]) -> str:
    """``text`` with each ``<!-- NAME:begin -->...<!-- NAME:end -->`` span holding ``blocks[NAME]``.

    Raises:
        ValueError: a marker pair is missing.
    """
    for name, body in blocks.items():
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        pattern = re.compile(rf"{re.escape(begin)}.*?{re.escape(end)}", flags=re.S)
        if not pattern.search(text):
            raise ValueError(f"README.md has no {begin} ... {end} markers")
        text = pattern.sub(lambda _m: f"{begin}\n{body}\n{end}", text, count=1)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="read a fresh run's outputs into the JSON")
    c.add_argument("--demo-log", required=True, help="output of `time make demo`")
    c.add_argument("--test-log", required=True, help="output of `time make test`")
    c.add_argument("--runs", default="runs")
    c.add_argument("--teacher", default="musicnn")
    c.add_argument("--variants", nargs="+", default=["baseline", "east-final", "east-kd"])
    c.add_argument("--threads", type=int, default=2, help="distill.threads of the run")
    c.add_argument("--python", default="", help="the Python version of the venv that ran the demo (default: this one)")
    c.add_argument("--demo-conditions", default="", help="what else ran on the machine during the demo")
    c.add_argument("--test-conditions", default="", help="what else ran during the tests ('a second pytest beside it')")
    c.add_argument("--out", default=str(RESULTS))
    r = sub.add_parser("render", help="rewrite (or --check) the README's blocks from the JSON")
    r.add_argument("--json", default=str(RESULTS))
    mode = r.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args)
        return 0
    text = README.read_text()
    new = apply(text, render_blocks(json.loads(Path(args.json).read_text())))
    if args.check:
        if new != text:
            print("README.md's numbers differ from " + args.json + "; run `python scripts/readme_numbers.py "
                  "render --write`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
