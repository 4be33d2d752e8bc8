"""Done when: your own folder dataset through `dvc repro`, changing only params.yaml, to the report.

The dataset (tests/folder_dataset.py) has mixed formats, rates and lengths, an id column, one
file whose header reads but whose body does not decode, and a class whose only positive is
that file. A second `dvc repro` does nothing; runtime settings (workers, device, threads)
change nothing; a change of code a stage imports re-runs it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.folder_dataset import BROKEN, make_folder_dataset

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    if shutil.which("dvc") is None:
        pytest.skip("dvc is not installed (make install)")
    base = tmp_path_factory.mktemp("folder-dvc")
    clone = base / "repo"
    _run(["git", "clone", "-q", str(ROOT), str(clone)], cwd=base)
    make_folder_dataset(clone / "mydata")
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["data"].update(dataset="folder", audio_root="mydata/audio", labels="mydata/audio/labels.csv",
                          manifests="data_manifests/mydata", render=[])
    params["distill"].update(epochs=1, batch_size=4)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return clone, _run(["dvc", "repro"], cwd=clone)


def test_repro_runs_a_folder_dataset_to_the_report(clone: tuple[Path, str]) -> None:
    repo, out = clone
    assert "Running stage 'render" not in out  # nothing rendered for audio you bring
    report = json.loads((repo / "data_manifests" / "mydata" / "report.json").read_text())
    assert report["splits"] == {"train": 7, "valid": 2, "test": 2} and not report["missing"]
    extract = json.loads((repo / "stores" / "musicnn-extract-report.json").read_text())
    assert extract["done"] == 10 and [f["track"] for f in extract["failed"]] == [BROKEN]
    assert out.count("are not in the store") == 4  # one warning per later stage that reads the train split
    assert "Traceback" not in out and "CommClosedError" not in out and "INFO distributed" not in out
    assert not any(line.startswith(("Error", "ERROR", "error:")) for line in out.splitlines())
    table = (repo / "reports" / "report.md").read_text()
    assert "EAsT-KD" in table and "Baseline" in table
    metrics = json.loads((repo / "runs" / "east-kd-0" / "eval-test.json").read_text())
    assert metrics["clips"] == 2


def test_second_repro_and_runtime_settings_change_nothing(clone: tuple[Path, str]) -> None:
    repo, _ = clone
    again = _run(["dvc", "repro"], cwd=repo)
    assert "Running stage" not in again
    params = (repo / "params.yaml").read_text()
    try:
        changed = params.replace("workers: 2", "workers: 1").replace("threads: 1", "threads: 2")
        (repo / "params.yaml").write_text(changed.replace("device: auto", "device: cpu"))
        assert json.loads(_run(["dvc", "status", "--json"], cwd=repo)) == {}
    finally:
        (repo / "params.yaml").write_text(params)


def test_code_a_stage_imports_reruns_it(clone: tuple[Path, str]) -> None:
    repo, _ = clone
    alignment = repo / "pipeline" / "alignment.py"
    text = alignment.read_text()
    try:
        alignment.write_text(text + "\n# touched\n")
        changed = set(json.loads(_run(["dvc", "status", "--json"], cwd=repo)))
    finally:
        alignment.write_text(text)
    assert {"distill@baseline-0", "distill@east-final-0", "distill@east-kd-0"} <= changed  # the losses import it
    assert not any(name.startswith(("prepare", "extract", "report")) for name in changed)
