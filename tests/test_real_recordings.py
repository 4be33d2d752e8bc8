"""Recordings as users have them: stereo, 44.1/48 kHz, OGG Vorbis/Opus, MP3, FLAC, WAV, of different lengths.

Short versions (20-40 s) of what long music files are, through prepare, extract, distill and
predict in one dataset. The same run by hand on Debian's planetblupi-music-ogg (10-29 minute
tracks) is in the issue-9 note.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from pipeline.stores import open_store
from tests.stage2_fixtures import ROOT, invoke

pytestmark = pytest.mark.slow

#: name -> (format, subtype, rate, seconds, split, tags)
RECORDINGS = {
    "song_a.flac": ("FLAC", "PCM_24", 44100, 40.0, "train", "piano"),
    "song_b.wav": ("WAV", "PCM_24", 48000, 25.0, "valid", "violin;piano"),
    "song_c.ogg": ("OGG", "VORBIS", 44100, 30.0, "train", "violin"),
    "song_d.opus": ("OGG", "OPUS", 48000, 20.0, "test", "piano"),
    "song_e.mp3": ("MP3", "MPEG_LAYER_III", 44100, 35.0, "train", "violin;piano"),
}


def _stereo_music(rate: int, seconds: float, tags: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    left = 0.02 * rng.standard_normal(len(t))
    right = 0.02 * rng.standard_normal(len(t))
    for tag, base in (("piano", 261.6), ("violin", 659.3)):
        if tag in tags:
            notes = base * 2 ** (rng.integers(0, 12, size=int(seconds) + 1) / 12)
            tone = 0.3 * np.sin(2 * np.pi * notes[t.astype(int)] * t) * np.exp(-3 * (t % 1.0))
            left += tone
            right += 0.6 * tone
    return np.stack([left, right], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("recordings")
    audio = root / "audio"
    audio.mkdir()
    lines = ["file,split,tags"]
    for seed, (name, (fmt, subtype, rate, seconds, split, tags)) in enumerate(RECORDINGS.items()):
        sf.write(audio / name, _stereo_music(rate, seconds, tags, seed), rate, format=fmt, subtype=subtype)
        lines.append(f"{name},{split},{tags}")
    (audio / "labels.csv").write_text("\n".join(lines) + "\n")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(dataset="folder", audio_root=str(audio), labels=str(audio / "labels.csv"),
                          manifests=str(root / "manifests"), render=[])
    params["extract"].update(workers=0, store_root=str(root / "stores"))
    params["distill"].update(epochs=1, batch_size=2, runs_root=str(root / "runs"))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def test_long_stereo_recordings_go_through_every_stage(dataset: Path) -> None:
    params = dataset / "params.yaml"
    result = invoke(params, "prepare")
    assert result.exit_code == 0 and "wrote 5 clips (train 3, valid 1, test 1)" in result.output, result.output
    clips = {}
    for split in ("train", "valid", "test"):
        for line in (dataset / "manifests" / f"{split}.jsonl").read_text().splitlines():
            clip = json.loads(line)
            clips[clip["audio_path"]] = clip
    for name, (_, _, rate, seconds, _, _) in RECORDINGS.items():
        assert clips[name]["sample_rate"] == rate
        assert clips[name]["duration"] == pytest.approx(seconds, abs=0.06), name

    result = invoke(params, "extract", "--teacher", "musicnn", "--no-progress")
    assert result.exit_code == 0, result.output
    report = json.loads((dataset / "stores" / "musicnn-extract-report.json").read_text())
    assert report["done"] == 5 and not report["failed"] and not report["warnings"]
    store, cache = open_store(dataset / "stores" / "musicnn"), open_store(dataset / "stores" / "musicnn" / "audio")
    for name, (_, _, _, seconds, _, _) in RECORDINGS.items():
        clip_id = name.rsplit(".", 1)[0]
        assert cache.entry(clip_id).n_frames == pytest.approx(seconds * 16000, abs=0.06 * 16000), name
        assert abs(store.entry(clip_id).n_frames - seconds) <= 3, name  # one musicnn frame per second
        assert np.abs(cache.read(clip_id)).max() > 1000  # real signal, not silence, in the cache

    for variant in ("baseline", "east-final"):
        result = invoke(params, "distill", "--variant", variant, "--run-dir", str(dataset / "runs" / variant),
                        "--no-progress")
        assert result.exit_code == 0, result.output
    result = invoke(params, "predict", str(dataset / "runs" / "east-final"),
                    *(str(dataset / "audio" / name) for name in RECORDINGS), "--json")
    assert result.exit_code == 0 and not result.stderr, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 5 and all(set(line["probabilities"]) == {"piano", "violin"} for line in lines)
