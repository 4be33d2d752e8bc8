"""`pipeline predict --timeline`: every window's times and probabilities, and a heat map."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from tests.run_fixtures import make_run_dir
from tests.stage2_fixtures import invoke

RATE = 8000


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run_dir(tmp_path_factory.mktemp("timeline") / "runs" / "kd-0", sample_rate=RATE, clip_seconds=4.0)


def _write(path: Path, seconds: float, seed: int) -> Path:
    from pipeline.audio import write_audio

    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * RATE))) / RATE
    freqs = rng.uniform(100, 3000, int(seconds) + 1)[(t // 1).astype(int)]
    write_audio(path, (0.4 * np.sin(2 * np.pi * freqs * t) + 0.03 * rng.standard_normal(len(t))).astype(np.float32),
                RATE)
    return path


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_window_times_and_the_clip_mean(run: Path, tmp_path: Path) -> None:
    from pipeline.timeline import cell_edges, make_timeline

    long = _write(tmp_path / "long.flac", 21.5, 0)  # windows at 0, 2, ..., 16 s and one at 17.5 s
    short = _write(tmp_path / "short.flac", 2.5, 1)  # one zero-padded window
    out = tmp_path / "timelines"
    result = invoke(None, "predict", str(run), str(long), str(short), "--json", "--timeline", str(out))
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"wrote timelines of 2 file(s) to {out} (<name>.csv, .jsonl, .png)"
    printed = {json.loads(line)["file"]: json.loads(line)["probabilities"] for line in result.stdout.splitlines()}
    classes = ["bass", "drums", "guitar", "piano", "voice"]

    rows = _rows(out / "long.csv")
    assert list(rows[0]) == ["start_seconds", "end_seconds", *classes]
    starts = [float(r["start_seconds"]) for r in rows]
    ends = [float(r["end_seconds"]) for r in rows]
    assert starts == [0, 2, 4, 6, 8, 10, 12, 14, 16, 17.5] and ends == [s + 4 for s in starts]
    table = np.array([[float(r[c]) for c in classes] for r in rows])
    np.testing.assert_allclose(table.mean(axis=0), [printed[str(long)][c] for c in classes], atol=2e-6)
    lines = [json.loads(line) for line in (out / "long.jsonl").read_text().splitlines()]
    assert [(x["start"], x["end"]) for x in lines] == list(zip(starts, ends))
    np.testing.assert_allclose([[x["probabilities"][c] for c in classes] for x in lines], table, atol=1e-6)

    (only,) = _rows(out / "short.csv")
    assert (float(only["start_seconds"]), float(only["end_seconds"])) == (0.0, 2.5)  # cut at the file's end
    np.testing.assert_allclose([float(only[c]) for c in classes], [printed[str(short)][c] for c in classes],
                               atol=2e-6)
    for name in ("long", "short"):
        png = (out / f"{name}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    timeline = make_timeline(np.array([0, 16000, 20000]), 32000, 52000, RATE, np.zeros((3, 5)), classes)
    np.testing.assert_allclose(cell_edges(timeline), [0.0, 3.0, 4.25, 6.5])  # centers 2, 4, 4.5 s


def test_two_files_with_one_name_keep_both(run: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    files = [_write(tmp_path / d / "song.flac", 5.0, i) for i, d in enumerate("ab")]
    out = tmp_path / "t"
    result = invoke(None, "predict", str(run), *map(str, files), "--timeline", str(out))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["song-2.csv", "song-2.jsonl", "song-2.png",
                                                     "song.csv", "song.jsonl", "song.png"]
