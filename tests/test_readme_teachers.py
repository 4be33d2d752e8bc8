"""Every ``pipeline ...`` line of the README's "Bring your own teacher" section parses with the CLI."""
from __future__ import annotations

import shlex
from pathlib import Path

import click
import pytest

from pipeline.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def section_commands() -> list[str]:
    text = README.read_text()
    start = text.index("## Bring your own teacher")
    end = text.index("\n## ", start + 1)
    return [line.strip() for line in text[start:end].splitlines() if line.strip().startswith("pipeline ")]


def test_every_command_in_the_section_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = section_commands()
    assert len(commands) >= 12
    for form in ("hear:", "run:", "imported:", "store import", "--teacher loudness"):
        assert any(form in c for c in commands), form
    monkeypatch.chdir(tmp_path)  # the folders the examples name exist here
    for line in commands:
        args = shlex.split(line)[1:]
        for arg in args:
            if arg.endswith("/"):
                (tmp_path / arg).mkdir(exist_ok=True)
        parent = click.Context(cli, info_name="pipeline", obj={})
        command: click.Command = cli
        while isinstance(command, click.Group):  # walk down to the subcommand
            name, args = args[0], args[1:]
            sub = command.get_command(parent, name)
            assert sub is not None, f"{line}: no command {name!r}"
            if isinstance(sub, click.Group):
                parent = click.Context(sub, parent=parent, info_name=name)
            command = sub
        command.make_context(command.name, list(args), parent=parent)  # raises on an unknown option or value
