"""Empty splits and clips that failed extraction: later stages say one line, or leave the clips out once."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.errors import ManifestError
from pipeline.manifests import Clip, load_split, usable_splits, write_manifest
from tests.stage2_fixtures import TinyPipeline, invoke, tiny_pipeline  # noqa: F401


def _clip(i: int) -> Clip:
    return Clip(f"c{i}", f"c{i}.flac", 1.0, 16000, (1, 0), (True, True))


def test_empty_split_is_one_error_naming_it_and_the_fix(tmp_path: Path) -> None:
    write_manifest(tmp_path / "train.jsonl", [_clip(0)])
    write_manifest(tmp_path / "valid.jsonl", [])
    with pytest.raises(ManifestError, match=r"split 'valid' in .* has no clips, and distill needs it; add clips"):
        usable_splits(tmp_path, ("train", "valid"), stage="distill")


@pytest.mark.parametrize("splits", [("train",), ("train", "valid", "test")])
def test_clips_missing_from_the_store_are_left_out_with_one_warning(
        tmp_path: Path, splits: tuple[str, ...], caplog: pytest.LogCaptureFixture) -> None:
    for split in splits:
        write_manifest(tmp_path / f"{split}.jsonl", [_clip(i) for i in range(4)])
    with caplog.at_level(logging.WARNING):
        out = usable_splits(tmp_path, splits, stored={"c0", "c2", "c3"}, stage="probe")
    assert all([c.id for c in out[s]] == ["c0", "c2", "c3"] for s in splits)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{len(splits)} clip(s) are not in the store" in warnings[0].getMessage()
    with pytest.raises(ManifestError, match="none of the 4 clip"):
        usable_splits(tmp_path, splits, stored=set(), stage="probe")


def _params_with(tiny: TinyPipeline, tmp_path: Path, manifests: Path) -> Path:
    params = yaml.safe_load(tiny.params.read_text())
    params["data"]["manifests"] = str(manifests)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_every_later_stage_stops_with_one_line_on_an_empty_split(
        tiny_pipeline: TinyPipeline, tmp_path: Path, split: str) -> None:  # noqa: F811
    manifests = tmp_path / "m"
    shutil.copytree(tiny_pipeline.manifests, manifests)
    write_manifest(manifests / f"{split}.jsonl", [])
    params = _params_with(tiny_pipeline, tmp_path, manifests)
    commands = [["probe", "--teacher", "musicnn", "--out", str(tmp_path / "p")]]
    if split != "test":
        commands.append(["distill", "--variant", "baseline", "--run-dir", str(tmp_path / "r"), "--no-progress"])
    for args in commands:
        result = invoke(params, *args)
        assert result.exit_code == 1, result.output
        assert f"split {split!r}" in result.output and "has no clips" in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_clips_that_failed_extraction_do_not_block_later_stages(tiny_pipeline: TinyPipeline,  # noqa: F811
                                                                tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    manifests = tmp_path / "m"
    shutil.copytree(tiny_pipeline.manifests, manifests)
    ghost = Clip("ghost", "ghost.mp3", 29.1, 44100, load_split(manifests, "train")[0].labels,
                 load_split(manifests, "train")[0].known)
    for split in ("train", "valid", "test"):  # a clip extraction could not decode, in every split
        write_manifest(manifests / f"{split}.jsonl",
                       load_split(manifests, split) + [Clip(**{**ghost.__dict__, "id": f"ghost-{split}"})])
    params = _params_with(tiny_pipeline, tmp_path, manifests)
    for args in (["probe", "--teacher", "musicnn", "--out", str(tmp_path / "p")],
                 ["distill", "--variant", "east-final", "--run-dir", str(tmp_path / "r"), "--no-progress"],
                 ["evaluate", str(tmp_path / "r")]):
        caplog.clear()
        result = invoke(params, *args)
        assert result.exit_code == 0, result.output
        said = [r.getMessage() for r in caplog.records if "not in the store" in r.getMessage()]
        assert len(said) == 1 and "ghost-" in said[0], said
