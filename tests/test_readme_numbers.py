"""The README's demo table, test count and timings are what `scripts/readme_numbers.py` renders from
the committed results of a fresh run (benchmarks/results/readme_numbers.json)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import readme_numbers  # noqa: E402


def test_readme_blocks_equal_the_committed_results() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_numbers.py"), "render", "--check"],
                         capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert out.returncode == 0, out.stderr


def test_a_changed_number_is_caught() -> None:
    data = json.loads((ROOT / "benchmarks" / "results" / "readme_numbers.json").read_text())
    data["demo"]["rows"][1]["map"] += 0.01
    text = (ROOT / "README.md").read_text()
    assert readme_numbers.apply(text, readme_numbers.render_blocks(data)) != text


def test_log_parsers() -> None:
    assert readme_numbers.wall_seconds("...\nreal\t9m38.120s\nuser\t1m0.1s\n") == pytest.approx(578.12)
    assert readme_numbers.pytest_counts("x\n700 passed, 7 skipped, 2 warnings in 480.10s (0:08:00)\n") == {
        "passed": 700, "skipped": 7}
    with pytest.raises(ValueError):
        readme_numbers.wall_seconds("no timing here")
