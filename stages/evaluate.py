"""``pipeline evaluate RUN``: score a trained student on a split (whole clips)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.config import Params
from pipeline.audio_source import AudioSource, usable_audio_cache
from pipeline.devices import training_threads
from pipeline.manifests import label_arrays, usable_splits
from pipeline.metrics import evaluate_predictions
from pipeline.files import csv_text, write_atomic
from pipeline.runs import write_json
from pipeline.students.trained import LoadedRun, load_run, predict_audio
from pipeline.timings import timings_file
from pipeline.stores import open_store
from pipeline.teacher_stores import first_store_with_audio, store_path


def run(params: Params, *, run_dir: str, split: str | None = None) -> dict[str, Any]:
    """Macro mAP, ROC-AUC and F1 (known labels only), per class too; written to ``eval-<split>.json``.

    Every clip is scored whole: clips longer than the training length by sliding windows
    (half overlap, probabilities averaged), shorter ones zero-padded.

    Also measures CPU inference time per clip (batch 1, one thread) for the report; that wall-clock
    figure goes to ``timings-eval-<split>.json``, not into the metrics DVC tracks.

    Returns:
        The metrics of ``eval-<split>.json`` plus ``cpu_ms_per_clip``.
    """
    torch.set_num_threads(training_threads(params.distill.threads))
    split = split or params.evaluate.split
    loaded = load_run(run_dir)
    teacher = loaded.config.teacher
    owner = store_path(params, teacher) if teacher else first_store_with_audio(params)
    stored = open_store(owner) if owner is not None and Path(owner, "teacher.json").is_file() else None
    clips = usable_splits(Path(loaded.config.manifests), (split,), stored=stored, stage="evaluate")[split]
    audio = AudioSource(loaded.config.audio_root, loaded.sample_rate, usable_audio_cache(owner, loaded.sample_rate))
    # Whole clips: clips longer than the training length are scored by sliding windows.
    probs = [
        predict_audio(loaded, audio.read(clip, 0, int(round(clip.duration * loaded.sample_rate))),
                      batch_size=params.evaluate.batch_size)
        for clip in clips
    ]
    labels, known = label_arrays(clips)
    metrics = evaluate_predictions(np.stack(probs), labels, known,
                                   threshold=params.evaluate.f1_threshold, class_names=loaded.classes)
    results = {
        "run": Path(run_dir).name,
        "split": split,
        "clips": len(clips),
        "map": metrics.mAP,
        "roc_auc": metrics.roc_auc,
        "f1_macro": metrics.macro_f1,
        "f1_binary": metrics.binary_f1,
        "n_classes": len(loaded.classes),
        "classes_covered": dict(metrics.covered),  # classes each mean covers (the others are undefined there)
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
    }
    write_json(Path(run_dir) / f"eval-{split}.json", results)  # DVC tracks it: no wall-clock field
    timings = {"cpu_ms_per_clip": _cpu_ms_per_clip(loaded)}
    write_json(timings_file(run_dir, f"eval-{split}"), timings)
    rows = [["class", "average_precision", "roc_auc"]] + [
        [name, f"{float(ap):.6f}", f"{float(auc):.6f}"]
        for name, ap, auc in zip(loaded.classes, metrics.per_class_ap, metrics.per_class_auc)]
    write_atomic(Path(run_dir) / f"per_class-{split}.csv", csv_text(rows))
    return {**results, **timings}


def _cpu_ms_per_clip(loaded: LoadedRun, repeats: int = 10) -> float:
    """Median wall milliseconds of one forward pass on one training-length clip (CPU, current threads)."""
    x = torch.zeros(1, int(loaded.clip_seconds * loaded.sample_rate))
    times = []
    with torch.no_grad():
        loaded.model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            loaded.model(x)
            times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))
