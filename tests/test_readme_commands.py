"""The README runs as written: every `pipeline ...` it shows names a real command and real options.

Commands are looked up in the click tree (nothing runs). ``a|b`` alternatives are each checked;
upper-case words (``NAME``, ``DIR``, ``COMMAND``) and ``...`` are placeholders.
"""
from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from pipeline.cli import cli

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands(text: str) -> list[str]:
    """Every ``pipeline ...`` command line in code blocks and inline code of ``text``."""
    found: list[str] = []
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)
    for block in blocks:
        for line in block.splitlines():
            found += _commands_in(line.split(" #")[0])
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    for span in re.findall(r"`([^`]+)`", prose):
        found += _commands_in(" ".join(span.split()))
    return found


def _commands_in(line: str) -> list[str]:
    # `pipeline ...` first on the line, after VAR=value settings, or after `python|torchrun ... -m`
    match = re.search(r"(?:^(?:\w+=\S+\s+)*|\s-m\s)pipeline(\s.*)?$", line.strip())
    if not match:
        return []
    rest = (match.group(1) or "").strip()
    return [f"pipeline {rest}".strip()] if not rest.startswith(("(", ":")) else []


def _is_placeholder(token: str) -> bool:
    return token == "..." or token == "&" or bool(re.fullmatch(r"[A-Z][A-Z_]*", token))


def _option_names(command: click.Command) -> set[str]:
    names = {"--help", "-h"}
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(param.opts + param.secondary_opts)
    return names


def check(line: str) -> None:
    """Raise AssertionError when ``line`` names a command or option the CLI lacks."""
    tokens = line.split()[1:]
    command: click.Command = cli
    ctx = click.Context(cli)
    path = ["pipeline"]
    while tokens:
        token = tokens.pop(0)
        if token.startswith("-"):
            option = token.split("=")[0]
            assert option in _option_names(command), f"{line!r}: {' '.join(path)} has no option {option}"
            param = next((p for p in command.params if option in getattr(p, "opts", [])), None)
            if param is not None and not getattr(param, "is_flag", False) and not getattr(param, "count", False) \
                    and "=" not in token and tokens:
                tokens.pop(0)  # the option's value
            continue
        if isinstance(command, click.Group) and not _is_placeholder(token):
            for name in token.split("|"):
                sub = command.get_command(ctx, name)
                assert sub is not None, f"{line!r}: {' '.join(path)} has no command {name!r}"
            command = command.get_command(ctx, token.split("|")[0])  # type: ignore[assignment]
            path.append(token.split("|")[0])
            continue
        # an argument (or a placeholder): the command must take arguments
        if not _is_placeholder(token) and not isinstance(command, click.Group):
            assert any(isinstance(p, click.Argument) for p in command.params), \
                f"{line!r}: {' '.join(path)} takes no argument {token!r}"


def test_readme_names_commands() -> None:
    lines = readme_commands(README.read_text())
    assert len(lines) >= 15
    assert "pipeline prepare folder --audio DIR --labels labels.csv" in lines


@pytest.mark.parametrize("line", readme_commands(README.read_text()))
def test_readme_command_exists(line: str) -> None:
    check(line)


@pytest.mark.parametrize("line, message", [
    ("pipeline prepare folder --audoi DIR", "no option --audoi"),
    ("pipeline distil --variant east-kd", "no command 'distil'"),
    ("pipeline store info|verfy PATH", "no command 'verfy'"),
])
def test_the_check_catches_mistakes(line: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check(line)
