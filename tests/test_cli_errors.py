"""Every command, given a path that is not there, prints one line and exits 1 (the README's rule).

Click's own usage errors are three lines and exit 2; here 2 means "done, but some inputs were
skipped", so a missing path must not share it.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import EXIT_USER_ERROR

ROOT = Path(__file__).resolve().parents[1]

#: (command line with NOPE standing for a path that does not exist, text the line must contain)
BAD_PATHS: list[tuple[str, str]] = [
    ("predict NOPE/run song.flac", "NOPE/run"),
    ("evaluate NOPE/run", "NOPE/run"),
    ("export NOPE/run --format onnx", "NOPE/run"),
    ("store info NOPE/store", "NOPE/store"),
    ("store verify NOPE/store", "NOPE/store"),
    ("store export NOPE/store --format npy --out NOPE/out", "NOPE/store"),
    ("store convert NOPE/store --backend hdf5 --out NOPE/out", "NOPE/store"),
    ("store import NOPE/cache --format npy --hop 1 --frame0 0.5 --teacher x", "NOPE/cache"),
    ("extract --teacher musicnn --weights NOPE/w.h5", "NOPE/w.h5"),
    ("extract --teacher musicnn --manifests NOPE/manifests", "NOPE/manifests"),
    ("probe --teacher musicnn --store NOPE/store", "NOPE/store"),
    ("prepare folder --audio NOPE/audio --labels NOPE/labels.csv", "NOPE/audio"),
    ("prepare openmic --root NOPE/openmic", "NOPE/openmic"),
    ("prepare magnatagatune --root NOPE/mtt", "NOPE/mtt"),
    ("report --runs NOPE/runs --out NOPE/report", "NOPE/runs"),
]


@pytest.mark.parametrize("line,named", BAD_PATHS, ids=[line.split(" NOPE")[0] for line, _ in BAD_PATHS])
def test_a_missing_path_is_one_line_and_exit_1(tmp_path: Path, line: str, named: str) -> None:
    nope = str(tmp_path / "nope")
    args = [a.replace("NOPE", nope) for a in line.split()]
    out = subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True,
                         cwd=ROOT, timeout=1800)
    lines = [row for row in out.stderr.splitlines() if row.strip()]
    assert out.returncode == EXIT_USER_ERROR, (out.returncode, out.stderr)
    assert len(lines) == 1, out.stderr
    assert named.replace("NOPE", nope) in lines[0] and "Traceback" not in out.stderr
    assert not (tmp_path / "nope").exists()  # nothing was created on the way to the error


def test_a_bad_option_value_is_one_line_and_exit_1() -> None:
    out = subprocess.run([sys.executable, "-m", "pipeline", "export", "runs", "--format", "tflite"],
                         capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert out.returncode == EXIT_USER_ERROR
    assert len(out.stderr.strip().splitlines()) == 1 and "tflite" in out.stderr


def test_a_missing_option_lists_the_choices_on_one_line() -> None:
    out = subprocess.run([sys.executable, "-m", "pipeline", "store", "export", "stores/x", "--out", "x"],
                         capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert out.returncode == EXIT_USER_ERROR
    assert out.stderr.strip().splitlines() == [
        "error: pipeline store export: Missing option '--format'. Choose from: npy, memmap "
        "(see 'pipeline store export --help')"]
