"""`pipeline distill / evaluate / predict` on the tiny real pipeline (musicnn teacher, demo clips)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests import stage2_fixtures
from tests.stage2_fixtures import TinyPipeline, VARIANTS, invoke

tiny_pipeline = stage2_fixtures.tiny_pipeline  # the session's real pipeline (built once)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("variant", VARIANTS)
def test_distill_writes_a_complete_run(tiny_pipeline: TinyPipeline, variant: str) -> None:
    folder = tiny_pipeline.run_dir(variant)
    for name in ("config.json", "best.pt", "last.pt", "history.csv", "metrics.json"):
        assert (folder / name).is_file(), name
    metrics = _json(folder / "metrics.json")
    assert metrics["variant"] == variant and metrics["epochs_run"] == 1 and metrics["best_epoch"] == 1
    assert metrics["teacher"] == (None if variant == "baseline" else "musicnn")
    assert metrics["lam"] == (0.0 if variant == "baseline" else 0.3)
    assert 0.0 < metrics["valid_map"] <= 1.0 and _json(folder / "timings.json")["train_clips_per_second"] > 0
    assert metrics["parameters"] > 100_000 and metrics["device"] == "cpu"
    config = _json(folder / "config.json")
    assert config["n_classes"] == len(config["classes"]) == 20 and config["sample_rate"] == 16000
    assert config["clip_seconds"] == 4.0
    with open(folder / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and float(rows[0]["valid_map"]) == pytest.approx(metrics["valid_map"])
    if variant == "east-kd":
        assert np.isfinite(float(rows[0]["train_kd"])) and float(rows[0]["train_kd"]) >= 0
    out = tiny_pipeline.outputs[f"distill-{variant}"]
    assert f"{variant}: best valid mAP {metrics['valid_map']:.4f} at epoch 1" in out


@pytest.mark.parametrize("variant", VARIANTS)
def test_evaluate_writes_sane_metrics_that_match_the_model(tiny_pipeline: TinyPipeline, variant: str) -> None:
    import torch

    from pipeline.audio import read_audio
    from pipeline.manifests import label_arrays, load_split
    from pipeline.metrics import evaluate_predictions
    from pipeline.audio_source import AudioSource, usable_audio_cache
    from pipeline.students.trained import load_run, predict_audio

    folder = tiny_pipeline.run_dir(variant)
    result = _json(folder / "eval-test.json")
    assert result["split"] == "test" and result["clips"] == 8
    for key in ("map", "roc_auc", "f1_macro", "f1_binary"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["map"] > 0 and _json(folder / "timings-eval-test.json")["cpu_ms_per_clip"] > 0
    with open(folder / "per_class-test.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["class"] for r in rows] == _json(folder / "config.json")["classes"]
    # the stored mAP is the model's: the same clips read from the int16 cache, as evaluate reads them,
    # give it exactly; decoding the files instead changes every probability by less than 2e-3 (an mAP
    # over 8 clips is too coarse to compare across that difference: one swapped pair moves it by 0.005)
    run = load_run(folder)
    clips = load_split(tiny_pipeline.manifests, "test")
    cached = AudioSource(tiny_pipeline.audio_root, 16000, usable_audio_cache(tiny_pipeline.store, 16000))
    from_cache = np.stack([predict_audio(run, cached.read(c, 0, int(round(c.duration * 16000)))) for c in clips])
    labels, known = label_arrays(clips)
    assert evaluate_predictions(from_cache, labels, known).mAP == pytest.approx(result["map"], abs=1e-9)
    audio = np.stack([read_audio(c.resolve(tiny_pipeline.audio_root), sample_rate=16000) for c in clips])
    with torch.no_grad():
        from_files = torch.sigmoid(run.model(torch.from_numpy(audio)).logits).numpy()
    np.testing.assert_allclose(from_files, from_cache, atol=2e-3)
    printed = tiny_pipeline.outputs[f"evaluate-{variant}"]
    assert f"{variant} on test (8 clips): mAP {result['map']:.4f}" in printed


def _test_files(tiny: TinyPipeline, n: int) -> list[Path]:
    from pipeline.manifests import load_split

    return [c.resolve(tiny.audio_root) for c in load_split(tiny.manifests, "test")[:n]]


def test_predict_prints_the_top_tags_of_a_rendered_file(tiny_pipeline: TinyPipeline) -> None:
    from pipeline.audio import read_audio
    from pipeline.students.trained import load_run, predict_audio

    folder = tiny_pipeline.run_dir("east-kd")
    path = _test_files(tiny_pipeline, 1)[0]
    result = invoke(None, "predict", str(folder), str(path), "--top", "3")
    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith(f"{path}: ")
    tags = [t.rsplit(" ", 1) for t in line.split(": ", 1)[1].split(", ")]
    run = load_run(folder)
    probs = predict_audio(run, read_audio(path, sample_rate=16000))
    top = np.argsort(-probs)[:3]
    assert [name for name, _p in tags] == [run.classes[i] for i in top]
    assert [float(p) for _n, p in tags] == pytest.approx([probs[i] for i in top], abs=0.006)

    as_json = invoke(None, "predict", str(folder), str(path), "--json")
    record = json.loads(as_json.stdout)
    assert record["file"] == str(path) and list(record["probabilities"]) == run.classes
    np.testing.assert_allclose(list(record["probabilities"].values()), probs, rtol=1e-6)


def test_predict_scores_a_long_file_in_sliding_windows(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    import torch

    from pipeline.audio import read_audio, write_audio
    from pipeline.students.trained import load_run, predict_audio

    folder = tiny_pipeline.run_dir("baseline")
    pieces = [read_audio(p, sample_rate=16000) for p in _test_files(tiny_pipeline, 6)]
    long = np.concatenate(pieces)[: 21 * 16000]  # 21 s: windows at 0, 2, ..., 16 s and one ending at 21 s
    path = tmp_path / "long.flac"
    write_audio(path, long, 16000)
    result = invoke(None, "predict", str(folder), str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{path}: ") and result.stdout.count(", ") == 4  # five tags

    run = load_run(folder)
    wave = read_audio(path, sample_rate=16000)
    starts = [s * 16000 for s in (0, 2, 4, 6, 8, 10, 12, 14, 16)] + [len(wave) - 64000]
    windows = torch.from_numpy(np.stack([wave[s : s + 64000] for s in starts]))
    with torch.no_grad():
        expected = torch.sigmoid(run.model(windows).logits).numpy().mean(axis=0)
    np.testing.assert_allclose(predict_audio(run, wave), expected, rtol=1e-5, atol=1e-6)
    # a short file is zero-padded to the training length and scored once
    short = wave[:16000]
    padded = torch.from_numpy(np.pad(short, (0, 48000))[None])
    with torch.no_grad():
        once = torch.sigmoid(run.model(padded).logits)[0].numpy()
    np.testing.assert_allclose(predict_audio(run, short), once, rtol=1e-5, atol=1e-6)


def test_predict_skips_an_unreadable_file_with_exit_code_2(tiny_pipeline: TinyPipeline,
                                                           tmp_path: Path) -> None:
    good = _test_files(tiny_pipeline, 1)[0]
    bad = tmp_path / "broken.flac"
    bad.write_bytes(b"this is not audio" * 100)
    result = invoke(None, "predict", str(tiny_pipeline.run_dir("baseline")), str(bad), str(good))
    assert result.exit_code == 2
    assert "skipped" in result.stderr and "broken.flac" in result.stderr
    assert result.stdout.startswith(f"{good}: ") and "broken" not in result.stdout


def test_evaluate_and_predict_refuse_a_folder_that_is_not_a_run(tiny_pipeline: TinyPipeline,
                                                                tmp_path: Path) -> None:
    result = invoke(tiny_pipeline.params, "evaluate", str(tmp_path))
    assert result.exit_code == 1 and "not a training run" in result.output
    good = _test_files(tiny_pipeline, 1)[0]
    result = invoke(None, "predict", str(tmp_path), str(good))
    assert result.exit_code == 1 and "pipeline distill" in result.output


def test_east_kd_without_a_probe_says_to_run_the_probe(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    import yaml

    params = yaml.safe_load(tiny_pipeline.params.read_text())
    params["probe"]["runs_root"] = str(tmp_path / "no-probes")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    run_dir = str(tmp_path / "run")
    result = invoke(path, "distill", "--variant", "east-kd", "--run-dir", run_dir, "--no-progress")
    assert result.exit_code == 1 and "pipeline probe" in result.output
    assert not (tmp_path / "run" / "best.pt").exists()
