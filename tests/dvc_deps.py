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

Run ``python tests/dvc_deps.py`` to print each stage's closure as ``dvc.yaml`` deps.
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
#: Settings that change how fast a stage runs, never what it writes: no DVC params.
from pipeline.config import RUNTIME_KEYS  # noqa: E402


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


def _static_closure(start: Iterable[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imports(module_file(name), name) - seen)  # type: ignore[arg-type]
    return seen


def _imported_at_runtime(modules: Iterable[str]) -> set[str]:
    """Repository modules in ``sys.modules`` after importing ``modules`` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {sorted(modules)!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {PACKAGES!r})))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         check=True, timeout=600)
    return {m for m in json.loads(out.stdout.strip().splitlines()[-1]) if module_file(m) is not None}


def code_closure(stage: str) -> set[str]:
    """Repository-relative posix paths of every module stage ``stage`` can run."""
    modules = _static_closure([f"stages.{stage}"])
    while True:
        more = _imported_at_runtime(modules) - modules
        if not more:
            break
        modules = _static_closure(modules | more)
    return {module_file(m).relative_to(ROOT).as_posix() for m in modules}  # type: ignore[union-attr]


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
    keys = {k.lstrip(".") for k in keys}
    sections = {k for k in keys if "." not in k and any(o.startswith(k + ".") for o in keys)}
    return keys - sections - RUNTIME_KEYS


if __name__ == "__main__":
    for name in sys.argv[1:] or ["prepare", "extract", "probe", "distill", "evaluate", "report"]:
        print(f"{name}:")
        for dep in compress(code_closure(name)):
            print(f"  - {dep}")
