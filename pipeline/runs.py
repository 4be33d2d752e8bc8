"""Run folders on disk: where probe runs go, and writing a run's JSON files.

Rebuilding a trained student from its run folder lives with the students
(:mod:`pipeline.students.trained`).
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.files import json_text, write_atomic
from pipeline.teachers.names import teacher_slug


def write_json(path: Path | str, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON, atomically, creating the folder (dataclass values allowed).

    Raises:
        FileFault: the file system refused the write (one line; the old file, if any, is unchanged).
    """
    write_atomic(path, json_text(data, indent=2, default=lambda o: asdict(o)))


def probe_dir(params: Params, teacher: str) -> Path:
    """Run folder of the linear probe of ``teacher``: ``<probe.runs_root>/probe-<teacher>``."""
    return Path(params.probe.runs_root) / f"probe-{teacher_slug(teacher)}"
