"""A tiny real dataset for stage-one tests: rendered clips, manifests and a params file."""
from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.audio import write_audio
from pipeline.datasets.demo import OPENMIC_CLASSES, render_instrument
from pipeline.manifests import Clip, write_classes, write_manifest

CLASSES = ("drums", "guitar", "violin", "piano")


def make_dataset(root: Path, n_clips: int = 8, *, seconds: float = 3.5, corrupt: int = 0, **extract: object) -> Path:
    """Render ``n_clips`` one-instrument clips at 16 kHz under ``root`` and return a params file.

    The first ``corrupt`` clips are replaced by files that are not audio at all.
    Extraction runs in-process (``workers: 0``) unless ``extract`` overrides it.
    """
    audio_root = root / "audio"
    audio_root.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n_clips):
        name = CLASSES[i % len(CLASSES)]
        path = audio_root / f"clip{i:03d}.flac"
        if i < corrupt:
            path.write_bytes(b"fLaC this is not a flac stream" * 10)
        else:
            write_audio(path, render_instrument(name, seconds=seconds, sample_rate=16000, seed=i), 16000)
        labels = tuple(int(c == name) for c in OPENMIC_CLASSES)
        clips.append(Clip(f"clip{i:03d}", path.name, seconds, 16000, labels, (True,) * len(labels)))
    manifests = root / "manifests"
    write_manifest(manifests / "train.jsonl", clips)
    write_classes(manifests / "classes.json", OPENMIC_CLASSES)
    params = {
        "data": {"audio_root": str(audio_root), "manifests": str(manifests)},
        "extract": {"store_root": str(root / "stores"), "workers": 0, "splits": ["train"], "part_tracks": 2,
                    "batch_seconds": 12.0, **extract},
        "teachers": {"musicnn": {"model": "MTT_musicnn", "layer": "penultimate", "hop_seconds": 1.0}},
    }
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path
