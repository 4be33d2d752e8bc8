"""Tags over time: each scoring window's probabilities of one file, as CSV, JSON lines and a heat map.

The windows are ``pipeline predict``'s (:mod:`pipeline.windows`): a window's row is what the
student gives for that span, and the mean of the rows is the clip-level line ``predict`` prints.
A window's end is ``start + window length``, cut at the end of the file (a short file's only
window is zero-padded past it).

Files, per audio file ``<name>``: ``<name>.csv`` (``start_seconds,end_seconds,<class>...``),
``<name>.jsonl`` (``{"start": s, "end": s, "probabilities": {class: p}}`` per window) and
``<name>.png`` (classes by time; each window drawn from the midpoint to its left neighbour's
center to the midpoint to its right neighbour's, so overlapping windows tile the time axis).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


@dataclass
class Timeline:
    """Window times and probabilities of one file.

    Attributes:
        start: float64 (windows,) start of each window, seconds from the file's first sample.
        end: float64 (windows,) end of each window, seconds (at most the file's duration).
        probabilities: float32 (windows, classes).
        classes: class names, the columns of ``probabilities``.
    """

    start: np.ndarray
    end: np.ndarray
    probabilities: np.ndarray
    classes: list[str]

    @property
    def clip(self) -> np.ndarray:
        """float32 (classes,): the mean over windows, the clip-level line of ``pipeline predict``."""
        return self.probabilities.mean(axis=0)


def make_timeline(starts: np.ndarray, length: int, n_samples: int, sample_rate: int,
                  probabilities: np.ndarray, classes: Sequence[str]) -> Timeline:
    """A :class:`Timeline` from window start samples (see :class:`pipeline.students.trained.WindowScores`).

    Args:
        starts: int (windows,) first sample of each window.
        length: window length in samples.
        n_samples: the file's length in samples.
        sample_rate: Hz.
        probabilities: (windows, classes).
        classes: class names.
    """
    start = np.asarray(starts, dtype=np.float64) / sample_rate
    end = np.minimum(np.asarray(starts, dtype=np.float64) + length, max(n_samples, 1)) / sample_rate
    return Timeline(start, end, np.asarray(probabilities, dtype=np.float32), list(classes))


def write_csv(timeline: Timeline, path: Path) -> None:
    """``start_seconds,end_seconds,<class>,...``, one row per window (times to the microsecond)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["start_seconds", "end_seconds", *timeline.classes])
        for s, e, row in zip(timeline.start, timeline.end, timeline.probabilities):
            writer.writerow([f"{s:.6f}", f"{e:.6f}", *(f"{p:.6f}" for p in row)])


def write_jsonl(timeline: Timeline, path: Path) -> None:
    """One ``{"start", "end", "probabilities": {class: p}}`` object per window."""
    with open(path, "w") as handle:
        for s, e, row in zip(timeline.start, timeline.end, timeline.probabilities):
            probs = dict(zip(timeline.classes, map(float, row)))
            handle.write(json.dumps({"start": float(s), "end": float(e), "probabilities": probs}) + "\n")


def cell_edges(timeline: Timeline) -> np.ndarray:
    """float64 (windows + 1,) x edges of the heat map's cells, seconds: the first window's start,
    midpoints between consecutive window centers, the last window's end."""
    centers = (timeline.start + timeline.end) / 2
    return np.concatenate([[timeline.start[0]], (centers[:-1] + centers[1:]) / 2, [timeline.end[-1]]])


def plot_heatmap(timeline: Timeline, path: Path, *, title: str) -> None:
    """PNG heat map: classes (rows, label order top-down) by time (seconds), colour = probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    duration = float(timeline.end[-1])
    fig, ax = plt.subplots(figsize=(min(18.0, 6.0 + duration / 20.0), 1.2 + 0.28 * len(timeline.classes)))
    rows = np.arange(len(timeline.classes) + 1) - 0.5
    mesh = ax.pcolormesh(cell_edges(timeline), rows, timeline.probabilities.T, cmap="magma", vmin=0.0, vmax=1.0)
    ax.set_yticks(np.arange(len(timeline.classes)), timeline.classes)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    ax.set_ylabel("class")
    ax.set_title(title)
    fig.colorbar(mesh, ax=ax, label="probability", pad=0.01)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_timeline(timeline: Timeline, out_dir: Path, name: str, *, title: str) -> list[Path]:
    """Write ``<name>.csv``, ``<name>.jsonl`` and ``<name>.png`` into ``out_dir``; returns them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.csv", out_dir / f"{name}.jsonl", out_dir / f"{name}.png"]
    write_csv(timeline, paths[0])
    write_jsonl(timeline, paths[1])
    plot_heatmap(timeline, paths[2], title=title)
    return paths
