"""DVC end to end on temporary clones: repro, no-op repro, targeted re-runs, experiments, sharing."""
from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC = shutil.which("dvc")


def _param_keys(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys.add(dotted)
        if isinstance(value, dict):
            keys |= _param_keys(value, dotted + ".")
    return keys


def test_every_param_a_stage_names_exists() -> None:
    """dvc.yaml and params.yaml stay consistent (every templated key resolves, every params entry exists)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    keys = _param_keys(params)

    def resolve(text: str, item: str | dict[str, Any] | None) -> str:
        def lookup(match: re.Match) -> str:
            name = match.group(1)
            if name == "item":
                assert isinstance(item, str), f"${{item}} outside foreach in {text!r}"
                return item
            if name.startswith("item."):
                assert isinstance(item, dict), f"${{{name}}} outside matrix in {text!r}"
                return str(item[name[len("item."):]])
            value = params
            for part in name.split("."):
                assert part in value, f"{name} used in dvc.yaml is not in params.yaml"
                value = value[part]
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", lookup, text)

    checked = 0
    for name, stage in stages.items():
        if "foreach" in stage:
            items = resolve(stage["foreach"], None) if isinstance(stage["foreach"], str) else stage["foreach"]
            items = yaml.safe_load(items) if isinstance(items, str) else items
            bodies = [(stage["do"], item) for item in items]
        elif "matrix" in stage:
            axes = {axis: yaml.safe_load(resolve(values, None)) if isinstance(values, str) else values
                    for axis, values in stage["matrix"].items()}
            body = {key: value for key, value in stage.items() if key != "matrix"}
            bodies = [(body, dict(zip(axes, combo))) for combo in itertools.product(*axes.values())]
        else:
            bodies = [(stage, None)]
        for body, item in bodies:
            for entry in body.get("params", []):
                key = resolve(entry if isinstance(entry, str) else next(iter(entry)), item)
                assert key in keys, f"stage {name}@{item}: params key {key!r} not in params.yaml"
                checked += 1
            for dep in body.get("deps", []):
                path = resolve(dep, item)
                if path.startswith(("pipeline", "stages")):
                    assert (ROOT / path).exists(), f"stage {name}: code dependency {path} does not exist"
            assert resolve(body["cmd"], item).startswith("pipeline ")
    assert checked >= 10


def test_every_variant_trains_with_every_seed(tmp_path: Path) -> None:
    """`seeds: [0]` (the demo) gives 3 runs; `dvc exp run -S 'seeds=[0,1,2]'` gives 9, each in runs/<variant>-<seed>."""
    if DVC is None:
        pytest.skip("dvc is not installed (make install)")
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params["seeds"] == [0] and params["variants"] == ["baseline", "east-final", "east-kd"]
    _run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path)
    for seeds in ([0], [0, 1, 2]):
        (tmp_path / "params.yaml").write_text(yaml.safe_dump({**params, "seeds": seeds}, sort_keys=False))
        names = _run(["dvc", "stage", "list", "--name-only"], cwd=tmp_path).split()
        runs = [f"{v}-{s}" for v in params["variants"] for s in seeds]
        assert [n for n in names if n.startswith("distill@")] == [f"distill@{r}" for r in runs], names
        assert [n for n in names if n.startswith("evaluate@")] == [f"evaluate@{r}" for r in runs], names
    stages = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]
    assert "--seed ${item.seed}" in stages["distill"]["cmd"]
    assert "--run-dir ${distill.runs_root}/${item.variant}-${item.seed}" in stages["distill"]["cmd"]
    assert stages["evaluate"]["cmd"] == "pipeline evaluate ${distill.runs_root}/${item.variant}-${item.seed}"


def _run(args: list[str], cwd: Path, timeout: int = 3600) -> str:  # a hang guard, not a speed test
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def _clone(source: Path, target: Path) -> Path:
    _run(["git", "clone", "-q", str(source), str(target)], cwd=target.parent)
    _run(["git", "config", "user.email", "test@example.invalid"], cwd=target)
    _run(["git", "config", "user.name", "test"], cwd=target)
    return target


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clone of this repository with a reduced demo, after one full `dvc repro`."""
    if DVC is None:
        pytest.skip("dvc is not installed (make install)")
    base = tmp_path_factory.mktemp("dvc")
    clone = _clone(ROOT, base / "first")
    params = yaml.safe_load((clone / "params.yaml").read_text())
    params["demo"].update(n_train=40, n_valid=16, n_test=16)
    params["distill"].update(epochs=1)
    params["extract"].update(workers=0)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["dvc", "remote", "modify", "--local", "team", "url", str(base / "remote")], cwd=clone)
    _run(["git", "commit", "-qam", "reduced demo"], cwd=clone)
    out = _run(["dvc", "repro"], cwd=clone)
    assert "Running stage 'extract@musicnn'" in out
    return clone


