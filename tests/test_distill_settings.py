"""How ``pipeline distill`` turns params into student settings."""
from __future__ import annotations

from pathlib import Path

from pipeline.config import load_params
from stages.distill import student_settings

ROOT = Path(__file__).resolve().parents[1]


def test_specaugment_scales_the_paper_masks_to_the_student() -> None:
    plain = student_settings(load_params(ROOT / "params.yaml"), "cp_resnet", 10.0)
    assert "freqm" not in plain and plain["sample_rate"] == 16000  # the audio cache's rate
    params = load_params(ROOT / "params.yaml", {"distill.specaugment": True,
                                                "students.cp_resnet": {"sample_rate": 32000}})
    paper = student_settings(params, "cp_resnet", 10.0)  # the paper's OpenMIC setting exactly
    assert (paper["freqm"], paper["timem"], paper["fmin_aug_range"], paper["fmax_aug_range"]) == (48, 192, 20, 2000)
    small = student_settings(load_params(ROOT / "params.yaml", {"distill.specaugment": True}), "mobile_fcn", 5.0)
    assert (small["freqm"], small["timem"]) == (36, 48)  # 96 bands, 250 frames of 5 s at 16 kHz
    mine = load_params(ROOT / "params.yaml", {"distill.specaugment": True, "students.mobile_fcn": {"freqm": 8}})
    assert student_settings(mine, "mobile_fcn", 5.0)["freqm"] == 8  # explicit settings win
