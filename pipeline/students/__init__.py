"""Student registry: small classifiers with their log-mel front end inside the model.

Importing this package imports torch (the students are ``nn.Module`` classes); the CLI
imports it only inside the commands that train or run a student.
"""
from __future__ import annotations

from typing import Any, Mapping

from pipeline.config import from_mapping
from pipeline.errors import ConfigError
from pipeline.students.base import STUDENTS, Student, StudentOutput, register_student
from pipeline.students.cp_resnet import CPResNet, CPResNetConfig
from pipeline.students.mobile_fcn import MobileFCN, MobileFCNConfig

__all__ = [
    "STUDENTS",
    "Student",
    "StudentOutput",
    "register_student",
    "build_student",
    "CPResNet",
    "CPResNetConfig",
    "MobileFCN",
    "MobileFCNConfig",
]


def build_student(
    name: str,
    settings: Mapping[str, Any] | None,
    *,
    n_classes: int,
    sample_rate: int,
    clip_seconds: float | None = None,
) -> Student:
    """Instantiate student ``name`` from its raw ``params.yaml`` settings.

    Args:
        name: registered student name (``mobile_fcn``, ``cp_resnet``).
        settings: the ``students.<name>`` mapping; unknown keys are errors.
        n_classes: output classes.
        sample_rate: rate of the audio the student will see, Hz. It fills the config's
            ``sample_rate`` when the settings do not set it; a different explicit value is an error.
        clip_seconds: when given, the shortest input the student will see; an error is raised
            now if its time pooling cannot keep one frame for it.

    Raises:
        UnknownNameError: unknown ``name`` (the valid names are listed).
        ConfigError: bad settings, a sample-rate mismatch, or clips too short.
    """
    cls = STUDENTS.get(name)
    settings = dict(settings or {})
    where = f"params.yaml:students.{name}"
    if "sample_rate" in settings and int(settings["sample_rate"]) != int(sample_rate):
        raise ConfigError(
            f"{where}.sample_rate is {settings['sample_rate']} Hz but the audio is at {sample_rate} Hz; "
            f"remove the key or make the two agree (extract.audio_sample_rate)"
        )
    settings["sample_rate"] = int(sample_rate)
    student = cls(from_mapping(cls.config_type, settings, where=where), n_classes=n_classes)
    if clip_seconds is not None:
        student.check_input_length(int(round(clip_seconds * sample_rate)))
    return student
