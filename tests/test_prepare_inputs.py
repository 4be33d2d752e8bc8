"""The folder builder on what users really hand over: id columns, odd encodings, Unicode forms, tags + columns."""
from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import write_audio
from pipeline.datasets import BUILDERS
from pipeline.datasets.base import read_text
from pipeline.errors import ManifestError
from pipeline.manifests import load_split


def _tone(path: Path, seconds: float = 0.3, sr: int = 8000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    write_audio(path, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)


def _clips(folder: Path) -> dict:
    return {c.id: c for s in ("train", "valid", "test") for c in load_split(folder, s)}


def _build(root: Path, csv_path: Path, out: Path, **options):  # noqa: ANN202
    return BUILDERS.get("folder")(root=root, labels_csv=csv_path, manifests_dir=out, **options)


@pytest.mark.parametrize("id_column", ["id", "sample_key", "clip_id"])
def test_id_column_finds_any_readable_extension_recursively(tmp_path: Path, id_column: str) -> None:
    root = tmp_path / "audio"
    _tone(root / "h00000.flac")
    _tone(root / "deep" / "er" / "h00001.wav")
    _tone(root / "h00002.ogg")
    (tmp_path / "labels.csv").write_text(
        f"{id_column},split,piano\nh00000,train,1\nh00001,valid,0\nh00002,test,1\nh00003,test,1\n")
    report = _build(root, tmp_path / "labels.csv", tmp_path / "m")
    clips = _clips(tmp_path / "m")
    assert {k: c.audio_path for k, c in clips.items()} == {
        "h00000": "h00000.flac", "h00001": "deep/er/h00001.wav", "h00002": "h00002.ogg"}
    assert [m["id"] for m in report.missing] == ["h00003"]
    assert report.options["id_column"] == id_column


def test_id_shared_by_two_files_takes_the_first_suffix_with_a_warning(tmp_path: Path) -> None:
    _tone(tmp_path / "a" / "x.mp3")
    _tone(tmp_path / "a" / "x.flac")
    (tmp_path / "l.csv").write_text("id,split,piano\nx,train,1\n")
    report = _build(tmp_path / "a", tmp_path / "l.csv", tmp_path / "m")
    assert _clips(tmp_path / "m")["x"].audio_path == "x.flac"
    assert any("match several files" in w and "x.mp3" in w for w in report.warnings)


def test_absolute_and_relative_paths(tmp_path: Path) -> None:
    root = tmp_path / "audio"
    _tone(root / "in.wav")
    _tone(tmp_path / "elsewhere" / "out.wav")
    (tmp_path / "l.csv").write_text(
        f"file,split,piano\n{root / 'in.wav'},train,1\n{tmp_path / 'elsewhere' / 'out.wav'},valid,0\n"
        "in.wav,test,1\n".replace("in.wav,test", "./in.wav,test"))
    with pytest.raises(ManifestError, match="repeats line 2"):  # the same file twice, once absolute
        _build(root, tmp_path / "l.csv", tmp_path / "m")
    (tmp_path / "l.csv").write_text(
        f"file,split,piano\n{root / 'in.wav'},train,1\n{tmp_path / 'elsewhere' / 'out.wav'},valid,0\n")
    report = _build(root, tmp_path / "l.csv", tmp_path / "m")
    clips = _clips(tmp_path / "m")
    assert report.splits == {"train": 1, "valid": 1, "test": 0}
    assert clips["in"].audio_path == "in.wav"  # under the root: stored relative
    out = next(c for c in clips.values() if c.audio_path.endswith("out.wav"))
    assert out.resolve(root).is_file()  # outside the root: kept absolute
    assert any("split 'test' is empty" in w for w in report.warnings)


def test_bom_crlf_and_semicolons(tmp_path: Path) -> None:
    _tone(tmp_path / "a" / "x.wav")
    _tone(tmp_path / "a" / "y.wav")
    (tmp_path / "l.csv").write_bytes(b"\xef\xbb\xbffile;split;tags\r\nx.wav;train;piano|violin\r\ny.wav;test;voice\r\n")
    report = _build(tmp_path / "a", tmp_path / "l.csv", tmp_path / "m")
    assert report.classes == ["piano", "violin", "voice"]
    assert _clips(tmp_path / "m")["x"].labels == (1, 1, 0)


@pytest.mark.parametrize("csv_form, disk_form", [("NFC", "NFD"), ("NFD", "NFC")])
def test_unicode_forms_match(tmp_path: Path, csv_form: str, disk_form: str) -> None:
    name = "Beyoncé – Déjà vu"
    _tone(tmp_path / "a" / f"{unicodedata.normalize(disk_form, name)}.wav")
    _tone(tmp_path / "a" / f"{unicodedata.normalize(disk_form, 'Ørsted')}.flac")
    text = f"file,split,piano\n{name}.wav,train,1\n"
    (tmp_path / "l.csv").write_text(unicodedata.normalize(csv_form, text), encoding="utf-8")
    (tmp_path / "ids.csv").write_text(unicodedata.normalize(csv_form, "id,split,piano\nØrsted,train,1\n"))
    report = _build(tmp_path / "a", tmp_path / "l.csv", tmp_path / "m")
    assert report.splits["train"] == 1 and not report.missing
    assert not any("not in l.csv" in w and "Beyonc" in w for w in report.warnings)
    clip = next(iter(_clips(tmp_path / "m").values()))
    assert clip.resolve(tmp_path / "a").is_file()  # the path on disk, whatever its form
    report = _build(tmp_path / "a", tmp_path / "ids.csv", tmp_path / "m2")
    assert report.splits["train"] == 1 and not report.missing


def test_cp1252_csv_is_read_with_a_warning_naming_the_byte(tmp_path: Path) -> None:
    _tone(tmp_path / "a" / "café.wav")
    (tmp_path / "l.csv").write_bytes("file,split,piano\ncafé.wav,train,1\n".encode("cp1252"))
    report = _build(tmp_path / "a", tmp_path / "l.csv", tmp_path / "m")
    assert report.splits["train"] == 1
    offset = "file,split,piano\ncaf".__len__()
    assert any(f"not UTF-8 (byte {offset}: 0xe9)" in w and "Windows-1252" in w for w in report.warnings)


def test_text_that_is_no_known_encoding_is_one_error_with_the_offset(tmp_path: Path) -> None:
    (tmp_path / "l.csv").write_bytes(b"file,piano\nx\x81\x9d.wav,1\n")
    with pytest.raises(ManifestError, match=r"l\.csv: byte 12 \(0x81\) is neither UTF-8 nor Windows-1252"):
        _build(tmp_path, tmp_path / "l.csv", tmp_path / "m")
    (tmp_path / "ok.csv").write_bytes(b"\xef\xbb\xbfid\n")
    assert read_text(tmp_path / "ok.csv") == ("id\n", None)


def test_openmic_and_mtt_text_readers_share_the_fallback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.datasets.magnatagatune import read_annotations
    from pipeline.datasets.openmic import read_partition

    (tmp_path / "p.csv").write_bytes("sample_key\n000_caf\xe9\n".encode("latin-1"))
    assert read_partition(tmp_path / "p.csv") == ["000_café"]
    assert "not UTF-8 (byte 18: 0xe9)" in caplog.text
    (tmp_path / "a.csv").write_bytes(b"clip_id\tguitar\tmp3_path\n1\t1\tf/x\xe9.mp3\n")
    ids, paths, tags, values = read_annotations(tmp_path / "a.csv")
    assert paths == ["f/xé.mp3"] and tags == ["guitar"]
    (tmp_path / "bad.csv").write_bytes(b"clip_id\tguitar\tmp3_path\n1\t1\tf/x\x81.mp3\n")
    with pytest.raises(ManifestError, match=r"bad\.csv: byte \d+ \(0x81\)"):
        read_annotations(tmp_path / "bad.csv")


def test_tags_next_to_class_columns_class_columns_win_with_a_warning(tmp_path: Path) -> None:
    for name in ("x", "y", "z"):
        _tone(tmp_path / "a" / f"{name}.wav")
    (tmp_path / "l.csv").write_text(
        "file,split,piano,violin,tags\n"
        "x.wav,train,1,0,piano\n"         # agrees
        "y.wav,valid,1,,piano;violin\n"   # violin unknown in the columns: no disagreement
        "z.wav,test,0,1,piano\n")         # disagrees
    report = _build(tmp_path / "a", tmp_path / "l.csv", tmp_path / "m")
    assert report.classes == ["piano", "violin"]
    assert _clips(tmp_path / "m")["z"].labels == (0, 1)
    warning = next(w for w in report.warnings if "tags" in w)
    assert "1 row(s)" in warning and "line 4" in warning and "class columns win" in warning
