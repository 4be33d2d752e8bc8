"""`pipeline prepare ...` through click: params/flag precedence, outputs, errors, help."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from stages.prepare import run as prepare_run

TINY_DEMO = {"n_train": 4, "n_valid": 2, "n_test": 2, "clip_seconds": 0.5, "sample_rate": 8000}


def _invoke(*args: str):  # noqa: ANN202
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result


def test_prepare_demo_writes_audio_and_manifests(tmp_path: Path, params_file) -> None:
    params = params_file(demo=TINY_DEMO, data={"dataset": "demo", "audio_root": str(tmp_path / "audio"),
                                               "manifests": str(tmp_path / "m")})
    result = _invoke("--params", str(params), "prepare", "demo", "--no-progress", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert "demo: wrote 8 clips (train 4, valid 2, test 2), 20 classes" in result.output
    assert len(list((tmp_path / "audio").rglob("*.flac"))) == 8
    assert json.loads((tmp_path / "m" / "report.json").read_text())["options"]["n_train"] == 4
    assert "set in params.yaml" not in result.output  # params already point at these manifests


@pytest.mark.parametrize("section, flags, expected", [
    ({"n_train": 7}, [], "train 7"),              # params.yaml beats the default
    ({"n_train": 7}, ["--n-train", "3"], "train 3"),  # the flag beats params.yaml
    ({}, [], "train 600"),                        # nothing set: the dataclass default
])
def test_flag_beats_params_beats_default(tmp_path: Path, params_file, section: dict, flags: list[str],
                                         expected: str) -> None:
    params = params_file(demo=section) if section else params_file(report={"out": "reports"})
    result = _invoke("--params", str(params), "prepare", "demo", "--dry-run",
                     "--manifests", str(tmp_path / "m"), *flags)
    assert result.exit_code == 0, result.output
    assert "would write" in result.output and expected in result.output
    assert not (tmp_path / "m").exists()


def test_output_paths_follow_data_section_only_for_the_same_dataset(tmp_path: Path, params_file,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    params = params_file(demo=TINY_DEMO, data={"dataset": "openmic", "audio_root": "/data/openmic",
                                               "manifests": "data_manifests/openmic"})
    result = _invoke("--params", str(params), "prepare", "demo", "--no-progress", "--workers", "1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data_manifests" / "demo" / "train.jsonl").is_file()
    assert len(list((tmp_path / "data" / "demo").rglob("*.flac"))) == 8
    assert "data: {dataset: demo, audio_root: data/demo, manifests: data_manifests/demo}" in result.output
    result = _invoke("--params", str(params), "prepare", "demo", "--no-progress", "--workers", "1",
                     "--audio-root", "elsewhere", "--out", "m2")
    assert result.exit_code == 0 and (tmp_path / "m2" / "classes.json").is_file()
    assert len(list((tmp_path / "elsewhere").rglob("*.flac"))) == 8


def test_user_errors_are_one_line_exit_1(tmp_path: Path, params_file) -> None:
    params = params_file(demo={"min_instruments": 5, "max_instruments": 2})
    result = CliRunner().invoke(cli, ["--params", str(params), "prepare", "demo", "--dry-run"])
    assert result.exit_code == 1
    assert "min_instruments" in result.output and "Traceback" not in result.output
    bad = params_file(demo={"n_trian": 3})
    result = CliRunner().invoke(cli, ["--params", str(bad), "prepare", "demo", "--dry-run"])
    assert result.exit_code == 1 and "unknown key(s) 'n_trian'" in result.output
    good = params_file()  # (rewrites the same file)
    result = CliRunner().invoke(cli, ["--params", str(good), "prepare", "openmic", "--root", str(tmp_path)])
    assert result.exit_code == 1 and "openmic-2018.npz' not found" in result.output


def test_prepare_folder_from_the_cli(tmp_path: Path, params_file) -> None:
    import numpy as np

    from pipeline.audio import write_audio

    for i in range(6):
        write_audio(tmp_path / "songs" / f"s{i}.wav", np.full(800, 0.1 * (i + 1), np.float32), 8000)
    rows = "".join(f"s{i}.wav,{'a' if i % 2 else 'b'}\n" for i in range(6))
    (tmp_path / "labels.csv").write_text("file,tags\n" + rows)
    result = _invoke("--params", str(params_file()), "prepare", "folder", "--root", str(tmp_path / "songs"),
                     "--labels", str(tmp_path / "labels.csv"), "--classes", "b,a", "--fractions", "0.5,0.5,0",
                     "--out", str(tmp_path / "m"))
    assert result.exit_code == 0, result.output
    assert "folder: wrote 6 clips (train 3, valid 3, test 0), 2 classes" in result.output
    assert json.loads((tmp_path / "m" / "classes.json").read_text()) == ["b", "a"]
    result = CliRunner().invoke(cli, ["prepare", "folder", "--root", str(tmp_path), "--labels",
                                      str(tmp_path / "labels.csv"), "--fractions", "1,0"])
    assert result.exit_code == 2 and "train,valid,test" in result.output


def test_help_shows_defaults_and_subcommands() -> None:
    result = _invoke("prepare", "--help")
    assert all(name in result.output for name in ("demo", "folder", "openmic", "magnatagatune"))
    demo_help = _invoke("prepare", "demo", "--help").output
    assert "demo.n_train, 600" in demo_help and "--dry-run" in demo_help and "default: 2" in demo_help
    openmic_help = _invoke("prepare", "openmic", "--help").output
    assert "2022" in openmic_help and "mask" in openmic_help and "<root>/partitions" in openmic_help


def test_stage_run_fills_defaults_from_params(tmp_path: Path, params_file) -> None:
    from pipeline.config import load_params

    params = load_params(params_file(demo={**TINY_DEMO, "seed": 9}, data={
        "dataset": "demo", "audio_root": str(tmp_path / "a"), "manifests": str(tmp_path / "m")}))
    report = prepare_run(params, builder="demo", dry_run=True, workers=None)
    assert report.options["seed"] == 9 and report.manifests_dir == str(tmp_path / "m")
    assert report.audio_root == str(tmp_path / "a")


def test_bare_prepare_builds_the_dataset_params_names(tmp_path: Path, params_file) -> None:
    import numpy as np

    from pipeline.audio import write_audio

    for i in range(4):
        write_audio(tmp_path / "mine" / "sub" / f"k{i}.flac", np.full(800, 0.1, np.float32), 8000)
    (tmp_path / "mine" / "labels.csv").write_text(
        "id,split,tags\nk0,train,a\nk1,train,b\nk2,valid,a\nk3,test,b\n")
    data = {"dataset": "folder", "audio_root": str(tmp_path / "mine"), "labels": str(tmp_path / "mine" / "labels.csv"),
            "manifests": str(tmp_path / "m"), "render": []}
    result = _invoke("--params", str(params_file(data=data)), "prepare")
    assert result.exit_code == 0, result.output
    assert "folder: wrote 4 clips (train 2, valid 1, test 1), 2 classes" in result.output
    assert "set in params.yaml" not in result.output
    result = CliRunner().invoke(cli, ["--params", str(params_file(data={**data, "labels": ""})), "prepare"])
    assert result.exit_code == 1 and "data.labels is empty" in result.output
    demo = {"dataset": "demo", "audio_root": str(tmp_path / "nothing"), "manifests": str(tmp_path / "d"),
            "labels": str(tmp_path / "nothing" / "labels.csv")}
    result = CliRunner().invoke(cli, ["--params", str(params_file(data=demo)), "prepare"])
    assert result.exit_code == 1 and "run `pipeline prepare demo`" in result.output


def test_demo_audio_only_then_bare_prepare_gives_the_same_manifests(tmp_path: Path, params_file) -> None:
    data = {"dataset": "demo", "audio_root": str(tmp_path / "a"), "manifests": str(tmp_path / "m2"),
            "labels": str(tmp_path / "a" / "labels.csv")}
    params = params_file(demo=TINY_DEMO, data=data)
    rendered = _invoke("--params", str(params), "prepare", "demo", "--audio-only", "--no-progress", "--workers", "1")
    assert rendered.exit_code == 0 and "rendered 8 clips and labels.csv" in rendered.output
    assert not (tmp_path / "m2").exists()
    assert _invoke("--params", str(params), "prepare").exit_code == 0
    direct = _invoke("--params", str(params), "prepare", "demo", "--no-progress", "--workers", "1",
                     "--out", str(tmp_path / "m1"))
    assert direct.exit_code == 0
    for name in ("train.jsonl", "valid.jsonl", "test.jsonl", "classes.json"):
        assert (tmp_path / "m1" / name).read_text() == (tmp_path / "m2" / name).read_text(), name
