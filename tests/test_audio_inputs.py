"""Input classes users hand over: float audio beyond +-1, lying MP3 lengths, degenerate audio.

Each class has one policy in ``pipeline.audio`` that every reader shares (teacher, int16
cache, training crops, predict), and a warning per file in the extract report and in predict.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from pipeline import audio
from pipeline.manifests import Clip, write_classes, write_manifest

SR = 16000


def _music(seconds: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def _blocks(path: Path, sr: int = SR, block: float = 0.25) -> np.ndarray:
    return _blocks_and_notes(path, sr, block)[0]


def _blocks_and_notes(path: Path, sr: int = SR, block: float = 0.25) -> tuple[np.ndarray, tuple[str, ...]]:
    blocks = audio.AudioBlocks(path, sample_rate=sr, block_seconds=block)
    return np.concatenate([b for _, b in blocks]), blocks.notes


# --- 3: float audio beyond +-1 ---------------------------------------------------------------------

@pytest.mark.parametrize("suffix, subtype", [(".wav", "FLOAT"), (".wav", "DOUBLE"), (".aiff", "FLOAT")])
def test_float_audio_beyond_one_is_scaled_by_its_peak_everywhere(
        tmp_path: Path, suffix: str, subtype: str) -> None:
    signal = 4.0 * _music(1.0) / np.abs(_music(1.0)).max()  # peak exactly 4.0
    path = tmp_path / f"loud{suffix}"
    sf.write(path, signal, SR, subtype=subtype)
    whole = audio.read_audio(path)
    np.testing.assert_allclose(whole, signal / 4.0, atol=1e-6)  # scaled, not clipped: no sample lost
    notes = audio.decode_audio(path).notes
    assert "peak at 4.00" in " ".join(notes) and "-12.0 dB" in notes[0]
    np.testing.assert_allclose(_blocks(path), whole, atol=1e-6)  # the teacher's block reader: same signal
    window = audio.read_audio(path, start=0.5, duration=0.25)  # a training crop read from the file
    np.testing.assert_allclose(window, whole[8000:12000], atol=1e-6)


def test_audio_within_range_is_untouched_and_lossy_overs_are_clipped(tmp_path: Path) -> None:
    sf.write(tmp_path / "ok.wav", 0.5 * _music(0.6), SR, subtype="FLOAT")
    np.testing.assert_allclose(audio.read_audio(tmp_path / "ok.wav"), 0.5 * _music(0.6), atol=1e-7)
    assert audio.decode_audio(tmp_path / "ok.wav").notes == ()
    sf.write(tmp_path / "hot.ogg", np.clip(1.6 * _music(1.0), -1, 1), SR)  # Vorbis overshoots +-1
    assert np.abs(audio.read_audio(tmp_path / "hot.ogg")).max() <= 1.0
    assert np.abs(_blocks(tmp_path / "hot.ogg")).max() <= 1.0


# --- 4: a VBR MP3 whose header lies -------------------------------------------------------------

def _vbr_mp3_without_xing(path: Path, seconds: float = 12.0, sr: int = 44100) -> None:
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(0)
    loud = (t % 4) < 2  # noise then near-silence: very different frame sizes
    signal = np.where(loud, 0.3 * rng.standard_normal(len(t)), 0.001 * np.sin(2 * np.pi * 440 * t))
    sf.write(path, signal.astype(np.float32), sr, format="MP3", bitrate_mode="VARIABLE", compression_level=0.9)
    data = path.read_bytes()
    assert data.find(b"Xing") < 64
    second = data.index(b"\xff\xfb", 4)  # the Xing/Info frame is the first frame: drop it
    path.write_bytes(data[second:])


def test_vbr_mp3_without_xing_header_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "vbr.mp3"
    _vbr_mp3_without_xing(path)
    info = audio.audio_info(path)
    real = audio.mpeg_stream_seconds(path)
    assert real == pytest.approx(12.0, abs=0.1) and info.duration < 9.0  # libsndfile believes the first frame
    note = audio.length_note(info)
    assert f"holds {real:.2f} s" in note and "re-encode" in note
    decoded, notes = _blocks_and_notes(path, sr=16000, block=1.0)
    assert len(decoded) == pytest.approx(info.duration * 16000, abs=2)  # consistent with the manifest
    assert any("MPEG stream holds" in n for n in notes)


def test_mp3_with_a_true_header_gives_no_note(tmp_path: Path) -> None:
    for mode in ("CONSTANT", "VARIABLE"):
        sf.write(tmp_path / f"{mode}.mp3", _music(3.0, 44100), 44100, format="MP3", bitrate_mode=mode)
        info = audio.audio_info(tmp_path / f"{mode}.mp3")
        assert audio.mpeg_stream_seconds(info.path) == pytest.approx(3.0, abs=0.1)
        assert audio.length_note(info) == ""


def test_prepare_reports_the_lying_mp3(tmp_path: Path) -> None:
    from pipeline.datasets import BUILDERS

    _vbr_mp3_without_xing(tmp_path / "a" / "x.mp3") if (tmp_path / "a").mkdir() is None else None
    (tmp_path / "l.csv").write_text("id,split,piano\nx,train,1\n")
    report = BUILDERS.get("folder")(root=tmp_path / "a", labels_csv=tmp_path / "l.csv", manifests_dir=tmp_path / "m")
    assert any("longer than their header says" in w and "x.mp3" in w for w in report.warnings)


# --- 4b: a truncated CBR MP3 (its Xing/Info header still gives the whole length) --------------------

def _truncated_cbr_mp3(path: Path, seconds: float = 20.0, sr: int = 44100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.5 * _music(seconds, sr), sr, format="MP3", bitrate_mode="CONSTANT")
    data = path.read_bytes()
    assert data.find(b"Xing") < 64 or data.find(b"Info") < 64  # the header that keeps the full length
    path.write_bytes(data[: len(data) // 2])  # a download or copy cut halfway


def test_a_truncated_cbr_mp3_is_described_as_truncated_and_used_for_what_decodes(tmp_path: Path) -> None:
    path = tmp_path / "cut.mp3"
    _truncated_cbr_mp3(path)
    assert sf.info(str(path)).duration == pytest.approx(20.0, abs=0.1)  # what libsndfile's header read says
    info = audio.audio_info(path)
    assert info.truncated and info.header_frames / info.sample_rate == pytest.approx(20.0, abs=0.1)
    assert 9.0 < info.duration < audio.mpeg_stream_seconds(path) < 10.5  # the samples that decode
    note = audio.length_note(info)
    assert note.startswith(f"the file is truncated: {info.duration:.2f} s of the 20.00 s its header gives")
    assert "re-encode it" not in note and "MPEG stream holds" not in note
    whole = audio.read_audio(path)  # no "got N of M frames" any more
    assert len(whole) == info.frames
    blocks, block_notes = _blocks_and_notes(path, sr=16000, block=1.0)
    assert len(blocks) == pytest.approx(info.duration * 16000, abs=2)
    assert audio.decode_audio(path).notes == (note,) and block_notes == (note,)


def test_prepare_warns_about_the_truncated_mp3_and_extraction_uses_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import cli
    from pipeline.datasets import BUILDERS
    from pipeline.manifests import load_split
    from pipeline.stores import open_store

    _truncated_cbr_mp3(tmp_path / "a" / "cut.mp3")
    sf.write(tmp_path / "a" / "fine.flac", _music(3.0), SR)
    (tmp_path / "l.csv").write_text("id,split,piano\ncut,train,1\nfine,train,0\n")
    report = BUILDERS.get("folder")(root=tmp_path / "a", labels_csv=tmp_path / "l.csv", manifests_dir=tmp_path / "m")
    warning = next(w for w in report.warnings if "cut.mp3" in w)
    assert warning.startswith("1 file(s) are truncated") and "of the 20.00 s its header gives" in warning
    clip = next(c for c in load_split(tmp_path / "m", "train") if c.id == "cut")
    assert 9.0 < clip.duration < 10.5  # the manifest holds what decodes, not the header's 20 s
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "data": {"audio_root": str(tmp_path / "a"), "manifests": str(tmp_path / "m")},
        "extract": {"store_root": str(tmp_path / "stores"), "workers": 0, "splits": ["train"]},
        "teachers": {"hear": {"window_seconds": 2.0, "context_seconds": 0.1}},
    }))
    result = CliRunner().invoke(cli, ["--params", str(params), "extract", "--teacher", "hear:tests.toy_hear",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    store = open_store(tmp_path / "stores" / "hear-tests.toy_hear")
    assert sorted(store.track_ids()) == ["cut", "fine"] and store.verify().ok
    extracted = json.loads((tmp_path / "stores" / "hear-tests.toy_hear-extract-report.json").read_text())
    assert extracted["failed"] == [] and any("truncated" in w["warning"] for w in extracted["warnings"])


# --- 8: degenerate audio -------------------------------------------------------------------------

def _degenerate(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "silence": (folder / "silence.flac", np.zeros(SR, np.float32)),
        "two": (folder / "two.wav", np.array([0.1, -0.1], np.float32)),
        "cancel": (folder / "cancel.ogg", np.stack([_music(2.0), -_music(2.0)], axis=1)),
        "cancel_wav": (folder / "cancel.wav", np.stack([_music(2.0), -_music(2.0)], axis=1)),
        "fine": (folder / "fine.flac", np.stack([_music(2.0), 0.5 * _music(2.0, seed=1)], axis=1)),
    }
    for path, signal in files.values():
        sf.write(path, signal, SR)
    return {name: path for name, (path, _) in files.items()}


@pytest.mark.parametrize("reader", ["read_audio", "iter_blocks"])
def test_degenerate_audio_gets_a_note_from_every_reader(tmp_path: Path, reader: str) -> None:
    paths = _degenerate(tmp_path)
    expect = {"silence": "digital silence", "two": "only 2 sample(s)", "cancel": "channels cancel",
              "cancel_wav": "channels cancel", "fine": None}
    for name, path in paths.items():
        found = audio.decode_audio(path).notes if reader == "read_audio" else _blocks_and_notes(path)[1]
        notes = " ".join(found)
        assert (expect[name] in notes) if expect[name] else notes == "", (name, notes)


def _manifest_for(paths: dict[str, Path], root: Path) -> Path:
    from pipeline.datasets.demo import OPENMIC_CLASSES

    clips = []
    for i, (name, path) in enumerate(paths.items()):
        info = audio.audio_info(path)
        labels = tuple(int(j == i) for j in range(len(OPENMIC_CLASSES)))
        clips.append(Clip(name, path.name, info.duration, info.sample_rate, labels, (True,) * len(labels)))
    write_manifest(root / "manifests" / "train.jsonl", clips)
    write_classes(root / "manifests" / "classes.json", OPENMIC_CLASSES)
    params = {"data": {"audio_root": str(paths["fine"].parent), "manifests": str(root / "manifests")},
              "extract": {"store_root": str(root / "stores"), "workers": 0, "splits": ["train"]}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root / "params.yaml"


@pytest.mark.slow
def test_extract_reports_every_odd_file_and_caches_the_same_signal(tmp_path: Path) -> None:
    from pipeline.stores import open_store
    from tests.stage2_fixtures import invoke

    paths = _degenerate(tmp_path / "audio")
    loud = tmp_path / "audio" / "loud.wav"
    sf.write(loud, 4.0 * _music(2.0) / np.abs(_music(2.0)).max(), SR, subtype="FLOAT")
    paths["loud"] = loud
    params = _manifest_for(paths, tmp_path)
    result = invoke(params, "extract", "--teacher", "musicnn", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "stores" / "musicnn-extract-report.json").read_text())
    assert report["done"] == 6 and not report["failed"]
    noted = {w["track"]: w["warning"] for w in report["warnings"]}
    assert set(noted) == {"silence", "two", "cancel", "cancel_wav", "loud"}
    assert "scaled by 0.25" in noted["loud"] and "warning: loud" in result.output
    cache = open_store(tmp_path / "stores" / "musicnn" / "audio")
    cached = cache.read("loud")[:, 0].astype(np.float32) / 32768.0
    np.testing.assert_allclose(cached, audio.read_audio(loud, sample_rate=SR), atol=2 / 32768)
    assert np.mean(np.abs(cached) >= 32767 / 32768) < 0.001  # not 37 % clipped


def test_predict_warns_per_degenerate_file(tmp_path: Path, tiny_pipeline) -> None:  # noqa: ANN001,F811
    from tests.stage2_fixtures import invoke

    paths = _degenerate(tmp_path)
    result = invoke(None, "predict", str(tiny_pipeline.run_dir("baseline")), *map(str, paths.values()))
    assert result.exit_code == 0, result.output
    for name in ("silence.flac", "two.wav", "cancel.ogg", "cancel.wav"):
        assert f"warning: {paths['fine'].parent / name}" in result.stderr
    assert "fine.flac: " in result.stdout and "fine.flac" not in result.stderr


from tests.stage2_fixtures import tiny_pipeline  # noqa: E402,F401
