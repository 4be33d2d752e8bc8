"""``pipeline probe --teacher NAME``: the teacher's linear probe as a plain function.

Writes ``<probe.runs_root>/probe-<teacher>/``: ``probe.pt`` (the frozen KD teacher, tensors
only), ``metrics.json`` (valid/test mAP, ROC-AUC, F1: the teacher's reference row; no wall-clock
fields, so a rerun on the same inputs writes the same bytes), ``per_class.csv`` and
``timings.json`` (the wall time, not a DVC output).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.config import Params
from pipeline.errors import ManifestError
from pipeline.files import csv_text, write_atomic
from pipeline.data import frame_statistics, pooled_embeddings
from pipeline.devices import training_threads
from pipeline.metrics import evaluate_predictions
from pipeline.probe import fit_probe, save_probe
from pipeline.manifests import Clip, label_arrays, labelled, read_classes, usable_splits
from pipeline.runs import probe_dir, write_json
from pipeline.timings import timings_file
from pipeline.stores import open_store
from pipeline.teacher_stores import checked_store


def run(params: Params, *, teacher: str, store: str | None = None, out: str | None = None) -> dict[str, Any]:
    """Fit the probe on the train split, select on valid, score on test.

    Returns:
        The metrics written to ``metrics.json`` plus ``seconds`` (wall time, written to ``timings.json``).
    """
    started = time.perf_counter()
    torch.set_num_threads(training_threads(params.distill.threads))
    source = checked_store(params, teacher, store)  # first: a wrong --store is the likelier mistake
    manifests = Path(params.data.manifests)
    classes = read_classes(manifests / "classes.json")
    splits = _labelled_splits(usable_splits(manifests, ("train", "valid", "test"), stored=open_store(source),
                                            stage="probe"))
    mean, std = frame_statistics(source, splits["train"])
    pooled = {name: (pooled_embeddings(source, clips) - mean) / std for name, clips in splits.items()}
    labels = {name: label_arrays(clips) for name, clips in splits.items()}
    cfg = params.probe
    probe, fit = fit_probe(
        pooled["train"], *labels["train"], pooled["valid"], *labels["valid"],
        mean=mean, std=std, lr=cfg.lr, steps=cfg.steps, weight_decays=cfg.weight_decays, seed=cfg.seed,
    )
    folder = Path(out) if out else probe_dir(params, teacher)
    save_probe(probe, folder / "probe.pt", teacher=teacher, fit=fit)
    results: dict[str, Any] = {"teacher": teacher, "variant": "probe", "dim": int(mean.shape[0]),
                               "weight_decay": fit.weight_decay, "steps": fit.steps}
    with torch.no_grad():
        for name in ("valid", "test"):
            probs = torch.sigmoid(probe(torch.as_tensor(pooled[name]))).numpy()
            metrics = evaluate_predictions(probs, *labels[name], threshold=params.evaluate.f1_threshold,
                                           class_names=classes)
            results[f"{name}_map"] = metrics.mAP
            results[f"{name}_roc_auc"] = metrics.roc_auc
            results[f"{name}_f1"] = metrics.macro_f1
            results[f"{name}_classes_covered"] = dict(metrics.covered)
            if name == "test":
                _write_per_class(folder / "per_class.csv", classes, metrics.per_class_ap)
    results["parameters"] = int(mean.shape[0] * len(classes) + len(classes))
    write_json(folder / "metrics.json", results)
    timings = {"seconds": time.perf_counter() - started}
    write_json(timings_file(folder), timings)
    return {**results, **timings}


def _labelled_splits(splits: dict[str, list[Clip]]) -> dict[str, list[Clip]]:
    """``splits`` without unlabeled clips (no known label: nothing to fit or score).

    Raises:
        ManifestError: a split holds only unlabeled clips.
    """
    out = {name: labelled(clips) for name, clips in splits.items()}
    empty = [name for name, clips in out.items() if not clips]
    if empty:
        raise ManifestError(f"split {empty[0]!r} has only unlabeled clips (no known label); the probe needs "
                            "labelled clips in train, valid and test: add some and `pipeline prepare`")
    return out


def _write_per_class(path: Path, classes: list[str], values: np.ndarray) -> None:
    rows = [["class", "average_precision"]] + [[name, f"{float(value):.6f}"] for name, value in zip(classes, values)]
    write_atomic(path, csv_text(rows))
