"""A run's ``config.json`` as one typed value: written by distillation, read by whoever uses the run.

``pipeline distill`` writes it next to the checkpoints; evaluation, prediction, export, triage,
quantisation and the ``run:`` teacher read it back as a :class:`RunConfig` instead of picking keys
out of a dict. Judging and the report read any folder's ``config.json`` as a flat mapping on
purpose: they compare whatever settings a run recorded, from any version. The JSON keeps its key
order, so a run's fingerprint (the sha256 of this text) is what it was before this type existed,
and older runs still resume and load.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pipeline.errors import TrainingError

#: the file in a run folder
CONFIG_FILE = "config.json"
#: keys every ``config.json`` holds (the others have defaults for runs written before they existed)
_REQUIRED = ("student", "student_settings", "n_classes", "classes", "sample_rate", "clip_seconds")


@dataclass(frozen=True)
class RunConfig:
    """What a student run was trained with.

    Attributes:
        student: registered student name.
        student_settings: ``students.<name>`` with the working sample rate filled in.
        n_classes: classes of the classifier (the length of ``classes``).
        classes: class names in label order.
        sample_rate: Hz of the student's input.
        clip_seconds: the training crop, seconds.
        teacher: the first teacher (whose store holds the audio cache), None for a baseline.
        teachers: each teacher's provenance (name, settings, weights sha256, geometry).
        variant: ``distill.variant``.
        init: the run this one started from (``distill.init``) with its weights' sha256, or None.
        distill: the ``distill`` settings (runtime ones such as threads and devices left out).
        manifests: the manifests folder it was trained on.
        audio_root: the audio root of those manifests.
    """

    student: str
    student_settings: dict[str, Any]
    n_classes: int
    classes: list[str]
    sample_rate: int
    clip_seconds: float
    teacher: str | None = None
    teachers: list[dict[str, Any]] = field(default_factory=list)
    variant: str = ""
    init: dict[str, Any] | None = None
    distill: dict[str, Any] = field(default_factory=dict)
    manifests: str = ""
    audio_root: str = ""

    @property
    def seed(self) -> int | None:
        """``distill.seed`` of the run (None when not recorded)."""
        return self.distill.get("seed")

    @property
    def teacher_names(self) -> list[str]:
        """The names of the run's teachers, in order."""
        return [str(t.get("name", t.get("teacher"))) for t in self.teachers if isinstance(t, dict)]

    def as_dict(self) -> dict[str, Any]:
        """The ``config.json`` mapping, in the file's key order."""
        return {"student": self.student, "student_settings": self.student_settings, "n_classes": self.n_classes,
                "classes": self.classes, "sample_rate": self.sample_rate, "clip_seconds": self.clip_seconds,
                "teacher": self.teacher, "teachers": self.teachers, "variant": self.variant, "init": self.init,
                "distill": self.distill, "manifests": self.manifests, "audio_root": self.audio_root}

    def to_json(self) -> str:
        """The text of ``config.json`` (indented, newline-terminated)."""
        return json.dumps(self.as_dict(), indent=2) + "\n"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = CONFIG_FILE) -> "RunConfig":
        """A :class:`RunConfig` from a parsed ``config.json``.

        Raises:
            TrainingError: a required key is missing (naming the file and the key).
        """
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise TrainingError(f"{where} lacks {', '.join(missing)}; it was not written by `pipeline distill`")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def read(cls, run_dir: Path | str) -> "RunConfig":
        """The ``config.json`` of the run in ``run_dir``.

        Raises:
            TrainingError: no ``config.json`` (not a run folder), or one that is not a run's.
        """
        path = Path(run_dir) / CONFIG_FILE
        if not path.is_file():
            raise TrainingError(f"{Path(run_dir)} is not a training run (no {CONFIG_FILE}); pass a folder made by "
                                "`pipeline distill`")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TrainingError(f"{path} cannot be read ({exc}); the run folder is damaged") from None
        if not isinstance(data, dict):
            raise TrainingError(f"{path} is not a JSON object; the run folder is damaged")
        return cls.from_mapping(data, where=str(path))
