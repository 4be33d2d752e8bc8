"""Dataset builders on tiny fake trees in the official layouts: folder, OpenMIC-2018, MagnaTagATune."""
from __future__ import annotations

import csv
import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import write_audio
from pipeline.datasets import BUILDERS
from pipeline.datasets.openmic import openmic_labels, validation_split
from pipeline.errors import ConfigError, ManifestError, UnknownNameError
from pipeline.manifests import label_arrays, load_split, read_classes


def _tone(path: Path, seconds: float = 0.3, sr: int = 8000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    write_audio(path, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)


def test_registry_lists_the_four_builders() -> None:
    assert {"demo", "folder", "openmic", "magnatagatune"} <= set(BUILDERS.names())
    with pytest.raises(UnknownNameError, match="unknown dataset builder 'fma'"):
        BUILDERS.get("fma")


# --- folder -----------------------------------------------------------------------------------

def test_folder_tags_layout_random_split_and_problem_files(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    rows = [("a.wav", "piano;violin"), ("b.flac", "drums|bass"), ("sub/c.wav", "piano,voice"), ("d.wav", ""),
            ("e.wav", "violin"), ("f.wav", "bass"), ("g.wav", "piano"), ("h.wav", "voice"),
            ("gone.wav", "piano"), ("broken.wav", "violin")]
    for name, _ in rows[:-2]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        _tone(root / name)
    (root / "broken.wav").write_bytes(b"RIFF....garbage")
    _tone(root / "unlisted.ogg")
    with open(tmp_path / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "tags"])
        writer.writerows(rows)
    build = BUILDERS.get("folder")
    report = build(root=root, labels_csv=tmp_path / "labels.csv", manifests_dir=tmp_path / "m",
                   fractions=(0.5, 0.25, 0.25), seed=1)
    assert report.classes == ["bass", "drums", "piano", "violin", "voice"]
    assert sum(report.splits.values()) == 8
    left_out = [m["split"] for m in report.missing + report.unreadable]
    assert [report.splits[s] + left_out.count(s) for s in ("train", "valid", "test")] == [6, 2, 2]
    assert [m["id"] for m in report.missing] == ["gone"]
    assert [u["id"] for u in report.unreadable] == ["broken"]
    assert "broken.wav" in report.unreadable[0]["reason"]
    assert any("unlisted.ogg" in w for w in report.warnings)
    clips = {c.id: c for s in ("train", "valid", "test") for c in load_split(tmp_path / "m", s)}
    assert clips["sub/c"].labels == (0, 0, 1, 0, 1) and all(clips["sub/c"].known)
    assert clips["b"].labels == (1, 1, 0, 0, 0) and clips["b"].audio_path == "b.flac"
    assert clips["d"].labels == (0,) * 5
    assert clips["a"].duration == pytest.approx(0.3) and clips["a"].sample_rate == 8000
    saved = json.loads((tmp_path / "m" / "report.json").read_text())
    assert saved["missing"][0]["path"] == "gone.wav"
    build(root=root, labels_csv=tmp_path / "labels.csv", manifests_dir=tmp_path / "m2",
          fractions=(0.5, 0.25, 0.25), seed=1)
    assert (tmp_path / "m" / "valid.jsonl").read_text() == (tmp_path / "m2" / "valid.jsonl").read_text()


def test_folder_class_columns_with_unknowns_and_split_column(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    root.mkdir()
    for name in ("x.wav", "y.wav", "z.wav"):
        _tone(root / name)
    (tmp_path / "labels.csv").write_text(
        "path,split,piano,violin\nx.wav,train,1,0\ny.wav,validation,,1\nz.wav,test,0,\n")
    report = BUILDERS.get("folder")(root=root, labels_csv=tmp_path / "labels.csv",
                                    manifests_dir=tmp_path / "m")
    assert report.splits == {"train": 1, "valid": 1, "test": 1}
    labels, known = label_arrays(load_split(tmp_path / "m", "valid"))
    np.testing.assert_array_equal(labels, [[0, 1]])
    np.testing.assert_array_equal(known, [[False, True]])
    assert report.label_stats["test"] == {"positives": [0, 0], "negatives": [1, 0], "unknown": [0, 1]}
    assert any("no known positive" in w for w in report.warnings)


@pytest.mark.parametrize("text, message", [
    ("file,piano\nx.wav,2\n", r"labels\.csv:2 column 'piano': label '2'"),
    ("file,split,piano\nx.wav,holdout,1\n", r"labels\.csv:2: split 'holdout'"),
    ("name,piano\nx.wav,1\n", "no audio file column"),
    ("file,piano\nx.wav,1\nx.flac,0\n", "repeats line 2"),
])
def test_folder_csv_errors_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "labels.csv").write_text(text)
    with pytest.raises(ManifestError, match=message):
        BUILDERS.get("folder")(root=tmp_path, labels_csv=tmp_path / "labels.csv",
                               manifests_dir=tmp_path / "m")


# --- OpenMIC-2018 ---------------------------------------------------------------------------------

def test_openmic_validation_draw_matches_the_paper() -> None:
    keys = [f"{i:06d}_0" for i in range(14915)]
    train, valid = validation_split(keys)
    assert (len(train), len(valid)) == (12692, 2223)  # the paper's shipped valid split has 2,223 clips
    random.seed(2022)
    assert valid == [k for k in keys if random.uniform(0, 1) < 0.15]


def test_openmic_label_rules() -> None:
    y_true = np.array([[1.0, 0.0, 0.5, 0.5, 0.8, 0.2]])
    y_mask = np.array([[True, True, False, True, False, True]])
    labels, known = openmic_labels(y_true, y_mask, "mask")
    np.testing.assert_array_equal(labels, [[1, 0, 0, 0, 1, 0]])
    np.testing.assert_array_equal(known, [[1, 1, 0, 0, 0, 1]])
    _, paper_known = openmic_labels(y_true, y_mask, "paper")
    np.testing.assert_array_equal(paper_known, [[1, 1, 0, 0, 1, 1]])


def _openmic_tree(root: Path) -> list[str]:
    classes = ["accordion", "banjo", "bass", "cello"]
    keys = [f"{i:06d}_{3840 * i}" for i in range(1, 13)]
    rng = np.random.default_rng(0)
    y_true = rng.choice([0.0, 0.2, 0.9, 1.0], size=(12, 4))
    y_mask = rng.random((12, 4)) < 0.6
    y_true[~y_mask] = 0.5
    np.savez(root / "openmic-2018.npz", Y_true=y_true, Y_mask=y_mask, sample_key=np.array(keys),
             X=np.zeros((12, 10, 128), np.uint8))
    (root / "class-map.json").write_text(json.dumps({c: i for i, c in enumerate(classes)}))
    (root / "partitions").mkdir()
    (root / "partitions" / "split01_train.csv").write_text("\n".join(keys[:8]) + "\n")
    (root / "partitions" / "split01_test.csv").write_text("\n".join(keys[8:11] + ["999999_0"]) + "\n")
    for key in keys:
        path = root / "audio" / key[:3] / f"{key}.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        if key == keys[2]:
            continue  # missing audio
        if key == keys[9]:
            path.write_bytes(b"OggS not really")
            continue
        _tone(path, 0.5, 16000)
    return keys


def test_openmic_builder_official_layout(tmp_path: Path) -> None:
    keys = _openmic_tree(tmp_path)
    report = BUILDERS.get("openmic")(root=tmp_path, manifests_dir=tmp_path / "m", valid_fraction=0.5)
    random.seed(2022)
    expect_valid = [k for k in keys[:8] if random.uniform(0, 1) < 0.5]
    got = {s: [c.id for c in load_split(tmp_path / "m", s)] for s in ("train", "valid", "test")}
    assert got["valid"] == [k for k in expect_valid if k != keys[2]]
    assert got["train"] == [k for k in keys[:8] if k not in expect_valid and k != keys[2]]
    assert got["test"] == [keys[8], keys[10]]
    assert {m["id"] for m in report.missing} == {keys[2], "999999_0"}
    assert [u["id"] for u in report.unreadable] == [keys[9]]
    assert any("neither partition" in w for w in report.warnings)  # keys[11]
    assert read_classes(tmp_path / "m") == ["accordion", "banjo", "bass", "cello"]
    with np.load(tmp_path / "openmic-2018.npz") as data:
        y_true, y_mask = data["Y_true"], data["Y_mask"]
    clip = load_split(tmp_path / "m", "test")[0]
    i = keys.index(clip.id)
    assert clip.known == tuple(bool(v) for v in y_mask[i])
    assert clip.labels == tuple(int(v > 0.5) for v in y_true[i])
    assert clip.audio_path == f"audio/{clip.id[:3]}/{clip.id}.ogg" and clip.sample_rate == 16000


def test_openmic_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="openmic-2018.npz' not found"):
        BUILDERS.get("openmic")(root=tmp_path, manifests_dir=tmp_path / "m")
    _openmic_tree(tmp_path)
    with pytest.raises(ManifestError, match="split01_train.csv' not found.*--split-dir"):
        BUILDERS.get("openmic")(root=tmp_path, manifests_dir=tmp_path / "m", split_dir=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="unknown OpenMIC label rule 'vote'"):
        BUILDERS.get("openmic")(root=tmp_path, manifests_dir=tmp_path / "m", label_rule="vote")


