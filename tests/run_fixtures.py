"""A run folder without training: a seeded random student saved as ``pipeline distill`` saves one.

For tests of what is done with a finished run (export, predict timelines, benchmarks) where the
weights' quality does not matter. Batch-norm statistics are set from a few batches of noise and
the head is scaled, so the probabilities spread over (0, 1) and differ between inputs instead of
sitting at 0.5, which makes comparisons between runtimes meaningful.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def make_run_dir(folder: Path, *, student: str = "mobile_fcn", settings: dict[str, Any] | None = None,
                 classes: tuple[str, ...] = ("bass", "drums", "guitar", "piano", "voice"),
                 sample_rate: int = 8000, clip_seconds: float = 4.0, seed: int = 0) -> Path:
    """Write ``config.json`` and ``best.pt`` of a random ``student`` into ``folder``; returns it.

    Args:
        folder: the run folder to create.
        student: registered student name.
        settings: its ``students.<name>`` settings (default: Mobile-FCN with 32 mel bands).
        classes: class names (the output columns).
        sample_rate: Hz.
        clip_seconds: the "training" length, seconds.
        seed: torch seed of the weights.
    """
    import torch

    from pipeline.students import build_student

    settings = dict(settings if settings is not None else {"n_mels": 32, "dropout": 0.0})
    torch.manual_seed(seed)
    model = build_student(student, settings, n_classes=len(classes), sample_rate=sample_rate)
    _calibrate(model, sample_rate, clip_seconds)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight.mul_(1.0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), folder / "best.pt")
    config = {
        "student": student, "student_settings": {**settings, "sample_rate": sample_rate},
        "n_classes": len(classes), "classes": list(classes), "sample_rate": sample_rate,
        "clip_seconds": clip_seconds, "teacher": "musicnn",
        "teachers": [{"name": "musicnn", "weights_sha256": "ab" * 32}],
        "variant": "east-kd", "distill": {"seed": seed},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def _calibrate(model: Any, sample_rate: int, clip_seconds: float) -> None:
    """Batch-norm running statistics from three batches of tones in noise, some ending in silence
    (as zero-padded short files do), as a cumulative average."""
    import numpy as np
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    rng = np.random.default_rng(0)
    n = int(round(clip_seconds * sample_rate))
    t = np.arange(n) / sample_rate
    model.train()
    with torch.no_grad():
        for _ in range(3):
            tones = np.sin(2 * np.pi * rng.uniform(80, 3000, (8, 1)) * t) * rng.uniform(0.05, 0.6, (8, 1))
            sound = (tones + 0.05 * rng.standard_normal((8, n))) * (t < rng.uniform(0.2, 1.5, (8, 1)) * t[-1])
            model(torch.from_numpy(sound.astype(np.float32)))
    model.eval()


def add_clips(run_dir: Path, root: Path, *, per_split: int = 6, seconds: float = 4.0, seed: int = 0) -> Path:
    """Give a run made by :func:`make_run_dir` manifests and FLAC clips (train/valid/test).

    Each clip is a tone in noise; its labels are random (about 40 % positive, none unknown).
    ``config.json``'s ``manifests`` and ``audio_root`` are set to them. Returns the manifests folder.
    """
    import numpy as np

    from pipeline.audio import write_audio
    from pipeline.manifests import Clip, write_classes, write_manifest

    config = json.loads((run_dir / "config.json").read_text())
    rate, classes = int(config["sample_rate"]), config["classes"]
    rng = np.random.default_rng(seed)
    audio_root, manifests = root / "audio", root / "manifests"
    t = np.arange(int(round(seconds * rate))) / rate
    for split in ("train", "valid", "test"):
        clips = []
        for i in range(per_split):
            name = f"{split}-{i:03d}"
            tone = rng.uniform(0.05, 0.6) * np.sin(2 * np.pi * rng.uniform(80, 3000) * t)
            write_audio(audio_root / f"{name}.flac", (tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32),
                        rate)
            labels = tuple(int(v) for v in rng.random(len(classes)) < 0.4)
            clips.append(Clip(name, f"{name}.flac", seconds, rate, labels, (True,) * len(classes)))
        write_manifest(manifests / f"{split}.jsonl", clips)
    write_classes(manifests / "classes.json", classes)
    config.update(manifests=str(manifests), audio_root=str(audio_root))
    (run_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return manifests
