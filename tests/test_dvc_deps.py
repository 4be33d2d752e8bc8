"""dvc.yaml's deps and params are right by construction: derived from the code, compared exactly.

Code: the import closure of ``stages/<name>.py`` inside the repository (tests/dvc_deps.py).
Params: the keys each stage reads, recorded while it runs on a tiny folder dataset, without
:data:`~pipeline.config.RUNTIME_KEYS` (workers, threads, devices: how fast, not what).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Union

import pytest
import yaml

from tests.dvc_deps import ENTRY, ROOT, code_closures, compress, expand_deps, normalise, recording_params


def _params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


Item = Union[str, dict[str, Any], None]


def _resolve(text: str, item: Item, params: dict[str, Any]) -> str:
    """``${...}`` of ``text``: ``${item}`` (foreach), ``${item.<axis>}`` (matrix), or a params.yaml key."""
    def lookup(match: re.Match) -> str:
        name = match.group(1)
        if name == "item":
            return str(item)
        if name.startswith("item.") and isinstance(item, dict):
            return str(item[name[len("item."):]])
        value: Any = params
        for part in name.split("."):
            value = value[part]
        return str(value)

    return re.sub(r"\$\{([^}]+)\}", lookup, text)


def _stage_bodies(params: dict[str, Any]) -> dict[str, tuple[dict[str, Any], Item]]:
    """dvc.yaml stage name -> (body, the item of a foreach/matrix stage: its first item, or a stand-in)."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    out: dict[str, tuple[dict[str, Any], Item]] = {}
    for name, stage in stages.items():
        if "foreach" in stage:
            items = yaml.safe_load(_resolve(stage["foreach"], None, params))
            out[name] = (stage["do"], str(items[0]) if items else "demo")
        elif "matrix" in stage:
            axes = {axis: yaml.safe_load(_resolve(values, None, params)) if isinstance(values, str) else values
                    for axis, values in stage["matrix"].items()}
            body = {key: value for key, value in stage.items() if key != "matrix"}
            out[name] = (body, {axis: values[0] if values else "demo" for axis, values in axes.items()})
        else:
            out[name] = (stage, None)
    return out


def _item_keys(item: Item) -> set[str]:
    """Keys a stage's item sets: the variant, and each matrix axis (``seed`` -> ``distill.seed``)."""
    return {"distill.variant"} | ({f"distill.{axis}" for axis in item} if isinstance(item, dict) else set())


def _declared_keys(entries: list[Any], item: Item, params: dict[str, Any]) -> set[str]:
    """dvc.yaml params entries, a whole section expanded into its keys (a mapping inside a section, such
    as ``extract.view_augment``, is one setting: the stage reads it whole)."""
    keys = set()
    for entry in entries:
        key = _resolve(entry if isinstance(entry, str) else next(iter(entry)), item, params)
        value: Any = params
        for part in key.split("."):
            value = value[part]
        is_plugin = key.split(".")[0] in ("teachers", "students")
        if isinstance(value, dict) and not is_plugin and "." not in key:
            keys |= {f"{key}.{sub}" for sub in value}
        else:
            keys.add(key)
    return keys


@pytest.fixture(scope="module")
def closures() -> dict[str, set[str]]:
    return code_closures(ENTRY.values())


@pytest.mark.parametrize("stage", list(ENTRY))
def test_code_deps_are_the_import_closure(stage: str, closures: dict[str, set[str]]) -> None:
    params = _params()
    body, item = _stage_bodies(params)[stage]
    declared = expand_deps(_resolve(d, item, params) for d in body.get("deps", []))
    wanted = closures[ENTRY[stage]]
    suggestion = "\n".join(f"  - {d}" for d in compress(wanted))
    assert declared == wanted, (
        f"dvc.yaml stage {stage!r}: code deps differ from the import closure of stages/{ENTRY[stage]}.py\n"
        f"  missing: {sorted(wanted - declared)}\n  not imported: {sorted(declared - wanted)}\n"
        f"use (or run `python tests/dvc_deps.py --write`):\n{suggestion}")


def test_runtime_keys_exist_and_no_stage_declares_them() -> None:
    from pipeline.config import RUNTIME_KEYS

    params = _params()
    for key in RUNTIME_KEYS:
        section, name = key.split(".")
        assert name in params[section], key
    for stage, (body, item) in _stage_bodies(params).items():
        assert not _declared_keys(body.get("params", []), item, params) & RUNTIME_KEYS, stage


# --- params: recorded while the stages run ------------------------------------------------------

def _record(params: Any, call: Callable[[Any], Any]) -> set[str]:
    recording, log = recording_params(params)
    call(recording)
    return normalise(log)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Keys read by each stage, run in-process on the tiny folder dataset (all variants)."""
    from pipeline.config import load_params
    from stages import distill, evaluate, extract, prepare, probe, report
    from tests.folder_dataset import make_folder_dataset

    base = tmp_path_factory.mktemp("recorded")
    make_folder_dataset(base / "mydata")
    data = _params()
    data["data"].update(dataset="folder", audio_root=str(base / "mydata/audio"), render=[],
                        labels=str(base / "mydata/audio/labels.csv"), manifests=str(base / "m"))
    data["demo"].update(n_train=2, n_valid=1, n_test=1, clip_seconds=0.5, sample_rate=8000)
    data["extract"].update(workers=0, store_root=str(base / "stores"))
    data["distill"].update(epochs=1, batch_size=4, runs_root=str(base / "runs"))
    data["probe"].update(runs_root=str(base / "runs"), steps=20)
    data["report"].update(out=str(base / "reports"))
    (base / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    params = load_params(base / "params.yaml")
    keys: dict[str, set[str]] = {}
    demo = load_params(base / "params.yaml", {"data.dataset": "demo", "data.audio_root": str(base / "demo")})
    keys["render"] = _record(demo, lambda p: prepare.render(p, workers=1, progress=False))
    keys["prepare"] = _record(params, lambda p: prepare.run(p))
    for builder in ("demo", "openmic", "magnatagatune"):  # what prepare reads for the other datasets
        keys["prepare"] |= _record(
            params, lambda p, b=builder: (prepare.data_options(p, b), prepare.default_paths(p, b)))
    keys["extract"] = _record(params, lambda p: extract.run(p, teacher="musicnn", progress=False))
    keys["probe"] = _record(params, lambda p: probe.run(p, teacher="musicnn"))
    keys["distill"], keys["evaluate"] = set(), set()
    for variant in data["variants"]:  # as dvc.yaml runs them: --variant and --seed set, runs/<variant>-<seed>
        with_variant = load_params(base / "params.yaml", {"distill.variant": variant, "distill.seed": 0})
        run_dir = str(base / "runs" / f"{variant}-0")
        keys["distill"] |= _record(with_variant, lambda p: distill.run(p, run_dir=run_dir, progress=False))
        keys["evaluate"] |= _record(with_variant, lambda p: evaluate.run(p, run_dir=run_dir))
    keys["report"] = _record(params, lambda p: report.run(p))
    return keys


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(ENTRY))
def test_params_are_the_keys_the_stage_reads(stage: str, recorded: dict[str, set[str]]) -> None:
    params = _params()
    body, item = _stage_bodies(params)[stage]
    declared = _declared_keys(body.get("params", []), item, params)
    read = recorded[stage] - _item_keys(item)  # the variant (and the seed) are the stage's item
    assert declared == read, (f"dvc.yaml stage {stage!r}: params differ from the keys it reads\n"
                              f"  read, not declared: {sorted(read - declared)}\n"
                              f"  declared, not read: {sorted(declared - read)}")
