"""Every `pipeline` line in the README's code blocks runs as written, in README order, on a reduced demo.

A code block preceded by ``<!-- not run: REASON -->`` is skipped (it needs something the demo
cannot have: your audio, a plugin package); a ``yaml`` block is a params.yaml snippet and is
merged into the clone's params.yaml before the commands that follow it, as the README tells
the user to do. The clone has run `dvc repro` on a reduced demo first, as `make demo` does.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    line: int  # 1-based line of the opening fence
    lang: str
    text: str
    skip_reason: str | None


def readme_blocks(text: str) -> list[Block]:
    """The README's fenced code blocks with the ``<!-- not run: ... -->`` marker just above each."""
    blocks = []
    for match in re.finditer(r"^```([a-z]*)\n(.*?)^```", text, flags=re.S | re.M):
        before = text[: match.start()].rstrip("\n").splitlines()
        marker = re.fullmatch(r"<!-- not run: (.+) -->", before[-1].strip()) if before else None
        blocks.append(Block(text.count("\n", 0, match.start()) + 1, match.group(1), match.group(2),
                            marker.group(1) if marker else None))
    return blocks


def pipeline_lines(block: Block) -> list[str]:
    """The ``pipeline ...`` command lines of a block, comments dropped."""
    return [row.split(" #")[0].strip() for row in block.text.splitlines() if row.startswith("pipeline ")]


def _merge(into: dict[str, Any], snippet: dict[str, Any]) -> None:
    for key, value in snippet.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def test_every_skipped_block_says_why_and_nothing_else_is_skipped() -> None:
    blocks = readme_blocks(README.read_text())
    skipped = [b for b in blocks if b.skip_reason]
    assert all(pipeline_lines(b) for b in skipped), "a `not run` marker must sit above a block of pipeline lines"
    assert len(skipped) <= 3, [b.line for b in skipped]  # the plugin, your-own-audio and bucket examples only
    assert sum(len(pipeline_lines(b)) for b in blocks if not b.skip_reason) >= 20


def _run(cmd: list[str] | str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=3600,
                          shell=isinstance(cmd, str))


@pytest.fixture(scope="module")
def demo_clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A clone of this repository with a reduced demo after `dvc repro` (what `make demo` leaves)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    if shutil.which("dvc", path=env["PATH"]) is None:
        pytest.skip("dvc is not installed (make install)")
    clone = tmp_path_factory.mktemp("readme") / "repo"
    assert _run(["git", "clone", "-q", str(ROOT), str(clone)], clone.parent, env).returncode == 0
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["demo"].update(n_train=40, n_valid=16, n_test=16)
    params["distill"].update(epochs=1)
    params["probe"].update(steps=40)
    params["extract"].update(workers=0)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run(["dvc", "repro"], clone, env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return clone, env


@pytest.mark.slow
def test_every_readme_command_line_runs_as_written(demo_clone: tuple[Path, dict[str, str]]) -> None:
    clone, env = demo_clone
    ran = 0
    for block in readme_blocks(README.read_text()):
        if block.lang == "yaml":  # a params.yaml snippet: the README says to put it there
            params = yaml.safe_load((clone / "params.yaml").read_text())
            _merge(params, yaml.safe_load(block.text))
            (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            continue
        if block.skip_reason:
            continue
        for line in pipeline_lines(block):
            out = _run(line, clone, env)
            assert out.returncode == 0, f"README line {block.line}: {line}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
            assert "Traceback" not in out.stderr, f"{line}\n{out.stderr[-2000:]}"
            ran += 1
    assert ran >= 20