@pytest.mark.slow
def test_repro_runs_everything_then_nothing(reproduced: Path) -> None:
    report = (reproduced / "reports" / "report.md").read_text()
    for row in ("Teacher probe (musicnn)", "Baseline (no teacher)", "EAsT-Final", "EAsT-KD"):
        assert row in report
    for png in ("comparison.png", "curves.png", "per_class.png"):
        assert (reproduced / "reports" / png).stat().st_size > 5000
    metrics = json.loads((reproduced / "runs" / "east-kd-0" / "eval-test.json").read_text())
    assert 0.0 <= metrics["map"] <= 1.0 and metrics["clips"] == 16
    again = _run(["dvc", "repro"], cwd=reproduced)
    assert "Running stage" not in again and "up to date" in again
    shown = _run(["dvc", "metrics", "show", "--json"], cwd=reproduced)
    assert "eval-test.json" in shown


@pytest.mark.slow
def test_distill_change_reruns_only_later_stages(reproduced: Path) -> None:
    params = (reproduced / "params.yaml").read_text()
    (reproduced / "params.yaml").write_text(params.replace("lr: 0.003", "lr: 0.002"))
    try:
        status = json.loads(_run(["dvc", "status", "--json"], cwd=reproduced))
    finally:
        (reproduced / "params.yaml").write_text(params)
    changed = set(status)
    assert {"distill@baseline-0", "distill@east-final-0", "distill@east-kd-0"} <= changed
    assert not any(name.startswith(("prepare", "extract", "probe")) for name in changed)
    out = _run(["dvc", "exp", "run", "-S", "distill.epochs=2"], cwd=reproduced)
    assert "Running stage 'distill@east-kd-0'" in out
    assert "Running stage 'extract" not in out and "Running stage 'prepare'" not in out
    table = json.loads(_run(["dvc", "exp", "show", "--json"], cwd=reproduced))
    experiments = [exp for rev in table for exp in (rev.get("experiments") or [])]
    epochs = [run["data"]["params"]["params.yaml"]["data"]["distill"]["epochs"]
              for exp in experiments for run in exp["revs"]]
    assert 2 in epochs  # the experiment is listed with its setting, next to the workspace


@pytest.mark.slow
def test_a_student_edit_leaves_extraction_alone(reproduced: Path) -> None:
    """Editing a student re-runs training, not stage one: extraction never runs a student (issue 21)."""
    student = reproduced / "pipeline" / "students" / "mobile_fcn.py"
    source = student.read_text()
    student.write_text(source + "\n# an edit\n")
    try:
        status = json.loads(_run(["dvc", "status", "--json"], cwd=reproduced))
    finally:
        student.write_text(source)
    changed = set(status)
    assert {"distill@baseline-0", "distill@east-kd-0"} <= changed  # the edit is seen
    assert not any(name.startswith(("extract", "prepare", "render")) for name in changed), changed


@pytest.mark.slow
def test_second_clone_pulls_instead_of_extracting(reproduced: Path, tmp_path: Path) -> None:
    _run(["dvc", "push"], cwd=reproduced)
    _run(["git", "add", "dvc.lock"], cwd=reproduced)
    _run(["git", "commit", "-qm", "lock"], cwd=reproduced)
    second = _clone(reproduced, tmp_path / "second")
    remote = _run(["dvc", "remote", "list", "--local"], cwd=reproduced).split()[1]
    _run(["dvc", "remote", "modify", "--local", "team", "url", remote], cwd=second)
    _run(["dvc", "pull"], cwd=second)
    out = _run(["dvc", "repro"], cwd=second)
    assert "Running stage 'extract" not in out and "Running stage 'prepare'" not in out
    from pipeline.stores import open_store

    store = open_store(second / "stores" / "musicnn")
    assert len(store) == 72 and store.verify().ok


def _commit_lock(clone: Path) -> None:
    _run(["git", "add", "dvc.lock"], cwd=clone)
    if _run(["git", "status", "--porcelain", "--", "dvc.lock"], cwd=clone).strip():
        _run(["git", "commit", "-qm", "lock"], cwd=clone)


def _s3_remote(clone: Path, url: str, endpoint: str) -> None:
    """An s3:// remote in the clone's local config; credentials come from the AWS_* variables."""
    _run(["dvc", "remote", "add", "--local", "-f", "s3team", url], cwd=clone)
    _run(["dvc", "remote", "modify", "--local", "s3team", "endpointurl", endpoint], cwd=clone)


@pytest.mark.slow
def test_s3_remote_round_trip_between_two_clones(reproduced: Path, s3_server, tmp_path: Path) -> None:  # noqa: ANN001
    """`dvc push` to a real S3-protocol server from one clone, `dvc pull` in another: nothing re-extracted."""
    url = f"s3://{s3_server.new_bucket()}/dvc"
    _s3_remote(reproduced, url, s3_server.endpoint)
    _run(["dvc", "push", "-r", "s3team"], cwd=reproduced)
    _commit_lock(reproduced)
    second = _clone(reproduced, tmp_path / "second-s3")
    _s3_remote(second, url, s3_server.endpoint)
    _run(["dvc", "pull", "-r", "s3team"], cwd=second)
    status = json.loads(_run(["dvc", "status", "--json"], cwd=second))
    assert not any(name.startswith(("prepare", "extract")) for name in status), status
    out = _run(["dvc", "repro"], cwd=second)
    assert "Running stage 'extract" not in out and "Running stage 'prepare'" not in out
    from pipeline.stores import open_store

    store = open_store(second / "stores" / "musicnn")
    assert len(store) == 72 and store.verify().ok
    assert store.track_ids() == open_store(reproduced / "stores" / "musicnn").track_ids()