# --- MagnaTagATune --------------------------------------------------------------------------------

def _mtt_tree(root: Path) -> list[tuple[str, str]]:
    tags = ["guitar", "piano", "rock", "slow", "choir"]
    clips = [(str(i), f"{'abc'[i % 3]}/artist-album-{i:02d}-song-0-29.mp3") for i in range(2, 14)]
    rng = np.random.default_rng(1)
    values = rng.random((len(clips), len(tags))) < np.array([0.6, 0.3, 0.3, 0.5, 0.05])
    values[:, 2] = values[:, 1]  # piano and rock tie: column order decides
    with open(root / "annotations_final.csv", "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_ALL)
        writer.writerow(["clip_id", *tags, "mp3_path"])
        for (clip_id, mp3), row in zip(clips, values.astype(int)):
            writer.writerow([clip_id, *row.tolist(), mp3])
    for clip_id, mp3 in clips:
        if clip_id != "5":  # one file missing
            (root / "mp3" / mp3).parent.mkdir(parents=True, exist_ok=True)
            _tone(root / "mp3" / mp3, 0.4, 16000)
    return clips


def test_mtt_top_tags_and_split_list_formats(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    clips = _mtt_tree(tmp_path)
    splits = tmp_path / "lists"
    splits.mkdir()
    (splits / "train.txt").write_text("\n".join(c for c, _ in clips[:6]) + "\n")  # clip ids
    np.save(splits / "valid.npy", np.array([f"{i}\t{mp3}" for i, (_, mp3) in enumerate(clips[6:9])]))
    lee = [mp3.replace(".mp3", ".npy") for _, mp3 in clips[9:]] + ["z/not-in-mtt-0-29.npy"]
    (splits / "test_list_pub.cP").write_bytes(pickle.dumps(lee, protocol=0))
    report = BUILDERS.get("magnatagatune")(root=tmp_path, manifests_dir=tmp_path / "m", split_dir=splits,
                                           n_tags=3)
    with open(tmp_path / "annotations_final.csv") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    counts = {t: sum(int(r[j]) for r in rows[1:]) for j, t in enumerate(rows[0][1:-1], start=1)}
    expected = sorted(counts, key=lambda t: (-counts[t], rows[0].index(t)))[:3]
    assert counts["piano"] == counts["rock"]  # a tie at the cut
    assert report.classes == expected == ["guitar", "slow", "piano"]  # descending count, ties by column order
    got = {s: [c.id for c in load_split(tmp_path / "m", s)] for s in ("train", "valid", "test")}
    assert got["train"] == [c for c, _ in clips[:6] if c != "5"]
    assert got["valid"] == [c for c, _ in clips[6:9]]
    assert got["test"] == [c for c, _ in clips[9:]]
    assert {m["id"] for m in report.missing} == {"5", "z/not-in-mtt-0-29.npy"}
    clip = load_split(tmp_path / "m", "test")[0]
    assert clip.audio_path == f"mp3/{clips[9][1]}" and all(clip.known)
    row = next(r for r in rows[1:] if r[0] == clip.id)
    assert clip.labels == tuple(int(row[rows[0].index(t)]) for t in expected)


def test_mtt_without_split_lists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _mtt_tree(tmp_path)
    with pytest.raises(ManifestError, match="no MagnaTagATune split lists found.*--random-split.*minzwon"):
        BUILDERS.get("magnatagatune")(root=tmp_path, manifests_dir=tmp_path / "m")
    report = BUILDERS.get("magnatagatune")(root=tmp_path, manifests_dir=tmp_path / "m", random_split=True,
                                           n_tags=3)
    assert sum(report.splits.values()) + len(report.missing) <= 12
    assert any("not the standard clean split" in w for w in report.warnings)
