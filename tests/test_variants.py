"""The variant table (pipeline/variants.py) is the one place a variant's meaning is written."""
from __future__ import annotations

import math
import typing

import numpy as np
import pytest
import torch

from pipeline.config import Variant, load_params
from pipeline.errors import ConfigError
from pipeline.losses import EAsTObjective
from pipeline.students.base import StudentOutput
from pipeline.variants import VARIANTS, variant, variant_label
from tests.batches import frames, make_batch


def test_the_table_has_a_row_for_every_variant_name() -> None:
    assert tuple(VARIANTS) == typing.get_args(Variant)
    assert [name for name, spec in VARIANTS.items() if spec.is_reference] == ["baseline"]


def test_an_unknown_variant_is_one_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown variant 'east-x'; choose one of baseline, east-final"):
        variant("east-x")
    assert variant_label("east-x") == "east-x"


def _output(batch: int = 4, classes: int = 3) -> StudentOutput:
    torch.manual_seed(0)
    features = [torch.randn(batch, 8, 5) for _ in range(3)]
    return StudentOutput(torch.randn(batch, classes), features, [0.5] * 3, [0.25] * 3)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_the_total_is_the_rows_terms(name: str) -> None:
    """``total`` is built from exactly the terms the row declares, with lam and kd_weight."""
    spec = VARIANTS[name]
    torch.manual_seed(1)
    targets = (torch.rand(4, 3) > 0.5).float()
    known = torch.ones(4, 3, dtype=torch.bool)
    teacher, times = torch.randn(4, 5, 6), np.arange(5) * 0.5 + 0.25
    logits = torch.randn(4, 3)
    objective = EAsTObjective(variant=name, lam=0.4, kd_weight=0.25, tau=1.0)
    out = objective(_output(), make_batch(targets, known, [frames(teacher, times, 0.5)]), logits)
    reg = 0.25 * out["kd"] + 0.75 * out["feat"] if spec.uses_kd(0.25) else out["feat"]
    if not spec.uses_teacher:
        expected = out["pred"]
    elif not spec.label_term:
        expected = reg
        assert math.isnan(out["pred"].item())  # labels are never read
    else:
        expected = 0.6 * out["pred"] + 0.4 * reg
    torch.testing.assert_close(out["total"], expected)


def test_distill_config_reads_its_row() -> None:
    params = load_params("params.yaml", {"distill.variant": "pretrain"})
    assert params.distill.spec is VARIANTS["pretrain"]
    assert params.distill.spec.selected_by == "valid_loss" and not params.distill.spec.label_term
