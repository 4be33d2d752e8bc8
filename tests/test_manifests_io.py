"""pipeline.manifests: JSONL round trip, unknown labels, errors naming file and line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import ManifestError
from pipeline.manifests import (
    Clip,
    label_arrays,
    load_split,
    read_classes,
    read_manifest,
    write_classes,
    write_manifest,
)


def _clips() -> list[Clip]:
    return [
        Clip("a", "x/a.flac", 5.0, 16000, (1, 0, 0), (True, True, False)),
        Clip("b", "x/b.flac", 4.5, 44100, (0, 1, 1), (True, False, True)),
    ]


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    write_manifest(tmp_path / "train.jsonl", _clips())
    write_classes(tmp_path / "classes.json", ["piano", "violin", "voice"])
    assert read_manifest(tmp_path / "train.jsonl") == _clips()
    assert read_classes(tmp_path) == ["piano", "violin", "voice"]
    assert load_split(tmp_path, "train") == _clips()
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[1])["known"] == [True, False, True]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # temporaries renamed away


def test_label_arrays_and_unknown_mask() -> None:
    labels, known = label_arrays(_clips())
    assert labels.dtype == np.float32 and known.dtype == bool
    np.testing.assert_array_equal(labels, [[1, 0, 0], [0, 1, 1]])
    np.testing.assert_array_equal(known, [[True, True, False], [True, False, True]])
    assert label_arrays([])[0].shape == (0, 0)


def test_resolve_joins_posix_path_to_root(tmp_path: Path) -> None:
    assert _clips()[0].resolve(tmp_path) == tmp_path / "x" / "a.flac"


def test_missing_known_means_all_known(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"id": "a", "audio_path": "a.wav", "duration": 1, "sample_rate": 8000,
                                "labels": [0, 1]}) + "\n")
    assert read_manifest(path)[0].known == (True, True)


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"id": "c", "audio_path": "c.wav", "duration": 1, "sample_rate": 8000, "labels": [0, 2]}',
         "0 or 1"),
        ('{"id": "c", "audio_path": "c.wav", "duration": 0, "sample_rate": 8000, "labels": [0, 1]}',
         "positive"),
        ('{"id": "c", "audio_path": "c.wav", "duration": 1, "sample_rate": 8000}', "labels"),
        ('{"id": "c", "audio_path": "c.wav", "duration": 1, "sample_rate": 8000, "labels": [1], '
         '"known": [true]}', "1 labels, but line 1 has 2"),
        ('{"id": "c", "audio_path": "c.wav", "duration": 1, "sample_rate": 8000, "labels": [1, 0], '
         '"known": [true]}', "known flags"),
        ('{"id": "a", "audio_path": "c.wav", "duration": 1, "sample_rate": 8000, "labels": [1, 0]}',
         "already on line 1"),
        ("not json", "bad manifest line"),
        ('{"id": "c", "audio_path": "c.wav", "duration": 1, "sample_rate": 8000, "labels": [1, 0], "x": 1}',
         "unknown key"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    path = tmp_path / "valid.jsonl"
    good = '{"id": "a", "audio_path": "a.wav", "duration": 1, "sample_rate": 8000, "labels": [0, 1]}'
    path.write_text(good + "\n\n" + bad + "\n")
    with pytest.raises(ManifestError, match=rf"valid\.jsonl:3: .*{message}"):
        read_manifest(path)


def test_load_split_lists_available_splits(tmp_path: Path) -> None:
    write_manifest(tmp_path / "train.jsonl", _clips())
    write_manifest(tmp_path / "test.jsonl", _clips())
    with pytest.raises(ManifestError, match=r"no split 'valid'.*available: test, train"):
        load_split(tmp_path, "valid")
    with pytest.raises(ManifestError, match="available: none"):
        load_split(tmp_path / "absent", "train")


def test_load_split_checks_class_count(tmp_path: Path) -> None:
    write_manifest(tmp_path / "train.jsonl", _clips())
    write_classes(tmp_path / "classes.json", ["a", "b"])
    with pytest.raises(ManifestError, match="3 labels per clip but .*classes.json lists 2"):
        load_split(tmp_path, "train")


def test_writer_refuses_duplicates_and_mixed_widths(tmp_path: Path) -> None:
    clip = _clips()[0]
    with pytest.raises(ManifestError, match="duplicate clip id 'a'"):
        write_manifest(tmp_path / "t.jsonl", [clip, clip])
    with pytest.raises(ManifestError, match="2 labels, others 3"):
        write_manifest(tmp_path / "t.jsonl", [clip, Clip("z", "z.wav", 1.0, 8000, (0, 1), (True, True))])
    with pytest.raises(ManifestError, match="duplicate class names"):
        write_classes(tmp_path / "classes.json", ["a", "a"])
    assert not (tmp_path / "t.jsonl").exists()


def test_classes_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not found"):
        read_classes(tmp_path / "classes.json")
    (tmp_path / "classes.json").write_text('{"a": 0}')
    with pytest.raises(ManifestError, match="JSON list of unique class names"):
        read_classes(tmp_path / "classes.json")
