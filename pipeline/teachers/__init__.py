"""Teacher registry; importing this package registers every teacher (light imports only)."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pipeline.errors import UnknownNameError
from pipeline.teachers.base import TEACHERS, Teacher, WindowGrid, register_teacher

_MODULES = ("musicnn", "openl3", "vggish", "passt", "panns")
for _module in _MODULES:
    try:
        importlib.import_module(f"pipeline.teachers.{_module}")
    except ModuleNotFoundError as exc:  # a teacher module not written yet
        if exc.name != f"pipeline.teachers.{_module}":
            raise

if TYPE_CHECKING:
    from pipeline.config import Params

__all__ = ["TEACHERS", "Teacher", "WindowGrid", "register_teacher", "build_teacher", "check_teacher_names"]


def build_teacher(name: str, settings: dict | None = None) -> Teacher:
    """Instantiate teacher ``name`` from its raw ``params.yaml`` settings (not loaded yet)."""
    from pipeline.config import from_mapping

    cls = TEACHERS.get(name)
    return cls(from_mapping(cls.config_type, settings or {}, where=f"teachers.{name}"))


_LOADED: dict[tuple[str, str, str], Teacher] = {}


def cached_teacher(name: str, settings: dict | None, device: str) -> Teacher:
    """A loaded teacher, built once per process (dask workers call this per task).

    Loading a model per task is the classic dask mistake (minutes of deserialisation);
    a module-level cache keyed by name, settings and device loads it once per worker.
    """
    import json

    key = (name, json.dumps(settings or {}, sort_keys=True, default=str), device)
    if key not in _LOADED:
        _LOADED[key] = build_teacher(name, settings).load(device)
    return _LOADED[key]


def check_teacher_names(params: Params) -> None:
    """Refuse a teacher name in ``params`` that no teacher is registered under.

    Checks ``distill.teacher`` (unless empty), ``teachers_enabled`` and the keys of ``teachers``,
    so a typo is reported when params are read, before any stage starts work.

    Raises:
        UnknownNameError: naming the key, the bad name and the registered teachers.
    """
    named = [("distill.teacher", params.distill.teacher)] if params.distill.teacher else []
    named += [("teachers_enabled", name) for name in params.teachers_enabled]
    named += [("teachers", name) for name in params.teachers]
    for key, name in named:
        if name not in TEACHERS:
            raise UnknownNameError(f"{key}: unknown teacher {name!r}; choose one of: {', '.join(TEACHERS.names())}")
