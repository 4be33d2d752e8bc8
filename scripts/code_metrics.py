"""Code-health figures of the ``pipeline`` and ``stages`` packages, and the import graph behind them.

Usage: ``python scripts/code_metrics.py [--json] [--no-tools]``

Prints:

- functions over 60 lines (and how many of those carry no ``# long:`` comment saying why);
- import cycles: strongly connected components of the module import graph (top-level and
  function-level imports both count, since both run);
- layer violations: imports against ``cli -> stages -> library`` (the library never imports
  ``pipeline.cli`` or ``stages``; a stage never imports ``pipeline.cli`` or another stage), and
  storage (``pipeline.stores``) importing the teachers or the params;
- folder-level import cycles (every sub-package collapsed into one node);
- imports of the project's own modules inside functions (outside the CLI, whose commands import
  their stage lazily so that ``pipeline --help`` stays light);
- plain ``Any`` on the training seams (loader -> trainer -> objective);
- mypy errors (``mypy pipeline stages``, configured in ``setup.cfg``) and flake8 findings.

``tests/test_layers.py`` imports :func:`import_graph`, :func:`cycles` and :func:`layer_violations`
from here, so the figures and the test use one definition.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "stages")
LONG_LINES = 60
#: a comment inside a long function that says why it is long
LONG_MARK = re.compile(r"#\s*long:", re.IGNORECASE)


@dataclass(frozen=True)
class Import:
    """One import statement: ``source`` imports ``target`` at ``line``.

    ``top``: at module level; ``type_only``: under ``if TYPE_CHECKING:`` (never runs, but is
    still a dependency of the source text, so it counts for cycles and layers).
    """

    source: str
    target: str
    line: int
    top: bool
    type_only: bool = False


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of :data:`PACKAGES`."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``name`` is or lies in (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _imports_of(module: str, path: Path, known: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
            top_level.update(id(stmt) for stmt in node.body if node in tree.body)
    is_package = path.name == "__init__.py"
    out: list[Import] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        for target in targets:
            resolved = _resolve(target, known)
            if resolved is not None and resolved != module:
                out.append(Import(module, resolved, node.lineno, id(node) in top_level, id(node) in type_only))
    return out


def import_graph(root: Path = ROOT) -> list[Import]:
    """Every import between modules of :data:`PACKAGES` (each edge once per statement)."""
    known = modules(root)
    edges: list[Import] = []
    for module, path in known.items():
        edges.extend(_imports_of(module, path, known))
    return edges


def cycles(edges: list[Import]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def layer(module: str) -> str:
    """``cli``, ``stages`` or ``library`` (``pipeline.__main__`` is the CLI's entry point)."""
    if module in ("pipeline.cli", "pipeline.__main__") or module.startswith("pipeline.cli."):
        return "cli"
    if module == "stages" or module.startswith("stages."):
        return "stages"
    return "library"


def layer_violations(edges: list[Import]) -> list[str]:
    """Imports against ``cli -> stages -> library``, as ``source:line -> target (why)``."""
    bad = []
    for edge in edges:
        src, dst = layer(edge.source), layer(edge.target)
        why = ""
        if src == "library" and dst != "library":
            why = f"the library imports {dst}"
        elif src == "stages" and dst == "cli":
            why = "a stage imports the CLI"
        elif src == "stages" and dst == "stages" and "stages" not in (edge.source, edge.target):
            why = "a stage imports another stage"
        elif _in(edge.source, "pipeline.stores") and (_in(edge.target, "pipeline.teachers")
                                                      or edge.target == "pipeline.config"):
            why = "storage imports the teachers or the params"
        if why:
            bad.append(f"{edge.source}:{edge.line} -> {edge.target} ({why})")
    return sorted(bad)


#: third-party packages that take long to import or pull in large native libraries: a function-level import of
#: a project module that loads one of them at its top keeps `pipeline --help` and light commands light
HEAVY_PACKAGES = frozenset({"torch", "tensorflow", "dask", "distributed", "zarr", "h5py", "onnx", "onnxruntime",
                            "openl3", "musicnn", "librosa", "matplotlib", "s3fs", "fsspec", "scipy", "soxr",
                            "sklearn", "hear21passt", "torchcrepe"})


def _third_party_tops(path: Path) -> set[str]:
    """Top-level names of the packages ``path`` imports at module level (outside ``TYPE_CHECKING``)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def heavy_modules(edges: list[Import], root: Path = ROOT) -> set[str]:
    """Project modules that load a :data:`HEAVY_PACKAGES` package when imported (directly or through
    the project modules they import at module level)."""
    known = modules(root)
    heavy = {m for m, path in known.items() if _third_party_tops(path) & HEAVY_PACKAGES}
    tops = [e for e in edges if e.top and not e.type_only]
    while True:
        more = {e.source for e in tops if e.target in heavy} - heavy
        if not more:
            return heavy
        heavy |= more


def lazy_project_imports(edges: list[Import], root: Path = ROOT) -> list[str]:
    """Function-level imports of the project's own modules outside the CLI that import nothing heavy
    (:data:`HEAVY_PACKAGES`): nothing justifies them, as ``source:line -> target``."""
    heavy = heavy_modules(edges, root)
    return sorted(f"{e.source}:{e.line} -> {e.target}" for e in edges
                  if not e.top and not e.type_only and layer(e.source) != "cli" and e.target not in heavy)


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def folder(module: str) -> str:
    """The node of ``module`` in the folder graph: its sub-package (``pipeline.stores``), or itself for
    a module at a package's top (``pipeline.data``) and for a package (``stages``, ``pipeline``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else module


def folder_cycles(edges: list[Import]) -> list[list[str]]:
    """Import cycles between folders: every sub-package collapsed into one node (:func:`folder`)."""
    collapsed = {Import(folder(e.source), folder(e.target), e.line, e.top, e.type_only) for e in edges
                 if folder(e.source) != folder(e.target) and not _is_package_of(e.target, e.source)}
    return cycles(sorted(collapsed, key=lambda e: (e.source, e.target, e.line)))


def _is_package_of(package: str, module: str) -> bool:
    """``pipeline.stores`` importing ``pipeline.stores.x`` is the folder itself (its ``__init__``)."""
    return module.startswith(package + ".")


#: the modules a batch travels through from the loader to the loss
TRAINING_SEAMS = ("pipeline/batch.py", "pipeline/data.py", "pipeline/train.py", "pipeline/losses.py",
                  "stages/distill.py")


def any_on_seams(root: Path = ROOT) -> list[str]:
    """Arguments and returns annotated plain ``Any`` in :data:`TRAINING_SEAMS`, as ``file:line name``."""
    found = []
    for name in TRAINING_SEAMS:
        path = root / name
        if not path.is_file():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
            for arg in arguments:
                if isinstance(arg.annotation, ast.Name) and arg.annotation.id == "Any":
                    found.append(f"{name}:{arg.lineno} {node.name}({arg.arg})")
            if isinstance(node.returns, ast.Name) and node.returns.id == "Any":
                found.append(f"{name}:{node.lineno} {node.name} -> Any")
    return found


@dataclass(frozen=True)
class LongFunction:
    where: str
    lines: int
    explained: bool


def long_functions(root: Path = ROOT, limit: int = LONG_LINES) -> list[LongFunction]:
    """Functions (methods and nested functions too) longer than ``limit`` lines, decorators excluded."""
    found = []
    for module, path in modules(root).items():
        text = path.read_text()
        source_lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    body = "\n".join(source_lines[node.lineno - 1 : node.end_lineno])
                    found.append(LongFunction(f"{module}.{node.name}:{node.lineno}", length,
                                              bool(LONG_MARK.search(body))))
    return sorted(found, key=lambda f: -f.lines)


def imports_inside_functions(root: Path = ROOT) -> int:
    """Import statements inside functions (any module, third-party too; ``TYPE_CHECKING`` blocks excluded)."""
    count = 0
    for path in modules(root).values():
        tree = ast.parse(path.read_text())
        inside: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inside.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
        count += len(inside)
    return count


def _tool_count(command: list[str], pattern: str, root: Path) -> int | None:
    try:
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        return None
    output = done.stdout + done.stderr
    if "No module named" in output:
        return None
    if pattern == "lines":
        return len([line for line in done.stdout.splitlines() if line.strip()])
    match = re.search(pattern, output)
    return int(match.group(1)) if match else 0


def figures(*, tools: bool = True, root: Path = ROOT) -> dict[str, object]:
    """All figures of the checkout at ``root`` as a JSON-able mapping."""
    edges = import_graph(root)
    longs = long_functions(root)
    result: dict[str, object] = {
        "functions": sum(
            isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            for p in modules(root).values() for n in ast.walk(ast.parse(p.read_text()))
        ),
        "functions_over_60_lines": len(longs),
        "functions_over_60_lines_unexplained": sum(not f.explained for f in longs),
        "long_functions": [f"{f.where} ({f.lines} lines{', explained' if f.explained else ''})" for f in longs],
        "import_statements_inside_functions": imports_inside_functions(root),
        "project_imports_inside_functions": sum(not e.top for e in edges),
        "project_imports_inside_functions_outside_cli": sum(not e.top and layer(e.source) != "cli" for e in edges),
        "unjustified_function_level_imports": lazy_project_imports(edges, root),
        "import_cycles": cycles(edges),
        "folder_import_cycles": folder_cycles(edges),
        "import_cycles_at_run_time": cycles([e for e in edges if not e.type_only]),
        "layer_violations": layer_violations(edges),
        "any_on_training_seams": any_on_seams(root),
    }
    if tools:
        result["mypy_errors"] = _tool_count([sys.executable, "-m", "mypy", "pipeline", "stages"],
                                            r"Found (\d+) errors?", root)
        result["flake8_findings"] = _tool_count([sys.executable, "-m", "flake8", "pipeline", "stages", "tests",
                                                 "scripts", "benchmarks"], "lines", root)
    return result


#: the figures ``--check`` (``make lint``) holds at zero; docs/architecture.md says why each matters
MUST_BE_EMPTY = ("long_functions", "import_cycles", "folder_import_cycles", "layer_violations",
                 "unjustified_function_level_imports", "any_on_training_seams")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--no-tools", action="store_true", help="skip mypy and flake8")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to measure (default: this one)")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 unless every figure in {', '.join(MUST_BE_EMPTY)} is zero (make lint)")
    args = parser.parse_args()
    result = figures(tools=not args.no_tools, root=args.root.resolve())
    if args.check:
        failed = {key: result[key] for key in MUST_BE_EMPTY if result[key]}
        for key, items in failed.items():
            print(f"code_metrics: {key}: " + "; ".join(map(str, items)), file=sys.stderr)  # type: ignore[call-overload]
        sys.exit(1 if failed else 0)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        if isinstance(value, list):
            print(f"{key}: {len(value)}")
            for item in value:
                print(f"    {item}")
        else:
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
