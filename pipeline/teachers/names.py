"""Teacher names: the forms besides registry names, their settings sections and folder names.

Dependency-free so that :mod:`pipeline.runs` and :mod:`pipeline.teacher_stores` can name
folders without importing the teachers.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from pipeline.errors import ConfigError

#: Prefixes of the teacher forms that are not registry names.
FORMS = ("hear:", "run:", "imported:")


#: Separates a teacher instance's label: ``musicnn@msd`` is ``musicnn`` with the settings of
#: ``teachers.musicnn`` overlaid by those of ``teachers."musicnn@msd"`` (its own store and probe).
INSTANCE = "@"


def base_name(name: str) -> str:
    """The registry name of a teacher instance (``musicnn@msd`` -> ``musicnn``); other names unchanged."""
    if name.startswith(FORMS) or INSTANCE not in name:
        return name
    return name.split(INSTANCE, 1)[0]


def settings_key(name: str) -> str:
    """The ``teachers.<key>`` section holding ``name``'s settings (``hear``, ``run`` or the name)."""
    for form in FORMS:
        if name.startswith(form):
            return form[:-1]
    return name


def teacher_settings(params: Any, name: str) -> dict[str, Any]:
    """``name``'s raw settings from :class:`~pipeline.config.Params` (a copy).

    A teacher instance (``musicnn@msd``) takes its base teacher's settings with its own on top.

    Raises:
        ConfigError: an instance with no ``teachers.<instance>`` section (it would be its base
            teacher under another name: the same frames in a second store, silently).
    """
    section: Mapping[str, Any] = params.teachers
    settings = dict(section.get(settings_key(base_name(name)), {}) or {})
    if base_name(name) != name:
        if name not in section:
            raise ConfigError(
                f"teacher {name!r} has no settings of its own: add them to params.yaml, e.g. "
                f"`teachers: {{{name}: {{model: ...}}}}` (on top of teachers.{base_name(name)}), or "
                f"-S 'teachers.{name}.<key>=<value>'; without them it would be {base_name(name)!r} under another name"
            )
        settings.update(section.get(name, {}) or {})
    return settings


def teacher_slug(name: str) -> str:
    """Folder-safe form of a teacher name: ``hear:a.b`` -> ``hear-a.b``, ``run:runs/wide`` -> ``run-wide``."""
    if name.startswith("run:"):
        name = "run-" + Path(name[4:].rstrip("/\\")).name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "teacher"
