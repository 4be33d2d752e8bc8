"""Unlabeled clips (no known label): teacher terms only, never the label loss (issue 14).

An unlabeled clip is one whose ``known`` mask is all False. It must not move the label loss
(a poisoned label shows it), it must enter the feature term and KD on every class, mixup with
it must not invent labels, the loader visits a seeded subset of them per epoch, and the demo
renderer and the folder builder add them without touching the labelled clips.
"""
from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from pipeline.batch import Batch, ClipItem, collate_items
from pipeline.data import mixup
from pipeline.errors import ConfigError
from pipeline.losses import EAsTObjective, kd_loss, kd_mask, masked_bce
from pipeline.manifests import is_unlabeled, load_split
from pipeline.sampling import UnlabeledSubsetSampler, unlabeled_sampler
from tests.batches import frames, make_batch
from tests.stage2_fixtures import ROOT, distill_config, invoke, small_student

torch.set_num_threads(1)
SR = 16000
N_CLASSES = 4
LABELLED, UNLABELED = 5, 3  # rows 0..4 labelled, 5..7 unlabeled


def _batch(seed: int = 0) -> Batch:
    """Audio (8, 2 s), labels, a known mask (labelled rows: some known; the last 3: none), teacher."""
    g = torch.Generator().manual_seed(seed)
    n = LABELLED + UNLABELED
    known = torch.rand(n, N_CLASSES, generator=g) > 0.3
    known[:LABELLED, 0] = True  # every labelled row has a known entry
    known[LABELLED:] = False
    audio = 0.3 * torch.randn(n, 2 * SR, generator=g)
    labels = (torch.rand(n, N_CLASSES, generator=g) > 0.5).float() * known
    teacher = torch.randn(n, 1, 6, generator=g)  # clip-level teacher frames
    return make_batch(labels, known, [frames(teacher, np.array([1.0]), 0.0)], audio=audio)


def _head(batch: Batch, n: int) -> Batch:
    """The batch's first ``n`` rows."""
    return Batch(batch.audio[:n], batch.labels[:n], batch.known[:n], batch.index[:n],
                 [dataclasses.replace(t, frames=t.frames[:n]) for t in batch.teachers])


def _terms(student: torch.nn.Module, batch: Batch, probe: torch.nn.Module,
           variant: str = "east-kd") -> tuple[dict[str, torch.Tensor], Any]:
    objective = EAsTObjective(variant=variant, lam=0.5)
    output = student(batch.audio)
    teacher_logits = probe(batch.teachers[0].frames).detach()
    losses = objective(output, batch, teacher_logits)
    return losses, output


def _grads(student: torch.nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    student.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in student.parameters()]


@pytest.fixture(scope="module")
def student_and_probe() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return small_student(N_CLASSES, SR), torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, N_CLASSES))


# ---- (a) the label loss never sees an unlabeled row ----------------------------------------
def test_poisoned_labels_of_unlabeled_rows_change_neither_loss_nor_gradients(student_and_probe: tuple) -> None:
    student, probe = student_and_probe
    clean = _batch()
    poisoned = dataclasses.replace(clean, labels=clean.labels.clone())
    poisoned.labels[LABELLED:] = 1.0
    (a, _), (b, _) = _terms(student, clean, probe), _terms(student, poisoned, probe)
    assert torch.equal(a["pred"], b["pred"]) and torch.equal(a["total"], b["total"])
    for key in ("pred", "total"):
        grads_a = _grads(student, _terms(student, clean, probe)[0][key])
        grads_b = _grads(student, _terms(student, poisoned, probe)[0][key])
        assert all(torch.equal(x, y) for x, y in zip(grads_a, grads_b)), key
        assert any(bool(x.abs().sum() > 0) for x in grads_a), key  # a gradient that could have differed
    # the same poison on a labelled row does move the label loss: the check above can fail
    control = dataclasses.replace(clean, labels=clean.labels.clone())
    control.labels[0] = 1.0 - control.labels[0]
    assert not torch.equal(_terms(student, control, probe)[0]["pred"], a["pred"])


