"""One exception hierarchy for everything the user can cause.

Messages quote the offending value and say what to do about it. The CLI turns any
:class:`PipelineError` into a one-line message and a non-zero exit code.
"""
from __future__ import annotations


class PipelineError(Exception):
    """Base class of every error the pipeline raises on purpose."""


class ConfigError(PipelineError):
    """A parameter file or option has a bad key or value."""


class UnknownNameError(ConfigError):
    """A registry lookup (teacher, student, backend, dataset) failed."""


class AudioError(PipelineError):
    """An audio file cannot be used (unreadable, empty, too short, non-finite, ...)."""


class ManifestError(PipelineError):
    """A manifest or dataset layout is missing, malformed or inconsistent."""


class TeacherError(PipelineError):
    """A teacher cannot be loaded or run."""


class WeightsNotFoundError(TeacherError):
    """The weight files of a teacher are not present on this machine."""


class StoreError(PipelineError):
    """An embedding store is missing, corrupt, or incompatible with a request."""


class ProvenanceError(StoreError):
    """A store was made with other teacher settings or weights than asked for."""


class TrainingError(PipelineError):
    """Training or evaluation cannot proceed (missing run, bad checkpoint, ...)."""


class TrainingInterrupted(TrainingError):
    """A signal (SIGINT, SIGTERM, SIGHUP) stopped training after saving ``last.pt``; the same command resumes.

    Attributes:
        signum: the signal's number; the command exits with ``128 + signum`` (130, 143, 129).
    """

    def __init__(self, message: str, *, signum: int = 15) -> None:
        super().__init__(message)
        self.signum = signum
