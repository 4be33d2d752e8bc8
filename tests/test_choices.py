"""One source for every choice: params.yaml validation, click options and registries agree,
and a bad value is refused when params are read, before any stage starts work."""
from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

import click
import pytest

from pipeline.cli import cli
from pipeline.config import (
    ALIGNMENTS,
    BACKENDS,
    FEATURE_LOSSES,
    FRAME_DTYPES,
    LOADERS,
    SCHEDULES,
    STUDENT_NAMES,
    VARIANTS,
    DistillConfig,
    ExtractConfig,
    load_params,
)
from pipeline.devices import DEVICES
from pipeline.errors import ConfigError, UnknownNameError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key,choices", [
    ("distill.variant", VARIANTS), ("distill.student", STUDENT_NAMES), ("distill.loader", LOADERS),
    ("distill.schedule", SCHEDULES), ("distill.feature_loss", FEATURE_LOSSES), ("distill.alignment", ALIGNMENTS),
    ("distill.device", DEVICES), ("extract.device", DEVICES), ("extract.backend", BACKENDS),
    ("extract.dtype", FRAME_DTYPES),
])
def test_a_bad_value_is_refused_when_params_are_read(params_file, key: str, choices: tuple[str, ...]) -> None:
    with pytest.raises(ConfigError, match=rf"{key}.*one of {', '.join(choices)}.*'nonsense'"):
        load_params(params_file(), {key: "nonsense"})
    section, name = key.split(".")
    for choice in choices:
        assert getattr(getattr(load_params(params_file(), {key: choice}), section), name) == choice


def test_params_fields_are_typed_with_the_choices() -> None:
    assert typing.get_args(typing.get_type_hints(DistillConfig)["loader"]) == LOADERS
    assert typing.get_args(typing.get_type_hints(ExtractConfig)["backend"]) == BACKENDS


def test_students_registry_matches_the_literal() -> None:
    from pipeline.students import STUDENTS

    assert sorted(STUDENTS.names()) == sorted(STUDENT_NAMES)


def test_backends_match_the_store_package() -> None:
    from pipeline.stores import WRITABLE_BACKENDS

    assert tuple(WRITABLE_BACKENDS) == BACKENDS


def _choices(command: click.Command, option: str) -> tuple[str, ...]:
    param = next(p for p in command.params if p.name == option)
    assert isinstance(param.type, click.Choice)
    return tuple(param.type.choices)


def test_click_choices_read_the_same_sources() -> None:
    from pipeline.teachers import TEACHERS

    ctx = click.Context(cli)
    distill = cli.get_command(ctx, "distill")
    extract = cli.get_command(ctx, "extract")
    assert distill is not None and extract is not None
    assert _choices(distill, "student") == STUDENT_NAMES
    assert _choices(distill, "variant") == VARIANTS
    assert _choices(distill, "device") == _choices(extract, "device") == DEVICES
    assert _choices(extract, "backend") == BACKENDS
    # --teacher takes built-ins, plugins and the hear:/run: forms, so it is checked by the registry
    teacher = next(p for p in extract.params if p.name == "teacher")
    assert not isinstance(teacher.type, click.Choice) and set(TEACHERS.names()) >= {"musicnn", "openl3"}


def test_an_unknown_teacher_in_params_is_refused_before_work(params_file) -> None:
    from pipeline.teachers import check_teacher_names

    check_teacher_names(load_params(params_file(teachers_enabled=["musicnn"])))
    with pytest.raises(UnknownNameError, match=r"teachers_enabled: unknown teacher 'musicnm'.*musicnn"):
        check_teacher_names(load_params(params_file(teachers_enabled=["musicnm"])))
    with pytest.raises(UnknownNameError, match=r"distill.teacher: unknown teacher 'opnl3'"):
        check_teacher_names(load_params(params_file(distill={"teacher": "opnl3"})))


def test_a_bad_loader_stops_distill_before_any_frame_is_read(tmp_path: Path) -> None:
    """``distill.loader`` used to be checked only after the teacher frames were read for normalisation."""
    params = tmp_path / "params.yaml"
    params.write_text("distill:\n  loader: mmap\n")
    out = subprocess.run([sys.executable, "-m", "pipeline", "--params", str(params), "distill"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=1800)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "distill.loader must be one of memmap, store, got 'mmap'" in out.stderr
    assert not (tmp_path / "runs").exists()