# ---- (b) unlabeled rows enter the feature term and KD on every class ------------------------
def test_kd_mask_keeps_labelled_rows_and_opens_unlabeled_ones() -> None:
    known = torch.tensor([[True, False, True], [False, False, False], [False, True, False]])
    assert kd_mask(known).tolist() == [[True, False, True], [True, True, True], [False, True, False]]


def test_unlabeled_rows_enter_the_feature_and_kd_terms(student_and_probe: tuple) -> None:
    student, probe = student_and_probe
    student.eval()  # rows independent of the batch, so removing rows changes only their own terms
    try:
        batch = _batch(1)
        with torch.no_grad():
            full, output = _terms(student, batch, probe)
            only_labelled, _ = _terms(student, _head(batch, LABELLED), probe)
        assert float(full["feat"]) != pytest.approx(float(only_labelled["feat"]), abs=1e-6)
        assert float(full["kd"]) != pytest.approx(float(only_labelled["kd"]), abs=1e-6)
        assert float(full["pred"]) == pytest.approx(float(only_labelled["pred"]), rel=1e-5)  # unseen there
        teacher_logits = probe(batch.teachers[0].frames).detach()
        by_hand = batch.known.clone()
        by_hand[LABELLED:] = True  # every class of the unlabeled rows, the known entries of the others
        expected = kd_loss(output.logits, teacher_logits, by_hand, tau=2.0)
        assert float(full["kd"]) == pytest.approx(float(expected), rel=1e-6)
        assert float(full["kd"]) != pytest.approx(float(kd_loss(output.logits, teacher_logits, batch.known)))
    finally:
        student.train()


def test_kd_gradient_reaches_every_class_of_an_unlabeled_row_and_bce_none() -> None:
    batch = _batch(2)
    logits = torch.randn(len(batch.known), N_CLASSES, requires_grad=True)
    teacher_logits = torch.randn(len(batch.known), N_CLASSES)
    masked_bce(logits, batch.labels, batch.known).backward()
    assert torch.all(logits.grad[LABELLED:] == 0)
    logits.grad = None
    kd_loss(logits, teacher_logits, kd_mask(batch.known)).backward()
    assert torch.all(logits.grad[LABELLED:] != 0)


# ---- (c) mixup with an unlabeled partner -------------------------------------------------------
def _mixed(batch: Batch, seed: int) -> tuple[Batch, torch.Tensor]:
    """Mixup of ``batch`` and the partners it used (mixup draws them from its generator)."""
    generator = torch.Generator().manual_seed(seed)
    partner = torch.randperm(len(batch), generator=torch.Generator().manual_seed(seed))
    torch.manual_seed(seed)  # the Beta shares
    return mixup(batch, 0.4, generator), partner


def test_mixup_with_an_unlabeled_partner_drops_the_row_from_the_label_loss() -> None:
    batch = _batch(3)
    seed = next(s for s in range(100)  # a draw pairing labelled rows with unlabeled and with labelled ones
                if (lambda p: bool((p[:LABELLED] >= LABELLED).any() and (p[:LABELLED] < LABELLED).any()))(
                    torch.randperm(8, generator=torch.Generator().manual_seed(s))))
    mixed, partner = _mixed(batch, seed)
    unlabeled = torch.arange(8) >= LABELLED
    involved = unlabeled | unlabeled[partner]
    assert not mixed.known[involved].any()
    clean = ~involved
    assert torch.equal(mixed.known[clean], (batch.known | batch.known[partner])[clean])
    # fake labels of the unlabeled clips reach no label target: poisoning them changes nothing
    poisoned = dataclasses.replace(batch, labels=batch.labels.clone())
    poisoned.labels[LABELLED:] = 1.0
    mixed_poisoned, _ = _mixed(poisoned, seed)
    logits = torch.randn(8, N_CLASSES)
    assert torch.equal(masked_bce(logits, mixed.labels, mixed.known),
                       masked_bce(logits, mixed_poisoned.labels, mixed_poisoned.known))
    assert not torch.equal(mixed.audio[involved], batch.audio[involved])  # still mixed: teacher terms


# ---- (d) the per-epoch sampler -----------------------------------------------------------------
def _epoch(sampler: UnlabeledSubsetSampler, seed: int) -> list[int]:
    sampler.generator.manual_seed(seed)
    return list(sampler)


