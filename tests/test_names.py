"""One spelling of a word in our own text, so that a grep finds every use.

``center`` (as numpy, librosa and torch spell their arguments) everywhere in code, tests and docs.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BRITISH = re.compile(r"(?<![A-Za-z])[Cc]entr(?:ing|es|ed|e)(?![a-z])")


def test_center_is_spelled_one_way() -> None:
    listed = subprocess.run(["git", "ls-files", "pipeline", "stages", "tests", "benchmarks", "scripts", "docs",
                             "README.md", "params.yaml", "dvc.yaml"], cwd=ROOT, capture_output=True, text=True)
    files = listed.stdout.split() if listed.returncode == 0 else [
        str(p.relative_to(ROOT)) for d in ("pipeline", "stages", "tests", "docs") for p in (ROOT / d).rglob("*")]
    found = []
    for name in files:
        path = ROOT / name
        if path.suffix not in (".py", ".md", ".yaml") or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if BRITISH.search(line):
                found.append(f"{name}:{number}: {line.strip()[:80]}")
    assert not found, ("spell it center/centered/centers/centering (one spelling, so a grep finds all):\n"
                       + "\n".join(found))
