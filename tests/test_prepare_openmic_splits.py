"""The official OpenMIC-2018 split01 lists committed in data_manifests/openmic/splits and their use."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np

from pipeline.audio import write_audio
from pipeline.datasets import BUILDERS
from pipeline.datasets.openmic import COMMITTED_SPLIT_DIR, OFFICIAL_SIZES, read_partition
from pipeline.manifests import load_split

KEY = re.compile(r"^[0-9]{6}_[0-9]+$")


def _lists() -> tuple[list[str], list[str]]:
    return (read_partition(COMMITTED_SPLIT_DIR / "split01_train.csv"),
            read_partition(COMMITTED_SPLIT_DIR / "split01_test.csv"))


def test_committed_lists_are_the_official_split01() -> None:
    assert COMMITTED_SPLIT_DIR == Path(__file__).resolve().parents[1] / "data_manifests" / "openmic" / "splits"
    train, test = _lists()
    assert (len(train), len(test)) == OFFICIAL_SIZES == (14915, 5085)
    assert len(set(train)) == len(train) and len(set(test)) == len(test)
    assert not set(train) & set(test)
    assert all(KEY.match(k) for k in train + test)
    for name in ("split01_train.csv", "split01_test.csv"):  # ids only, one per line, trailing newline
        text = (COMMITTED_SPLIT_DIR / name).read_text(encoding="utf-8")
        assert text.endswith("\n") and "," not in text and "\r" not in text


def test_east_validation_rule_on_the_committed_train_list() -> None:
    train, _ = _lists()
    random.seed(2022)
    valid = [k for k in train if random.uniform(0, 1) < 0.15]
    assert len(valid) == 2223 and len(train) - len(valid) == 12692


def _tone(path: Path, seconds: float = 0.3, sr: int = 8000) -> None:
    t = np.arange(int(seconds * sr)) / sr
    write_audio(path, (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), sr)


def test_builder_falls_back_to_the_committed_lists(tmp_path: Path) -> None:
    train, test = _lists()
    keys = train[:6] + test[:3]  # real keys, so the committed lists place them
    rng = np.random.default_rng(0)
    y_true = rng.choice([0.0, 0.2, 0.9, 1.0], size=(len(keys), 2))
    np.savez(tmp_path / "openmic-2018.npz", Y_true=y_true, Y_mask=np.ones_like(y_true, bool),
             sample_key=np.array(keys))
    (tmp_path / "class-map.json").write_text(json.dumps({"accordion": 0, "banjo": 1}))
    for key in keys:
        path = tmp_path / "audio" / key[:3] / f"{key}.ogg"
        path.parent.mkdir(parents=True, exist_ok=True)
        _tone(path)
    assert not (tmp_path / "partitions").exists()

    report = BUILDERS.get("openmic")(root=tmp_path, manifests_dir=tmp_path / "m")
    assert report.options["split_dir"] == str(COMMITTED_SPLIT_DIR)
    assert report.options["split_source"].startswith("committed")
    assert any("no partitions/ folder" in w for w in report.warnings)
    assert not any("official" in w for w in report.warnings)  # full-size lists: no size warning
    random.seed(2022)
    valid = {k for k in train if random.uniform(0, 1) < 0.15}
    got = {s: [c.id for c in load_split(tmp_path / "m", s)] for s in ("train", "valid", "test")}
    assert got["test"] == test[:3]
    assert got["valid"] == [k for k in train[:6] if k in valid]
    assert got["train"] == [k for k in train[:6] if k not in valid]
    assert len(report.missing) == 20000 - len(keys)  # the rest of the lists: not in this tiny npz
    saved = json.loads((tmp_path / "m" / "report.json").read_text())
    assert saved["options"]["split_source"] == report.options["split_source"]

    (tmp_path / "partitions").mkdir()  # the dataset's own folder still wins when present
    (tmp_path / "partitions" / "split01_train.csv").write_text("\n".join(keys[:6]) + "\n")
    (tmp_path / "partitions" / "split01_test.csv").write_text("\n".join(keys[6:]) + "\n")
    report = BUILDERS.get("openmic")(root=tmp_path, manifests_dir=tmp_path / "m2")
    assert report.options["split_dir"] == str(tmp_path / "partitions")
    assert report.options["split_source"] == "<root>/partitions"