def test_sampler_visits_all_labelled_and_a_fresh_unlabeled_subset_per_epoch() -> None:
    labelled, unlabeled = list(range(0, 20, 2)), list(range(1, 40, 2)) + list(range(40, 60))
    sampler = UnlabeledSubsetSampler(labelled, unlabeled, 7, torch.Generator())
    epochs = [_epoch(sampler, seed) for seed in range(5)]
    assert all(len(e) == len(sampler) == 17 for e in epochs)
    for order in epochs:
        assert sorted(i for i in order if i in labelled) == labelled and len(set(order)) == len(order)
        assert sum(i in unlabeled for i in order) == 7
    subsets = {frozenset(i for i in order if i not in labelled) for order in epochs}
    assert len(subsets) == 5
    assert _epoch(sampler, 3) == epochs[3]  # reproducible from the generator's seed
    everything = UnlabeledSubsetSampler(labelled, unlabeled[:4], 10, torch.Generator())
    assert len(everything) == 14 and sorted(_epoch(everything, 0)) == sorted(labelled + unlabeled[:4])
    with pytest.raises(ConfigError, match="unlabeled_per_epoch"):
        UnlabeledSubsetSampler(labelled, unlabeled, -1, torch.Generator())


class _Clips:
    """A stand-in training set: every item is its index; clips 0..9 labelled, 10..39 unlabeled."""

    def __init__(self) -> None:
        from pipeline.manifests import Clip

        self.clips = [Clip(f"c{i}", f"c{i}.flac", 1.0, SR, (0, 1), (i < 10, i < 10)) for i in range(40)]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> ClipItem:
        clip = self.clips[index]
        return ClipItem(np.zeros(4, np.float32), np.asarray(clip.labels, np.float32), np.asarray(clip.known), index)

    def collate(self, items: list[ClipItem]) -> Batch:
        return collate_items(items, [], [])


def test_trainer_loader_epochs_are_constant_reproducible_and_resume_exactly(tmp_path: Path) -> None:
    from pipeline.distributed import DistContext
    from pipeline.train import Trainer, _epoch_seed

    def trainer(per_epoch: int | None) -> Trainer:
        config = distill_config(batch_size=4, unlabeled_per_epoch=per_epoch)
        return Trainer(torch.nn.Linear(1, 1), None, config, tmp_path / "run")

    def epoch(loader: Any, number: int, skip: int = 0) -> list[int]:
        loader.generator.manual_seed(_epoch_seed(0, number))  # what Trainer._train_epoch does
        batches = iter(loader)
        for _ in range(skip):
            next(batches)
        return [int(i) for batch in batches for i in batch.index]

    run = trainer(6)._start(_Clips())
    assert len(run.loader) == 4  # (10 labelled + 6 unlabeled) / 4, every epoch
    orders = [epoch(run.loader, e) for e in range(3)]
    assert all(set(range(10)) <= set(order) and len(order) == 16 for order in orders)
    assert len({frozenset(order) for order in orders}) == 3
    again = trainer(6)._start(_Clips())  # a new process resuming mid-epoch 1 after 2 batches
    assert epoch(again.loader, 1, skip=2) == orders[1][8:]
    assert len(trainer(None)._start(_Clips()).loader) == 10  # null: every clip every epoch
    under_torchrun = trainer(6)
    under_torchrun.dist = DistContext(rank=0, world=2)
    with pytest.raises(ConfigError, match="not supported under torchrun"):
        under_torchrun._start(_Clips())
    assert unlabeled_sampler(_Clips().clips, None, torch.Generator(), distributed=True) is None


# ---- (e) the demo renders unlabeled clips without touching the labelled ones --------------------
TINY = {"n_train": 4, "n_valid": 1, "n_test": 1, "clip_seconds": 1.0, "sample_rate": 8000}


