"""Teacher registry; importing this package registers every built-in teacher (light imports only).

A teacher is named in one of four ways (:func:`build_teacher`):

- a built-in name (``musicnn``, ``openl3``, ``vggish``, ``passt``, ``panns``);
- a plugin name: a third-party package registers a :class:`Teacher` subclass in the
  entry-point group :data:`ENTRY_POINT_GROUP` (``name = package.module:Class``);
- ``hear:<module>``: any installed HEAR-2021-API module (:mod:`pipeline.teachers.hear`);
- ``run:<run_dir>``: a run trained by this pipeline (:mod:`pipeline.teachers.run_teacher`).

``imported:<label>`` names a store made by ``pipeline store import`` (no model: stage two only).

Settings come from ``params.yaml: teachers.<name>``, ``teachers.hear`` or ``teachers.run``
(:func:`settings_key`). Stores and probes live in folders named by :func:`teacher_slug`.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pipeline.config import from_mapping
from pipeline.errors import TeacherError, UnknownNameError
from pipeline.teachers.base import TEACHERS, Teacher, WindowGrid, register_teacher
from pipeline.teachers.hear import HearConfig, HearTeacher
from pipeline.teachers.names import FORMS, base_name, settings_key, teacher_settings, teacher_slug

if TYPE_CHECKING:
    from pipeline.config import Params

log = logging.getLogger(__name__)

#: the built-in teachers, each imported when first built (their modules load no network until then)
for _name, _target in (("musicnn", "pipeline.teachers.musicnn:MusicnnTeacher"),
                       ("openl3", "pipeline.teachers.openl3:OpenL3Teacher"),
                       ("vggish", "pipeline.teachers.vggish:VGGishTeacher"),
                       ("passt", "pipeline.teachers.passt:PasstTeacher"),
                       ("panns", "pipeline.teachers.panns:PannsTeacher")):
    TEACHERS.register_lazy(_name, _target)
BUILTINS = tuple(TEACHERS.names())
#: Entry-point group through which other packages add teachers.
ENTRY_POINT_GROUP = "east_pipeline.teachers"

__all__ = [
    "BUILTINS", "ENTRY_POINT_GROUP", "FORMS", "TEACHERS", "Teacher", "WindowGrid", "register_teacher", "build_teacher",
    "base_name",
    "cached_teacher", "check_teacher_names", "load_plugins", "plugin_errors", "settings_key", "teacher_settings",
    "teacher_slug",
]

_PLUGINS: dict[str, str] = {}  # plugin name -> entry point value
_PLUGIN_ERRORS: dict[str, str] = {}  # plugin name -> why it could not be loaded
_PLUGINS_LOADED = False


def load_plugins() -> dict[str, str]:
    """Register the teachers of every installed entry point in :data:`ENTRY_POINT_GROUP` (once).

    A plugin that fails to import or is not a :class:`Teacher` subclass is skipped and
    listed in :func:`plugin_errors`; a plugin may not replace a built-in.

    Returns:
        plugin name -> entry point value (``package.module:Class``) of the registered ones.
    """
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return dict(_PLUGINS)
    _PLUGINS_LOADED = True
    from importlib import metadata

    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name in TEACHERS or ":" in entry.name:
            _PLUGIN_ERRORS[entry.name] = f"name {entry.name!r} is taken or not a plain name ({entry.value})"
            continue
        try:
            cls = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the pipeline
            _PLUGIN_ERRORS[entry.name] = f"{entry.value} failed to import: {type(exc).__name__}: {exc}"
            continue
        if not (isinstance(cls, type) and issubclass(cls, Teacher)):
            _PLUGIN_ERRORS[entry.name] = f"{entry.value} is not a pipeline.teachers.Teacher subclass"
            continue
        TEACHERS.register(entry.name)(cls)
        _PLUGINS[entry.name] = entry.value
    for name, why in _PLUGIN_ERRORS.items():
        log.warning("teacher plugin %s skipped: %s", name, why)
    return dict(_PLUGINS)


def plugin_errors() -> dict[str, str]:
    """Plugins found but not registered, with the reason."""
    load_plugins()
    return dict(_PLUGIN_ERRORS)


def build_teacher(name: str, settings: dict | None = None) -> Teacher:
    """Instantiate teacher ``name`` (any of the four forms) from its raw settings (not loaded yet).

    Raises:
        UnknownNameError: not a built-in, plugin, ``hear:`` or ``run:`` name (the valid ones are listed).
        ConfigError: bad settings.
    """
    if name.startswith("hear:"):
        return HearTeacher(name[5:], from_mapping(HearConfig, settings or {}, where="teachers.hear"))
    if name.startswith("imported:"):
        raise TeacherError(f"{name} is a store made by `pipeline store import`; there is no model to run. "
                           "Use it in probe/distill (--teacher " + name + ")")
    if name.startswith("run:"):
        from pipeline.teachers.run_teacher import RunTeacher, RunTeacherConfig

        return RunTeacher(name[4:], from_mapping(RunTeacherConfig, settings or {}, where="teachers.run"))

    base = base_name(name)  # musicnn@msd: musicnn with the instance's settings
    if base not in TEACHERS:
        load_plugins()
    try:
        cls = TEACHERS.get(base)
    except UnknownNameError as exc:
        raise UnknownNameError(
            f"{exc}; or hear:<module> (a HEAR-API module) or run:<run_dir> (a trained run)") from None
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
    named += [(f"distill.teachers[{i}]", ref.name) for i, ref in enumerate(params.distill.teachers)]
    for key, name in named:
        if not name.startswith(FORMS) and base_name(name) not in TEACHERS:
            load_plugins()
            if base_name(name) not in TEACHERS:
                raise UnknownNameError(
                    f"{key}: unknown teacher {name!r}; choose one of: {', '.join(TEACHERS.names())}, "
                    "hear:<module>, run:<run_dir>, imported:<label>, or <teacher>@<label> for a second "
                    "configuration of a teacher")
    sections = {form[:-1] for form in FORMS}
    for name in params.teachers:  # settings sections: a teacher name or a form's section
        if name not in sections and base_name(name) not in TEACHERS:
            load_plugins()
            if base_name(name) not in TEACHERS:
                raise UnknownNameError(
                    f"teachers: unknown teacher {name!r}; choose one of: {', '.join(TEACHERS.names())}, "
                    f"or {', '.join(sorted(sections))} (settings of the hear:, run: and imported: forms)")
