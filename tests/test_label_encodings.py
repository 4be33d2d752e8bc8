"""Label files in every encoding a spreadsheet writes: BOMs (UTF-8, UTF-16 LE/BE, UTF-32 LE/BE), UTF-16
without a BOM, and tab, comma or semicolon separators; what is not text is one line naming the byte."""
from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pytest

from pipeline.audio import write_audio
from pipeline.datasets import BUILDERS
from pipeline.datasets.base import read_text
from pipeline.errors import ManifestError
from pipeline.manifests import load_split

ROWS = [["file", "split", "piano", "violin"], ["café.wav", "train", "1", "0"], ["b.wav", "valid", "0", "1"],
        ["c.wav", "test", "1", ""]]

ENCODINGS = {  # name -> (BOM, codec)
    "utf-8-sig": (codecs.BOM_UTF8, "utf-8"),
    "utf-16-le BOM (Excel Unicode Text)": (codecs.BOM_UTF16_LE, "utf-16-le"),
    "utf-16-be BOM": (codecs.BOM_UTF16_BE, "utf-16-be"),
    "utf-32-le BOM": (codecs.BOM_UTF32_LE, "utf-32-le"),
    "utf-32-be BOM": (codecs.BOM_UTF32_BE, "utf-32-be"),
    "utf-16-le no BOM": (b"", "utf-16-le"),
    "utf-16-be no BOM": (b"", "utf-16-be"),
}


def _audio(root: Path) -> None:
    t = np.arange(4000) / 8000
    for name in ("café.wav", "b.wav", "c.wav"):
        write_audio(root / name, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 8000)


def _labels(path: Path, encoding: str, delimiter: str) -> None:
    bom, codec = ENCODINGS[encoding]
    text = "".join(delimiter.join(row) + "\r\n" for row in ROWS)
    path.write_bytes(bom + text.encode(codec))


@pytest.mark.parametrize("delimiter", ["\t", ",", ";"], ids=["tab", "comma", "semicolon"])
@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_a_label_file_in_any_unicode_encoding_and_separator_is_read(
        tmp_path: Path, encoding: str, delimiter: str) -> None:
    root = tmp_path / "audio"
    _audio(root)
    labels = tmp_path / "labels.txt"
    _labels(labels, encoding, delimiter)
    report = BUILDERS.get("folder")(root=root, labels_csv=labels, manifests_dir=tmp_path / "m")
    clips = {c.audio_path: c for s in ("train", "valid", "test") for c in load_split(tmp_path / "m", s)}
    assert sorted(clips) == ["b.wav", "c.wav", "café.wav"]
    assert clips["café.wav"].labels == (1, 0) and clips["c.wav"].known == (True, False)
    no_bom = not ENCODINGS[encoding][0]
    assert any("no byte-order mark" in w for w in report.warnings) == no_bom
    assert not any("Windows-1252" in w for w in report.warnings)


def test_read_text_drops_each_bom(tmp_path: Path) -> None:
    for encoding, (bom, codec) in ENCODINGS.items():
        (tmp_path / "x").write_bytes(bom + "id\tä\r\n".encode(codec))
        text, warning = read_text(tmp_path / "x")
        assert text == "id\tä\r\n", encoding
        assert (warning is None) == bool(bom), encoding


@pytest.mark.parametrize("data, words", [
    (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00[Content_Types].xml", ["byte 5 is a NUL byte", "CSV UTF-8"]),
    (codecs.BOM_UTF16_LE + "file\tsplit\r\n".encode("utf-16-le")[:-1],
     ["does not decode as UTF-16-LE", "save it again as CSV UTF-8"]),
], ids=["xlsx", "cut-utf-16"])
def test_what_is_not_text_is_one_line_naming_the_byte(tmp_path: Path, data: bytes, words: list[str]) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(data)
    with pytest.raises(ManifestError) as info:
        read_text(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    for word in words:
        assert word in message, message