def _render(tmp_path: Path, params_file: Any, name: str, n_unlabeled: int) -> tuple[Path, Path]:
    audio, manifests = tmp_path / name / "audio", tmp_path / name / "m"
    params = params_file(demo={**TINY, "n_unlabeled": n_unlabeled},
                         data={"dataset": "demo", "audio_root": str(audio), "manifests": str(manifests)})
    result = invoke(params, "prepare", "demo", "--no-progress", "--workers", "1")
    assert result.exit_code == 0, result.output
    return audio, manifests


def test_demo_unlabeled_clips_leave_the_labelled_ones_byte_identical(tmp_path: Path, params_file: Any) -> None:
    audio0, m0 = _render(tmp_path, params_file, "zero", 0)
    audio3, m3 = _render(tmp_path, params_file, "three", 3)
    files0 = sorted(p.relative_to(audio0).as_posix() for p in audio0.rglob("*.flac"))
    files3 = sorted(p.relative_to(audio3).as_posix() for p in audio3.rglob("*.flac"))
    assert files3 == sorted(files0 + [f"unlabeled/unlabeled_{i:05d}.flac" for i in range(3)])
    assert all((audio0 / f).read_bytes() == (audio3 / f).read_bytes() for f in files0)
    train0, train3 = load_split(m0, "train"), load_split(m3, "train")
    assert train3[:4] == train0 and load_split(m3, "valid") == load_split(m0, "valid")
    new = train3[4:]
    assert [c.id for c in new] == [f"unlabeled_{i:05d}" for i in range(3)]
    assert all(is_unlabeled(c) and c.labels == (0,) * 20 for c in new)
    assert not any(is_unlabeled(c) for c in train0)
    assert len({(audio3 / c.audio_path).read_bytes() for c in new}) == 3  # three distinct renders
    assert json.loads((m3 / "report.json").read_text())["unlabeled"]["train"] == 3


def test_demo_render_stage_then_prepare_carries_unlabeled_clips(tmp_path: Path, params_file: Any) -> None:
    """``dvc repro``'s path: render (audio + labels.csv), then ``pipeline prepare`` reads them."""
    audio, manifests = tmp_path / "audio", tmp_path / "m"
    params = params_file(demo={**TINY, "n_unlabeled": 2},
                         data={"dataset": "demo", "audio_root": str(audio), "manifests": str(manifests)})
    assert invoke(params, "prepare", "demo", "--audio-only", "--no-progress", "--workers", "1").exit_code == 0
    result = invoke(params, "prepare")
    assert result.exit_code == 0, result.output
    assert "unlabeled (no known label; feature and KD terms only): train 2" in result.output
    train = load_split(manifests, "train")
    expected = [f"unlabeled/unlabeled_{i:05d}.flac" for i in range(2)]
    assert [c.audio_path for c in train if is_unlabeled(c)] == expected
    assert sum(not is_unlabeled(c) for c in train) == 4
    assert "not in labels.csv" not in result.output


# ---- (f) pipeline prepare folder --unlabeled DIR -----------------------------------------------
def _tone(path: Path, seconds: float = 1.0, rate: int = 8000, freq: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)


def _folder_tree(root: Path) -> Path:
    audio = root / "audio"
    for i in range(6):
        _tone(audio / "songs" / f"s{i}.wav", freq=200.0 * (i + 1))
    _tone(audio / "extra" / "x.wav")
    _tone(audio / "extra" / "deep" / "y.flac")
    _tone(audio / "extra" / "s9.wav")  # listed in the CSV: stays labelled
    (audio / "extra" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 8)
    (audio / "extra" / "notes.txt").write_text("not audio")
    split = ["train", "train", "train", "valid", "test", "train"]
    rows = "".join(f"songs/s{i}.wav,{split[i]},{'a' if i % 2 else 'b'}\n" for i in range(6))
    (audio / "labels.csv").write_text("file,split,tags\n" + rows + "extra/s9.wav,train,a\n")
    return audio


