"""Teacher names: the forms besides registry names, their settings sections and folder names.

Dependency-free so that :mod:`pipeline.runs` and :mod:`pipeline.stores.lookup` can name
folders without importing the teachers.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

#: Prefixes of the teacher forms that are not registry names.
FORMS = ("hear:", "run:", "imported:")


def settings_key(name: str) -> str:
    """The ``teachers.<key>`` section holding ``name``'s settings (``hear``, ``run`` or the name)."""
    for form in FORMS:
        if name.startswith(form):
            return form[:-1]
    return name


def teacher_settings(params: Any, name: str) -> dict[str, Any]:
    """``name``'s raw settings from :class:`~pipeline.config.Params` (a copy)."""
    section: Mapping[str, Any] = params.teachers
    return dict(section.get(settings_key(name), {}) or {})


def teacher_slug(name: str) -> str:
    """Folder-safe form of a teacher name: ``hear:a.b`` -> ``hear-a.b``, ``run:runs/wide`` -> ``run-wide``."""
    if name.startswith("run:"):
        name = "run-" + Path(name[4:].rstrip("/\\")).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "teacher"
