"""Label-free pretraining then fine-tuning (issue 18, item 3), and the learned projection's place in a run.

A pretrain run trains on every train clip with the teacher terms alone: poisoning every label of
every manifest leaves its weights bit-identical. ``--init RUN`` starts a labelled run from them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from pipeline.manifests import Clip, read_manifest, write_classes, write_manifest
from tests.stage2_fixtures import ROOT, invoke, make_fake_data
from tests.test_store_import import write_openl3


def _params(tmp_path: Path, manifests: Path, audio_root: Path, **distill: object) -> Path:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(audio_root=str(audio_root), manifests=str(manifests))
    params["teachers_enabled"] = []
    params["extract"].update(store_root=str(tmp_path / "stores"), dtype="float32")
    params["probe"].update(steps=20, runs_root=str(tmp_path / "runs"))
    params["distill"].update(epochs=2, batch_size=4, runs_root=str(tmp_path / "runs"), device="cpu", amp=False,
                             teacher="imported:mine", threads=1, **distill)
    params["students"]["mobile_fcn"] = {"n_mels": 32, "dropout": 0.0}
    path = tmp_path / f"params-{manifests.name}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def _write(manifests: Path, clips: list[Clip]) -> None:
    write_manifest(manifests / "train.jsonl", clips[:10])
    write_manifest(manifests / "valid.jsonl", clips[10:12])
    write_manifest(manifests / "test.jsonl", clips[12:])
    write_classes(manifests / "classes.json", [f"c{i}" for i in range(4)])


def _poisoned(clips: list[Clip], seed: int) -> list[Clip]:
    """Random labels and random known flags in every clip (a labelled clip keeps one known flag)."""
    rng = np.random.default_rng(seed)
    out = []
    for clip in clips:
        labels = tuple(int(v) for v in rng.integers(0, 2, len(clip.labels)))
        known = tuple(bool(v) for v in rng.random(len(clip.known)) < 0.5)
        if any(clip.known) and not any(known):
            known = (True,) + known[1:]
        out.append(Clip(clip.id, clip.audio_path, clip.duration, clip.sample_rate, labels,
                        known if any(clip.known) else clip.known))
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """14 clips of 2.5 s (two of them unlabeled), an imported teacher store, clean and poisoned manifests."""
    tmp_path = tmp_path_factory.mktemp("pretrain")
    data = make_fake_data(tmp_path / "fake", [2.5] * 14, sample_rate=16000, cache=False)
    clips = list(data.clips)
    for i in (3, 7):  # unlabeled clips: every label unknown
        c = clips[i]
        clips[i] = Clip(c.id, c.audio_path, c.duration, c.sample_rate, c.labels, (False,) * len(c.known))
    clean, poisoned = tmp_path / "clean", tmp_path / "poisoned"
    _write(clean, clips)
    _write(poisoned, _poisoned(clips, seed=5))
    params = {"clean": _params(tmp_path, clean, data.audio_root),
              "poisoned": _params(tmp_path, poisoned, data.audio_root)}
    write_openl3(tmp_path / "cache", data.frames)
    result = invoke(params["clean"], "store", "import", str(tmp_path / "cache"), "--format", "openl3",
                    "--teacher", "mine")
    assert result.exit_code == 0, result.output
    return {"root": tmp_path, **params}


def _weights(run: Path, name: str = "best.pt") -> dict[str, torch.Tensor]:
    return torch.load(run / name, map_location="cpu", weights_only=True)


def test_pretraining_never_reads_labels(world: dict[str, Path]) -> None:
    runs = {}
    for which in ("clean", "poisoned"):
        runs[which] = world["root"] / "runs" / f"pretrain-{which}"
        result = invoke(world[which], "-S", "distill.kd_weight=0", "distill", "--variant", "pretrain",
                        "--run-dir", str(runs[which]), "--no-progress")
        assert result.exit_code == 0, result.output
        assert "lowest valid loss" in result.output
    assert read_manifest(world["poisoned"].parent / "poisoned" / "train.jsonl") != \
        read_manifest(world["clean"].parent / "clean" / "train.jsonl")
    for name in ("best.pt", "last.pt"):
        a, b = _weights(runs["clean"], name), _weights(runs["poisoned"], name)
        a, b = a.get("model", a), b.get("model", b)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    metrics = json.loads((runs["clean"] / "metrics.json").read_text())
    assert metrics["variant"] == "pretrain" and metrics["valid_map"] is None and metrics["n_unlabeled"] == 2
    history = (runs["clean"] / "history.csv").read_text().splitlines()
    assert history[1].split(",")[2] == "nan"  # train_pred: no label term was computed


def test_init_starts_a_labelled_run_from_the_pretrained_student(world: dict[str, Path]) -> None:
    pretrained = world["root"] / "runs" / "pretrain-clean"
    if not (pretrained / "best.pt").is_file():
        test_pretraining_never_reads_labels(world)
    tuned = world["root"] / "runs" / "tuned"
    result = invoke(world["clean"], "-S", "distill.epochs=1", "distill", "--variant", "east-final",
                    "--init", str(pretrained), "--run-dir", str(tuned), "--no-progress")
    assert result.exit_code == 0, result.output
    config = json.loads((tuned / "config.json").read_text())
    assert config["init"]["run"] == str(pretrained) and len(config["init"]["best_sha256"]) == 64
    assert config["distill"]["init"] == str(pretrained)
    # a run whose student differs is one line and exit 1
    other = invoke(world["clean"], "-S", "students.mobile_fcn.n_mels=64", "distill", "--variant", "east-final",
                   "--init", str(pretrained), "--run-dir", str(world["root"] / "runs" / "bad"), "--no-progress")
    assert other.exit_code == 1 and "student_settings" in other.output
    missing = invoke(world["clean"], "distill", "--init", str(world["root"] / "nowhere"), "--run-dir",
                     str(world["root"] / "runs" / "bad2"), "--no-progress")
    assert missing.exit_code == 1 and "not a finished run" in missing.output


def test_projection_heads_train_are_checkpointed_and_not_exported(world: dict[str, Path]) -> None:
    run = world["root"] / "runs" / "projected"
    result = invoke(world["clean"], "-S", "distill.feature_loss=cosine_projection", "-S", "distill.epochs=1",
                    "distill", "--variant", "east-final", "--run-dir", str(run), "--no-progress")
    assert result.exit_code == 0, result.output
    last = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert set(last["heads"]) == {"0_2.weight", "0_2.bias"} and last["heads"]["0_2.weight"].shape == (6, 256)
    assert not any(k.startswith("heads") or "0_2" in k for k in _weights(run))  # best.pt: the student only


def test_pretrain_objective_is_the_teacher_terms_on_every_entry_and_ignores_labels() -> None:
    from pipeline.losses import EAsTObjective, kd_loss
    from pipeline.students.base import StudentOutput
    from tests.batches import frames, make_batch

    gen = torch.Generator().manual_seed(0)
    features = [torch.randn(8, 4, 6, generator=gen, dtype=torch.float64, requires_grad=True)]
    output = StudentOutput(torch.randn(8, 3, generator=gen, dtype=torch.float64, requires_grad=True), features,
                           [0.5], [0.25])
    teacher = [frames(torch.randn(8, 4, 5, generator=gen, dtype=torch.float64), 0.25 + 0.5 * np.arange(4), 0.5)]
    teacher_logits = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    objective = EAsTObjective("pretrain", kd_weight=0.3, tau=1.0, stage_weights=(1,))
    clean = objective(output, make_batch(torch.zeros(8, 3), torch.ones(8, 3, dtype=torch.bool), teacher),
                      teacher_logits)
    poisoned = objective(output, make_batch(torch.full((8, 3), float("nan")), torch.rand(8, 3, generator=gen) > 0.5,
                                            teacher), teacher_logits)
    assert torch.equal(clean["total"], poisoned["total"]) and torch.isnan(clean["pred"])
    every = kd_loss(output.logits, teacher_logits, torch.ones(8, 3, dtype=torch.bool), 1.0)
    total, feat = float(clean["total"].detach()), float(clean["feat"].detach())
    assert total == pytest.approx(0.3 * float(every.detach()) + 0.7 * feat, rel=1e-12)
    clean["total"].backward()
    assert output.logits.grad is not None and features[0].grad is not None
    no_probe = EAsTObjective("pretrain", kd_weight=0.3, stage_weights=(1,))(
        output, make_batch(torch.zeros(8, 3), torch.ones(8, 3, dtype=torch.bool), teacher))
    # features alone without a probe
    assert float(no_probe["total"].detach()) == pytest.approx(float(no_probe["feat"].detach()))
