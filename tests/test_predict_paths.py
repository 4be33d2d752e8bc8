"""`pipeline predict` on what users pass: files, folders, glob patterns, and paths it cannot use.

Each unusable path (missing, a dangling symbolic link, not audio) is one line on stderr and the rest
is tagged (exit 2); only when nothing can be tagged does the command fail (exit 1).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from pipeline.manifests import load_split
from tests import stage2_fixtures
from tests.stage2_fixtures import TinyPipeline, invoke

tiny_pipeline = stage2_fixtures.tiny_pipeline


def _songs(tiny: TinyPipeline, folder: Path) -> list[Path]:
    """Three rendered test clips copied to ``folder`` (two of them in a subfolder)."""
    clips = load_split(tiny.manifests, "test")[:3]
    targets = [folder / "a.flac", folder / "deep" / "b.flac", folder / "deep" / "c.flac"]
    for clip, target in zip(clips, targets):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(clip.resolve(tiny.audio_root), target)
    return targets


def _tagged(stdout: str) -> list[str]:
    return [line.split(": ", 1)[0] for line in stdout.splitlines() if line.strip()]


def test_files_folders_and_globs_are_tagged_and_each_unusable_path_is_one_line(tiny_pipeline: TinyPipeline,
                                                                               tmp_path: Path) -> None:
    songs = _songs(tiny_pipeline, tmp_path / "music")
    (tmp_path / "music" / "deep" / "gone.flac").symlink_to(tmp_path / "deleted.flac")  # picked up by the folder
    (tmp_path / "glob").mkdir()
    shutil.copy(songs[0], tmp_path / "glob" / "x.flac")
    (tmp_path / "glob" / "y.flac").symlink_to(tmp_path / "nowhere.flac")  # picked up by the glob
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"not audio" * 50)
    result = invoke(None, "predict", str(tiny_pipeline.run_dir("baseline")), str(songs[0]),
                    str(tmp_path / "music" / "deep"), str(tmp_path / "glob" / "*.flac"), str(tmp_path / "missing.wav"),
                    str(broken), str(tmp_path / "none-*.ogg"))
    assert result.exit_code == 2, result.output
    assert _tagged(result.stdout) == [str(songs[0]), str(songs[1]), str(songs[2]), str(tmp_path / "glob" / "x.flac")]
    lines = result.stderr.strip().splitlines()
    expected = {
        str(tmp_path / "music" / "deep" / "gone.flac"): "dangling symbolic link",
        str(tmp_path / "glob" / "y.flac"): "dangling symbolic link",
        str(tmp_path / "missing.wav"): "no such file or folder",
        str(broken): "not a readable audio file",
        str(tmp_path / "none-*.ogg"): "no file matches this pattern",
    }
    assert len([line for line in lines if line.startswith("skipped: ")]) == len(expected), lines
    for path, reason in expected.items():
        assert any(path in line and reason in line for line in lines), (path, lines)
    assert "Traceback" not in result.output and "Usage" not in result.output


def test_nothing_usable_is_exit_1_after_naming_each_path(tiny_pipeline: TinyPipeline, tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere.wav", tmp_path / "dangling.wav")
    (tmp_path / "empty").mkdir()
    result = invoke(None, "predict", str(tiny_pipeline.run_dir("baseline")), str(tmp_path / "dangling.wav"),
                    str(tmp_path / "empty"))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and "dangling symbolic link" in lines[0] and "no audio files" in lines[1]
    assert "none of the 2 path(s) given holds audio that can be tagged" in lines[2]
    assert result.stdout == ""
