"""A tiny folder dataset in the shape users hand over (used by the DVC end-to-end tests).

``make_folder_dataset(root)`` writes ``root/audio/...`` and ``root/audio/labels.csv``:

* clips named by an ``id`` column (``h00000`` ...), files ``<id>.<ext>`` in nested folders;
* mixed formats, rates, channel counts and lengths: FLAC 44.1 kHz stereo, WAV 16 kHz mono
  (float), OGG Vorbis 48 kHz, MP3 22.05 kHz; 2.5 to 6 s;
* one file whose header reads but whose body does not decode (a FLAC cut in half);
* a class (``harp``) whose only positive is that file, so it is empty after filtering;
* a ``split`` column, tags next to nothing else (``tags`` layout).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

CLASSES = ("bass", "harp", "piano", "violin")
#: (id, relative stem, suffix, rate, channels, seconds, split, tags)
FILES = [
    ("h00000", "a/h00000", ".flac", 44100, 2, 4.0, "train", "piano"),
    ("h00001", "a/h00001", ".wav", 16000, 1, 3.0, "train", "violin"),
    ("h00002", "b/c/h00002", ".ogg", 48000, 1, 5.0, "train", "bass;piano"),
    ("h00003", "b/h00003", ".mp3", 22050, 2, 3.5, "train", "violin"),
    ("h00004", "h00004", ".flac", 16000, 1, 6.0, "train", "bass"),
    ("h00005", "a/h00005", ".wav", 44100, 2, 2.5, "train", "piano;violin"),
    ("h00006", "h00006", ".flac", 44100, 2, 5.0, "train", "harp"),  # truncated below
    ("h00007", "b/h00007", ".ogg", 16000, 1, 4.0, "valid", "piano"),
    ("h00008", "b/h00008", ".flac", 48000, 2, 3.0, "valid", "bass;violin"),
    ("h00009", "a/h00009", ".wav", 22050, 1, 4.5, "test", "violin"),
    ("h00010", "h00010", ".mp3", 44100, 1, 3.0, "test", "bass;piano"),
]
BROKEN = "h00006"
_NOTES = {"bass": 55.0, "harp": 880.0, "piano": 261.6, "violin": 659.3}


def _signal(tags: str, rate: int, channels: int, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    mix = 0.01 * rng.standard_normal(len(t))
    for tag in filter(None, tags.split(";")):
        f = _NOTES[tag] * (1 + 0.02 * rng.standard_normal())
        mix += 0.25 * np.sin(2 * np.pi * f * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    mix = (mix / max(1.0, np.abs(mix).max() / 0.9)).astype(np.float32)
    return mix if channels == 1 else np.stack([mix, 0.8 * mix], axis=1)


def make_folder_dataset(root: Path) -> Path:
    """Write the dataset under ``root/audio``; returns the audio folder (labels.csv inside)."""
    audio = Path(root) / "audio"
    lines = ["id,split,tags"]
    for seed, (clip_id, stem, suffix, rate, channels, seconds, split, tags) in enumerate(FILES):
        path = audio / f"{stem}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        signal = _signal(tags, rate, channels, seconds, seed)
        subtype = {".wav": "FLOAT", ".flac": "PCM_16", ".ogg": "VORBIS", ".mp3": "MPEG_LAYER_III"}[suffix]
        sf.write(path, signal, rate, subtype=subtype)
        if clip_id == BROKEN:  # the header (STREAMINFO) survives, half the frames do not
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        lines.append(f"{clip_id},{split},{tags}")
    (audio / "labels.csv").write_text("\n".join(lines) + "\n")
    return audio
