"""Finding a teacher's store from ``params.yaml``, and refusing one made with other settings.

Stage one writes ``<extract.store_root>/<teacher>``; probe, distill and evaluate read it back
through :func:`checked_store`, which compares the store's provenance with the settings
``params.yaml`` asks for before any frame is read.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.config import Params, to_mapping
from pipeline.errors import ProvenanceError, StoreError
from pipeline.stores.location import Location, is_url
from pipeline.stores.spec import StoreSpec
from pipeline.stores.store import open_store
from pipeline.teachers import build_teacher, settings_key, teacher_settings, teacher_slug


def store_path(params: Params, teacher: str, store: str | None = None) -> Path:
    """Where the store of ``teacher`` lives: ``store`` or ``<extract.store_root>/<teacher>``.

    A URL (``file://``, ``s3://``, ...) is kept as given (stage one writes it, stage two reads it).
    """
    if store and is_url(store):
        return store  # type: ignore[return-value]
    folder = teacher_slug(teacher)  # hear:a.b -> hear-a.b, run:runs/x -> run-x, imported:y -> imported-y
    if not store and is_url(params.extract.store_root):
        return f"{params.extract.store_root.rstrip('/')}/{folder}"  # type: ignore[return-value]
    return Path(store) if store else Path(params.extract.store_root) / folder


def checked_store(params: Params, teacher: str, store: str | None = None) -> Path:
    """The store of ``teacher``, refused unless it was made with the settings ``params`` asks for.

    Stage two reads stores that may come from a teammate (``dvc pull``, a shared path). The
    store's ``teacher.json`` must match ``teachers.<teacher>`` in ``params.yaml``, and its
    weights fingerprint the local weights when they are present here.

    Raises:
        StoreError: no store at the path.
        ProvenanceError: naming every difference.
    """
    path = store_path(params, teacher, store)
    if not is_url(path) and not (path / "teacher.json").is_file():
        how = "pipeline store import" if teacher.startswith("imported:") else f"pipeline extract --teacher {teacher}"
        raise StoreError(f"no {teacher} store at {path}; run `{how}` first")
    found = open_store(path).spec
    if teacher.startswith("imported:"):  # no model to compare with: the store is its own provenance
        if found.teacher != teacher or found.config.get("provenance") != "imported":
            raise ProvenanceError(f"store {path} holds {found.teacher!r}, not the imported teacher {teacher!r}")
        return path
    model = build_teacher(teacher, teacher_settings(params, teacher))
    if model.weights_available():
        differences = found.differences(StoreSpec.from_teacher(model, dtype=found.dtype))
    else:  # weights only on the machine that extracted: compare the settings
        wanted = to_mapping(model.config)
        wanted.pop("weights", None)
        differences = [f"config.{key}: {found.config.get(key)!r} != {value!r}"
                       for key, value in sorted(wanted.items()) if found.config.get(key) != value]
    if differences:
        raise ProvenanceError(
            f"store {path} was made with other settings than params.yaml asks for (teachers.{settings_key(teacher)}): "
            f"{'; '.join(differences)}. Re-extract with `pipeline extract --teacher {teacher} --overwrite` "
            "or change params.yaml to match"
        )
    return path


def first_store_with_audio(params: Params) -> Path | str | None:
    """A teacher store whose audio cache a run without a teacher can reuse (first enabled teacher)."""
    for name in params.teachers_enabled:
        path = store_path(params, name)
        if Location(path).exists("audio/teacher.json"):
            return path
    return None
