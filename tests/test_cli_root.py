"""The `pipeline` command as a newcomer meets it: help everywhere, fast start, one-line errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import COMMANDS, cli

ROOT = Path(__file__).resolve().parents[1]


def test_root_help_lists_every_command_with_one_line() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.output


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_explains_itself(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output and len(result.output.splitlines()) > 4


def test_help_imports_no_heavy_library() -> None:
    code = ("import sys; from pipeline.cli import main; sys.argv=['pipeline','--help'];\n"
            "try: main()\nexcept SystemExit: pass\n"
            "print(sorted(m for m in ('torch','tensorflow','dask','zarr','h5py') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_user_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("distill:\n  epoch: 3\n")  # a typo for `epochs`
    out = subprocess.run([sys.executable, "-m", "pipeline", "--params", str(bad), "distill"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=1800)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr
    assert "'epoch'" in lines[0] and "epochs" in lines[0]  # names the bad key and the valid ones
    missing = subprocess.run([sys.executable, "-m", "pipeline", "--params", str(tmp_path / "nope.yaml"), "teachers"],
                             capture_output=True, text=True, cwd=tmp_path, timeout=1800)
    assert missing.returncode == 1 and "nope.yaml" in missing.stderr and "Traceback" not in missing.stderr


def test_set_overrides_a_params_key_for_one_command(tmp_path: Path) -> None:
    from pipeline.cli import parse_settings

    assert parse_settings(("teachers.hear.mode=clip", "seeds=[0, 1]", "distill.lam=0.5")) == {
        "teachers.hear.mode": "clip", "seeds": [0, 1], "distill.lam": 0.5}
    bad = subprocess.run([sys.executable, "-m", "pipeline", "-S", "distill.lam", "teachers"],
                         capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "KEY=VALUE" in bad.stderr
    typo = subprocess.run([sys.executable, "-m", "pipeline", "--params", str(ROOT / "params.yaml"),
                           "-S", "distill.epoch=3", "distill"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=1800, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert typo.returncode == 1 and "'epoch'" in typo.stderr


def test_teachers_and_store_info_spell_a_frame_grid_the_same_way() -> None:
    from pipeline.cli.formatting import frame_geometry

    assert frame_geometry(0.992, 3.008) == "hop 0.992 s, window 3.008 s"
    out = subprocess.run([sys.executable, "-m", "pipeline", "teachers"], capture_output=True, text=True, cwd=ROOT,
                         timeout=1800)
    musicnn = next(row for row in out.stdout.splitlines() if row.startswith("musicnn "))
    assert "hop 0.992 s, window 3.008 s (hop_seconds 1 rounded to the model's frame grid)" in musicnn
