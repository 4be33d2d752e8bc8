"""Teacher registry; importing this package registers every teacher (light imports only)."""
from __future__ import annotations

import importlib

from pipeline.teachers.base import TEACHERS, Teacher, WindowGrid, register_teacher

_MODULES = ("musicnn", "openl3", "vggish", "passt", "panns")
for _module in _MODULES:
    try:
        importlib.import_module(f"pipeline.teachers.{_module}")
    except ModuleNotFoundError as exc:  # a teacher module not written yet
        if exc.name != f"pipeline.teachers.{_module}":
            raise

__all__ = ["TEACHERS", "Teacher", "WindowGrid", "register_teacher", "build_teacher"]


def build_teacher(name: str, settings: dict | None = None) -> Teacher:
    """Instantiate teacher ``name`` from its raw ``params.yaml`` settings (not loaded yet)."""
    from pipeline.config import from_mapping

    cls = TEACHERS.get(name)
    return cls(from_mapping(cls.config_type, settings or {}, where=f"teachers.{name}"))
