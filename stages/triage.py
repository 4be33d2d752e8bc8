"""``pipeline triage``: gather each teacher's probe score and valid-split embeddings, and a baseline
student's features, then let :mod:`pipeline.triage` compare them and write ``triage.md`` and ``triage.png``."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from pipeline.config import Params
from pipeline.audio_source import AudioSource, usable_audio_cache
from pipeline.devices import training_threads
from pipeline.errors import ConfigError
from pipeline.manifests import Clip, usable_splits
from pipeline.runs import probe_dir
from pipeline.students.trained import load_run
from pipeline.stores import open_store
from pipeline.teacher_stores import checked_store
from pipeline.triage import Triage, heatmap, markdown, pooled_embeddings, triage

log = logging.getLogger("pipeline")


def run(params: Params, *, teachers: Sequence[str] = (), baseline: Optional[str] = None, measure: str = "dcor",
        split: str = "valid", out: Optional[str] = None) -> dict[str, Any]:
    """Triage ``teachers`` (default: ``teachers_enabled``) on ``split``; write ``<out>/triage.md`` and ``.png``.

    Args:
        params: the parameters (stores, manifests, runs roots).
        teachers: teacher names; empty = ``teachers_enabled``.
        baseline: a baseline student's run folder; None = ``<distill.runs_root>/baseline-0`` when it exists.
        measure: ``dcor`` or ``cka``.
        split: the manifest split to compare on.
        out: output folder; None = ``report.out``.

    Returns:
        ``{"markdown", "png", "recommended", "reason", "triage"}``.

    Raises:
        ConfigError: no teacher named, or fewer than 4 clips every store holds.
    """
    names = list(teachers or params.teachers_enabled)
    if not names:
        raise ConfigError("no teacher to triage: pass --teacher NAME (repeatable) or set teachers_enabled")
    stores = {name: checked_store(params, name) for name in names}
    clips = _common_clips(params, stores, split)
    embeddings = {name: pooled_embeddings(path, [c.id for c in clips]) for name, path in stores.items()}
    probes = {name: probe_valid_map(params, name) for name in names}
    student_run = _baseline_run(params, baseline)
    student = student_features(student_run, clips, stores[names[0]]) if student_run else None
    result = triage(embeddings, probes, student, measure)
    folder = Path(out or params.report.out)
    folder.mkdir(parents=True, exist_ok=True)
    text = markdown(result) + (f"\nBaseline student: `{student_run}`.\n" if student_run else
                               "\nNo baseline student run (pass --baseline RUN): teacher-student dependence "
                               "not shown.\n")
    (folder / "triage.md").write_text(text)
    png = heatmap(result, folder / "triage.png")
    return {"markdown": folder / "triage.md", "png": png, "recommended": result.recommended,
            "reason": result.reason, "triage": result}


def probe_valid_map(params: Params, teacher: str) -> Optional[float]:
    """The valid mAP of ``runs/probe-<teacher>/metrics.json``, or None (with a log line) when not probed yet."""
    path = probe_dir(params, teacher) / "metrics.json"
    if not path.is_file():
        log.warning("triage: %s has no probe (%s); run `pipeline probe --teacher %s` first", teacher, path, teacher)
        return None
    return float(json.loads(path.read_text())["valid_map"])


def _common_clips(params: Params, stores: dict[str, Any], split: str) -> list[Clip]:
    """The clips of ``split`` that every store holds, in manifest order."""
    clips = usable_splits(Path(params.data.manifests), (split,), stage="triage")[split]
    held = [open_store(path) for path in stores.values()]
    common = [c for c in clips if all(c.id in store for store in held)]
    if len(common) < 4:
        raise ConfigError(f"triage needs at least 4 {split} clips held by every store, found {len(common)}; "
                          "extract the split for each teacher first")
    return common


def _baseline_run(params: Params, baseline: Optional[str]) -> Optional[Path]:
    """``baseline``, else the dvc.yaml baseline run ``<runs_root>/baseline-0`` when it has a ``best.pt``."""
    if baseline:
        return Path(baseline)
    default = Path(params.distill.runs_root) / "baseline-0"
    return default if (default / "best.pt").is_file() else None


def student_features(run_dir: Path, clips: Sequence[Clip], audio_store: Any) -> np.ndarray:
    """Clip-pooled last-stage features of a trained student on whole clips: float64 (n_clips, channels)."""
    loaded = load_run(run_dir)
    torch.set_num_threads(training_threads(0))
    audio = AudioSource(loaded.config.audio_root, loaded.sample_rate,
                        usable_audio_cache(audio_store, loaded.sample_rate))
    rows = []
    with torch.no_grad():
        for clip in clips:
            wave = audio.read(clip, 0, int(round(clip.duration * loaded.sample_rate)))
            wave = np.pad(wave, (0, max(0, int(loaded.model.min_samples) - len(wave))))
            output = loaded.model(torch.from_numpy(np.ascontiguousarray(wave, np.float32))[None])
            rows.append(output.features[-1][0].double().mean(dim=0).numpy())
    return np.stack(rows)


__all__ = ["run", "probe_valid_map", "student_features", "Triage"]