def test_prepare_folder_unlabeled_adds_every_file_below_the_folder(tmp_path: Path, params_file: Any) -> None:
    audio = _folder_tree(tmp_path)
    args = ["prepare", "folder", "--audio", str(audio), "--labels", str(audio / "labels.csv"),
            "--out", str(tmp_path / "m")]
    result = invoke(params_file(), *args, "--unlabeled", str(audio / "extra"))
    assert result.exit_code == 0, result.output
    train = {c.id: c for c in load_split(tmp_path / "m", "train")}
    unlabeled = sorted(c.audio_path for c in train.values() if is_unlabeled(c))
    assert unlabeled == ["extra/deep/y.flac", "extra/x.wav"]
    assert train["extra/x"].labels == (0, 0) and train["extra/s9"].known == (True, True)
    assert not any(is_unlabeled(c) for split in ("valid", "test") for c in load_split(tmp_path / "m", split))
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    assert [u["path"] for u in report["unreadable"]] == ["extra/broken.wav"]
    assert "broken.wav" in result.output and report["unlabeled"]["train"] == 2
    assert "1 file(s) under the unlabeled folder(s) are listed in the labels CSV" in result.output
    assert "were ignored" not in result.output  # the extra/ files are not "unlisted"
    # without --unlabeled the labelled clips are the same
    plain = invoke(params_file(), *args[:-1], str(tmp_path / "m0"))
    assert plain.exit_code == 0 and "were ignored" in plain.output
    assert load_split(tmp_path / "m0", "train") == [c for c in train.values() if not is_unlabeled(c)]


def test_unlabeled_folder_outside_the_audio_root_is_one_clear_error(tmp_path: Path, params_file: Any) -> None:
    audio = _folder_tree(tmp_path)
    _tone(tmp_path / "elsewhere" / "z.wav")
    result = invoke(params_file(), "prepare", "folder", "--audio", str(audio), "--labels",
                    str(audio / "labels.csv"), "--out", str(tmp_path / "m"), "--unlabeled", str(tmp_path / "elsewhere"))
    assert result.exit_code == 1
    assert "is outside the audio folder" in result.output and "data.audio_root" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "m").exists()


def test_data_unlabeled_drives_bare_prepare(tmp_path: Path, params_file: Any) -> None:
    audio = _folder_tree(tmp_path)
    params = params_file(data={"dataset": "folder", "audio_root": str(audio), "labels": str(audio / "labels.csv"),
                               "manifests": str(tmp_path / "m"), "render": [], "unlabeled": "extra"})
    result = invoke(params, "prepare")  # "extra": relative to the audio folder
    assert result.exit_code == 0, result.output
    assert sum(is_unlabeled(c) for c in load_split(tmp_path / "m", "train")) == 2
    wrong = params_file(data={"dataset": "openmic", "audio_root": str(audio), "unlabeled": "extra"})
    result = invoke(wrong, "prepare")
    assert result.exit_code == 1 and "only the folder dataset takes unlabeled audio" in result.output


# ---- (g) end to end: demo with unlabeled clips -> extract -> probe -> distill east-kd -----------
@pytest.mark.slow
def test_demo_with_unlabeled_clips_trains_east_kd(tmp_path: Path) -> None:
    import stages.extract
    from pipeline.config import load_params

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(audio_root=str(tmp_path / "audio"), manifests=str(tmp_path / "m"))
    params["demo"].update(n_train=8, n_valid=4, n_test=4, n_unlabeled=4, clip_seconds=3.0)
    params["extract"].update(workers=0, store_root=str(tmp_path / "stores"), device="cpu")
    params["probe"].update(steps=20, runs_root=str(tmp_path / "runs"))
    params["distill"].update(epochs=1, batch_size=4, runs_root=str(tmp_path / "runs"), device="cpu",
                             unlabeled_per_epoch=2)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    assert invoke(path, "prepare", "demo", "--no-progress", "--workers", "1").exit_code == 0
    report = stages.extract.run(load_params(path), teacher="musicnn", progress=False)
    assert report.ok and report.done == 20, report.to_json()
    for args in (["probe", "--teacher", "musicnn"],
                 ["distill", "--variant", "east-kd", "--run-dir", str(tmp_path / "run"), "--no-progress"]):
        result = invoke(path, *args)
        assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert (metrics["n_labeled"], metrics["n_unlabeled"], metrics["unlabeled_per_epoch"]) == (8, 4, 2)
    with open(tmp_path / "run" / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and all(np.isfinite(float(rows[0][k])) for k in ("train_pred", "train_feat", "train_kd"))
