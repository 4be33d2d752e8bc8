"""Teacher triage (issue 18, item 5): synthetic stores where one teacher is a linear copy of another
(dependence 1) and one is independent (about 0), the recommendation rule, and the command's outputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline.manifests import write_classes, write_manifest
from pipeline.triage import REDUNDANT, STUDENT, dependence, recommend, triage
from tests.stage2_fixtures import ROOT, invoke, make_fake_data
from tests.test_store_import import write_openl3

N_CLIPS, DIM = 48, 6


def _teachers(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Per-clip frames of three teachers: ``a``; ``copy`` = rotated, scaled, shifted ``a``; ``other`` independent."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    a = {f"clip-{i:03d}": rng.normal(size=(4, DIM)) + rng.normal(size=DIM) for i in range(N_CLIPS)}
    return {"a": a, "copy": {k: 2.5 * v @ q + 1.0 for k, v in a.items()},
            "other": {k: rng.normal(size=(4, DIM + 2)) + rng.normal(size=DIM + 2) for k in a}}


@pytest.mark.parametrize("measure", ["dcor", "cka"])
def test_dependence_of_a_linear_copy_is_one_and_of_an_independent_teacher_about_zero(measure: str) -> None:
    frames = _teachers()
    pooled = {name: np.stack([f.mean(0) for f in by_clip.values()]) for name, by_clip in frames.items()}
    assert dependence(pooled["a"], pooled["copy"], measure) == pytest.approx(1.0, abs=1e-9)
    assert abs(dependence(pooled["a"], pooled["other"], measure)) < 0.1
    result = triage(pooled, {"a": 0.60, "copy": 0.61, "other": 0.55}, measure=measure)
    assert result.names == ("a", "copy", "other") and np.allclose(result.matrix, result.matrix.T)
    assert np.allclose(np.diag(result.matrix), 1.0)
    # the copy has the better probe; a is its near copy and drops out; other is 0.06 behind: copy wins
    assert result.recommended == "copy" and "a near copies" in result.reason


def test_the_rule_prefers_the_teacher_the_student_does_not_already_hold() -> None:
    names = ["t1", "t2", STUDENT]
    matrix = np.array([[1.0, 0.2, 0.8], [0.2, 1.0, 0.1], [0.8, 0.1, 1.0]])
    choice, reason = recommend(["t1", "t2"], {"t1": 0.70, "t2": 0.69}, names, matrix)
    assert choice == "t2" and "least dependent on the baseline student (0.10)" in reason
    choice, _ = recommend(["t1", "t2"], {"t1": 0.70, "t2": 0.60}, names, matrix)
    assert choice == "t1"  # t2 is outside the margin of the best probe
    matrix[0, 1] = matrix[1, 0] = REDUNDANT
    choice, reason = recommend(["t1", "t2"], {"t1": 0.70, "t2": 0.69}, names, matrix)
    assert choice == "t1" and "t2 near copies" in reason
    assert recommend(["t1"], {"t1": None}, names, matrix)[0] is None


@pytest.fixture
def stores(tmp_path: Path) -> Path:
    """Three imported stores (``imported:a``, ``imported:copy``, ``imported:other``), a probe for two, params."""
    frames = _teachers()
    data = make_fake_data(tmp_path / "fake", [2.5] * N_CLIPS, sample_rate=16000, cache=False)
    manifests = tmp_path / "manifests"
    write_manifest(manifests / "train.jsonl", data.clips[:4])
    write_manifest(manifests / "valid.jsonl", data.clips[4:])
    write_manifest(manifests / "test.jsonl", data.clips[:4])
    write_classes(manifests / "classes.json", [f"c{i}" for i in range(4)])
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(audio_root=str(data.audio_root), manifests=str(manifests))
    params["teachers_enabled"] = ["imported:a", "imported:copy", "imported:other"]
    params["extract"].update(store_root=str(tmp_path / "stores"), dtype="float32")
    params["probe"].update(runs_root=str(tmp_path / "runs"))
    params["distill"].update(runs_root=str(tmp_path / "runs"))
    params["report"].update(out=str(tmp_path / "reports"))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    for name, by_clip in frames.items():
        write_openl3(tmp_path / "cache" / name, {k: v.astype(np.float32) for k, v in by_clip.items()})
        result = invoke(path, "store", "import", str(tmp_path / "cache" / name), "--format", "openl3",
                        "--teacher", name)
        assert result.exit_code == 0, result.output
    for name, valid_map in (("a", 0.5), ("other", 0.45)):
        folder = tmp_path / "runs" / f"probe-imported-{name}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps({"valid_map": valid_map}))
    return path


def test_triage_command_writes_the_table_the_heat_map_and_a_recommendation(stores: Path) -> None:
    result = invoke(stores, "triage", "--measure", "dcor")
    assert result.exit_code == 0, result.output
    lines = {line.split(" | ")[0].strip("| "): line.strip(" |").split(" | ") for line in result.output.splitlines()
             if line.startswith("| imported:")}
    assert lines["imported:a"][1] == "0.500" and lines["imported:a"][3] == "1.000"  # a vs its copy
    assert "run `pipeline probe` first" in lines["imported:copy"][1]
    assert abs(float(lines["imported:a"][4])) < 0.1  # a vs the independent teacher
    assert "44 valid clips" in result.output and "Rule:" in result.output
    assert "recommended: imported:a ->" in result.output and "No baseline student run" in result.output
    png = stores.parent / "reports" / "triage.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = invoke(stores, "triage", "--teacher", "imported:nothing")
    assert missing.exit_code == 1 and len(missing.output.strip().splitlines()) == 1


def test_triage_with_a_baseline_student(stores: Path) -> None:
    params = yaml.safe_load(stores.read_text())
    params["distill"].update(epochs=1, batch_size=4, device="cpu", amp=False, threads=1)
    params["students"]["mobile_fcn"] = {"n_mels": 32, "dropout": 0.0}
    stores.write_text(yaml.safe_dump(params, sort_keys=False))
    run = stores.parent / "runs" / "baseline-0"
    trained = invoke(stores, "distill", "--variant", "baseline", "--run-dir", str(run), "--no-progress")
    assert trained.exit_code == 0, trained.output
    result = invoke(stores, "triage", "--measure", "cka")  # finds runs/baseline-0 by itself
    assert result.exit_code == 0, result.output
    assert "dep. student" in result.output and f"Baseline student: `{run}`" in result.output
    row = next(line for line in result.output.splitlines() if line.startswith("| imported:a "))
    assert -1.0 <= float(row.strip(" |").split(" | ")[-1]) <= 1.0
