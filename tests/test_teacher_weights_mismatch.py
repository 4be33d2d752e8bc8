"""A checkpoint of the wrong model is one clear TeacherError naming the mismatched keys."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipeline.errors import TeacherError
from pipeline.teachers import build_teacher
from pipeline.teachers.weights import describe_mismatch


def test_describe_mismatch_names_missing_unexpected_and_reshaped_keys() -> None:
    expected = {"a": torch.zeros(2), "b": torch.zeros(3), "c": torch.zeros(4)}
    assert describe_mismatch(expected, dict(expected)) == ""
    found = {"a": torch.zeros(2), "c": torch.zeros(5), "z": torch.zeros(1)}
    assert describe_mismatch(expected, found) == "missing (1): b; unexpected (1): z; wrong shape (1): c"


def test_a_foreign_checkpoint_is_refused_with_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "Cnn14_mAP=0.431.pth"
    torch.save({"model": {"encoder.weight": torch.zeros(3, 3)}}, path)
    teacher = build_teacher("panns", {"weights": str(path)})
    with pytest.raises(TeacherError, match=r"does not match the CNN14 architecture \(missing \(\d+\): .*"
                                           r"unexpected \(1\): encoder.weight"):
        teacher.load("cpu")
