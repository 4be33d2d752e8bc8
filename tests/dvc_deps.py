"""What each DVC stage really depends on, derived from the code (used by test_dvc_deps.py).

* **Code**: the import closure of the stage's entry point (``stages/<name>.py``) inside the
  repository: every ``import`` statement anywhere in a module (module level and inside
  functions) is followed, and so is every string naming a repository module
  (``"pipeline.stores.zarr_backend:ZarrBackend"``, how registries import lazily); modules
  that registries import by computed names at import time (the teacher modules) are found
  by importing the closure in a fresh interpreter and reading ``sys.modules``, until nothing
  new turns up.
* **Params**: the ``params.yaml`` keys the stage reads, recorded while it runs: every
  section of :class:`~pipeline.config.Params` is replaced by a recording copy.

Run ``python tests/dvc_deps.py`` to print each stage's closure as ``dvc.yaml`` deps, and
``python tests/dvc_deps.py --write`` to rewrite the code deps of ``dvc.yaml`` in place.
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "stages")
_MODULE_NAME = re.compile(r"^(pipeline|stages)(\.\w+)+(:\w+)?$")


def module_file(name: str) -> Path | None:
    """The file of module ``name`` inside the repository, or None."""
    base = ROOT.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(path: Path, name: str) -> set[str]:
    """Repository modules that ``path`` (module ``name``) imports anywhere (packages on the way too)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(parts + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_NAME.match(node.value):
            found.add(node.value.split(":")[0])  # a registry naming a module: "pipeline.x.y:Class"
    modules = set()
    for full in found:
        parts = full.split(".")
        if parts[0] in PACKAGES:
            modules.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return {m for m in modules if module_file(m) is not None}


#: Modules a stage's closure does not enter, per stage, with the reason. A ``run:`` teacher's network
#: is the student of a trained run: its weights and student settings are the run folder's, made by a
#: ``distill@`` stage that tracks the students' code, and the store's provenance fingerprints the
#: checkpoint. Following it would make every ``extract@<teacher>`` depend on ``pipeline/students``,
#: so that editing a student re-extracts the built-in teachers (issue 21).
NOT_FOLLOWED: dict[str, frozenset[str]] = {"extract": frozenset({"pipeline.teachers.run_teacher"})}


def _static_closure(start: Iterable[str], skip: frozenset[str] = frozenset()) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen or name in skip:
            continue
        seen.add(name)
        todo.extend(_imports(module_file(name), name) - seen)  # type: ignore[arg-type]
    return seen


def _closure_here(stage: str) -> set[str]:
    """The closure, computed in this interpreter (imports the modules it finds)."""
    import importlib

    skip = NOT_FOLLOWED.get(stage, frozenset())
    modules = _static_closure([f"stages.{stage}"], skip)
    while True:
        for name in sorted(modules):
            importlib.import_module(name)
        loaded = {n for n in sys.modules if n.split(".")[0] in PACKAGES and module_file(n) is not None}
        more = loaded - modules
        if not more:
            return {module_file(m).relative_to(ROOT).as_posix() for m in modules}  # type: ignore[union-attr]
        modules = _static_closure(modules | more, skip)


def code_closures(stages: Iterable[str]) -> dict[str, set[str]]:
    """Repository-relative posix paths of every module each stage can run (fresh interpreters, in parallel)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {stage: subprocess.Popen([sys.executable, str(Path(__file__)), "--json", stage], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for stage in sorted(set(stages))}
    out = {}
    for stage, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=1800)
        if proc.returncode:
            raise RuntimeError(f"closure of stages/{stage}.py failed:\n{stderr[-2000:]}")
        out[stage] = set(json.loads(stdout.strip().splitlines()[-1]))
    return out


def code_closure(stage: str) -> set[str]:
    """Repository-relative posix paths of every module stage ``stage`` can run."""
    return code_closures([stage])[stage]


def expand_deps(deps: Iterable[str]) -> set[str]:
    """The ``.py`` files that ``dvc.yaml`` deps inside ``pipeline/``/``stages/`` cover."""
    files = set()
    for dep in deps:
        if not dep.startswith(PACKAGES):
            continue
        path = ROOT / dep
        if path.is_dir():
            files.update(p.relative_to(ROOT).as_posix() for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        else:
            files.add(dep)
    return files


def compress(files: set[str]) -> list[str]:
    """``files`` as dvc.yaml deps: a folder where every ``.py`` below it is in ``files``."""
    out: list[str] = []
    folders = sorted({str(Path(f).parent) for f in files}, key=lambda f: (f.count("/"), f))
    covered: set[str] = set()
    for folder in folders:
        if folder in PACKAGES or any(folder.startswith(c + "/") for c in out):
            continue
        inside = expand_deps([folder])
        if inside and inside <= files:
            out.append(folder)
            covered |= inside
    return sorted(out) + sorted(files - covered)


# --- params ------------------------------------------------------------------------------------

class _RecordingMapping(dict):
    """``teachers``/``students``: reading an entry records ``<section>.<name>``."""

    def __init__(self, data: Mapping[str, Any], section: str, log: set[str]) -> None:
        super().__init__(data)
        self._section, self._log = section, log

    def get(self, key: str, default: Any = None) -> Any:  # noqa: D102
        self._log.add(f"{self._section}.{key}")
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self._log.add(f"{self._section}.{key}")
        return super().__getitem__(key)


def _recording_section(section: Any, prefix: str, log: set[str]) -> Any:
    fields = {f.name for f in dataclasses.fields(section)}
    base = type(section)

    def getattribute(self: Any, name: str) -> Any:
        if name in fields:
            log.add(f"{prefix}.{name}")
        return base.__getattribute__(self, name)

    recording = type(f"Recording{base.__name__}", (base,), {"__getattribute__": getattribute})
    copy = object.__new__(recording)
    for name in fields:
        object.__setattr__(copy, name, getattr(section, name))
    return copy


def recording_params(params: Any) -> tuple[Any, set[str]]:
    """A copy of ``params`` that records every ``section.key`` read into the returned set."""
    log: set[str] = set()
    values = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if dataclasses.is_dataclass(value):
            values[f.name] = _recording_section(value, f.name, log)
        elif isinstance(value, Mapping):
            values[f.name] = _RecordingMapping(value, f.name, log)
        else:
            values[f.name] = value
    top = _recording_section(dataclasses.replace(params, **values), "", log)
    return top, log


def normalise(keys: Iterable[str]) -> set[str]:
    """Recorded keys without the leading dot of top-level keys, sections read whole dropped."""
    from pipeline.config import RUNTIME_KEYS  # how fast, not what: never DVC params

    keys = {k.lstrip(".") for k in keys}
    sections = {k for k in keys if "." not in k and any(o.startswith(k + ".") for o in keys)}
    return keys - sections - RUNTIME_KEYS


#: dvc.yaml stage -> the stages/ module its command runs.
ENTRY = {"render": "prepare", "prepare": "prepare", "extract": "extract", "probe": "probe",
         "distill": "distill", "evaluate": "evaluate", "report": "report"}


def rewrite_dvc_yaml(path: Path = ROOT / "dvc.yaml") -> None:
    """Replace the code deps (``pipeline/...``, ``stages/...``) of every stage by its import closure."""
    closures = {entry: compress(files) for entry, files in code_closures(ENTRY.values()).items()}
    out: list[str] = []
    stage = None
    in_deps = False
    for line in path.read_text().splitlines():
        match = re.match(r"^  (\w[\w-]*):", line)
        if match:
            stage = match.group(1)
        stripped = line.strip()
        if stripped == "deps:":
            in_deps, indent = True, " " * (len(line) - len(line.lstrip()) + 2)
            out.append(line)
            continue
        if in_deps and stripped.startswith("- "):
            if not stripped[2:].startswith(PACKAGES):
                out.append(line)
            continue
        if in_deps:
            out.extend(f"{indent}- {dep}" for dep in closures[ENTRY[stage]])  # type: ignore[index]
            in_deps = False
        out.append(line)
    path.write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        rewrite_dvc_yaml()
    elif sys.argv[1:2] == ["--json"]:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(sorted(_closure_here(sys.argv[2]))))
    else:
        for name, files in code_closures(sys.argv[1:] or ENTRY.values()).items():
            print(f"{name}:")
            for dep in compress(files):
                print(f"  - {dep}")
