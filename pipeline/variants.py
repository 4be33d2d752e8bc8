"""The training variants in one table: which loss terms each uses, how its best epoch is chosen, its label.

``distill.variant`` names a row of :data:`VARIANTS`. Distillation (which stores and probes a run
reads), the objective (which terms enter the total), judging and the report (labels, which run is
the reference) and ``pipeline distill --help`` all read this table, so a new variant is one row
here (plus its loss term in :mod:`pipeline.losses`, if it brings a new one). It imports only
:mod:`pipeline.errors`, so that :mod:`pipeline.config` can type ``distill.variant`` with it.

The total of a batch (docs/method.md, "Losses"), from a row's terms:

* ``L_reg = kd_weight L_KD + (1 - kd_weight) L_feat`` when the row uses KD, else ``L_feat``;
* ``L = (1 - lam) L_pred + lam L_reg`` with a label term and a teacher, ``L_pred`` without a
  teacher, ``L_reg`` without a label term (label-free pretraining).
"""
from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal

from pipeline.errors import ConfigError

#: ``distill.variant``: no teacher, + the teacher's features, + KD from the teacher's probe, and label-free
#: pretraining on the teacher terms alone (fine-tune it with ``pipeline distill --init RUN``)
Variant = Literal["baseline", "east-final", "east-kd", "pretrain"]
#: when a row uses KD from the teachers' probes: never, always, or when ``kd_weight > 0``
KdUse = Literal["never", "always", "weighted"]


@dataclass(frozen=True)
class VariantSpec:
    """One training variant.

    Attributes:
        name: the ``distill.variant`` value.
        label: the name reports and judged tables print.
        summary: one line for ``--help``.
        label_term: the masked BCE on the labels enters the total (False: labels are never read).
        feature_term: the teacher-feature term ``L_feat`` enters the total (so teacher frames are read).
        kd: when KD from the probes' logits enters the total (:data:`KdUse`).
        kd_every_entry: KD on every class of every clip whatever ``kd_entries`` says (no labels to mask by).
        selected_by: ``valid_map`` (best validation mAP) or ``valid_loss`` (lowest validation total).
    """

    name: Variant
    label: str
    summary: str
    label_term: bool
    feature_term: bool
    kd: KdUse
    kd_every_entry: bool = False
    selected_by: Literal["valid_map", "valid_loss"] = "valid_map"

    @property
    def uses_teacher(self) -> bool:
        """Reads teacher frames (and the store's audio cache through them)."""
        return self.feature_term or self.kd != "never"

    @property
    def is_reference(self) -> bool:
        """The row every other is judged against: trained on the labels alone."""
        return not self.uses_teacher

    def uses_kd(self, kd_weight: float) -> bool:
        """KD enters the total (and the probes' logits are needed) at this ``kd_weight``."""
        return self.kd == "always" or (self.kd == "weighted" and kd_weight > 0)


#: every variant, in the order reports list them (the reference first)
VARIANTS: dict[str, VariantSpec] = {spec.name: spec for spec in (
    VariantSpec("baseline", "Baseline (no teacher)", "the student on the labels alone",
                label_term=True, feature_term=False, kd="never"),
    VariantSpec("east-final", "EAsT-Final", "labels + the teacher's features on the last stage",
                label_term=True, feature_term=True, kd="never"),
    VariantSpec("east-kd", "EAsT-KD", "labels + features + KD from the teacher's probe",
                label_term=True, feature_term=True, kd="always"),
    VariantSpec("pretrain", "Label-free pretraining", "teacher terms alone, no label is read",
                label_term=False, feature_term=True, kd="weighted", kd_every_entry=True, selected_by="valid_loss"),
)}
VARIANT_NAMES: tuple[Variant, ...] = typing.get_args(Variant)
#: the paper's variants: what ``variants`` (the dvc.yaml matrix) trains by default
PAPER_VARIANTS: tuple[Variant, ...] = ("baseline", "east-final", "east-kd")


def variant(name: str) -> VariantSpec:
    """The row of ``name``.

    Raises:
        ConfigError: an unknown name (the valid ones are listed).
    """
    if name not in VARIANTS:
        raise ConfigError(f"unknown variant {name!r}; choose one of {', '.join(VARIANTS)}")
    return VARIANTS[name]


def is_reference(name: str) -> bool:
    """Runs of variant ``name`` are the reference others are judged against (an unknown name is not)."""
    return name in VARIANTS and VARIANTS[name].is_reference


def variant_label(name: str) -> str:
    """The printed name of variant ``name`` (an unknown name prints as itself)."""
    return VARIANTS[name].label if name in VARIANTS else name


def variants_help() -> str:
    """``name: summary`` of every variant, for ``--help``."""
    return "; ".join(f"{spec.name}: {spec.summary}" for spec in VARIANTS.values())
