"""Test helpers for the two index formats: write a store's index as format 1 (JSON per part, as
versions before index format 2 wrote it), and edit a format-2 index segment in place."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pipeline.stores import open_store
from pipeline.stores.index import part_row, parts_json_text
from pipeline.stores.segment import read_members, write_members


def to_format1(root: Path) -> None:
    """Rewrite the index of the store at ``root`` as format 1 (frames untouched)."""
    store = open_store(root)
    rows = []
    for part in store.parts():
        (root / "parts" / f"{part.name}.json").write_text(json.dumps(part.to_json()) + "\n")
        rows.append(part_row(part))
    (root / "parts.json").write_text(parts_json_text(rows))
    shutil.rmtree(root / "index")


def segment_files(root: Path) -> list[Path]:
    """The segment files ``parts.json`` lists, in order."""
    return [root / "index" / row["file"] for row in json.loads((root / "parts.json").read_text())["segments"]]


def edit_segment(root: Path, change: Callable[[dict[str, Any], dict[str, np.ndarray]], None], at: int = 0) -> Path:
    """Apply ``change(meta, arrays)`` (mutable copies) to the ``at``-th listed segment and write it back."""
    path = segment_files(root)[at]
    with open(path, "rb") as handle:
        meta, arrays = read_members(handle, str(path))
    arrays = {name: np.array(array) for name, array in arrays.items()}
    change(meta, arrays)
    with open(path, "wb") as handle:
        write_members(handle, meta, arrays)
    return path
