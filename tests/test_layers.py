"""The import graph of ``pipeline`` + ``stages``: no cycles, and dependencies run cli -> stages -> library.

The graph is built from the source text (``ast``): imports at module level, inside functions
and under ``if TYPE_CHECKING:`` all count, since each is a dependency a change has to respect.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _code_metrics() -> ModuleType:
    spec = importlib.util.spec_from_file_location("code_metrics", ROOT / "scripts" / "code_metrics.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("code_metrics", module)
    spec.loader.exec_module(module)
    return module


metrics = _code_metrics()


def test_the_graph_sees_the_packages() -> None:
    edges = metrics.import_graph(ROOT)
    sources = {edge.source for edge in edges}
    assert {"pipeline.cli.distill", "stages.distill", "pipeline.train"} <= sources
    assert any(e.source == "pipeline.cli.distill" and e.target == "stages.distill" for e in edges)


def test_no_import_cycles() -> None:
    found = metrics.cycles(metrics.import_graph(ROOT))
    assert found == [], f"import cycles: {found}"


def test_no_import_cycles_between_folders() -> None:
    found = metrics.folder_cycles(metrics.import_graph(ROOT))
    assert found == [], f"import cycles between folders: {found}"


def test_imports_follow_the_layers() -> None:
    found = metrics.layer_violations(metrics.import_graph(ROOT))
    assert found == [], "imports against cli -> stages -> library:\n" + "\n".join(found)


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """A library module importing a stage, and two stages importing each other, are caught."""
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "stages").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("")
    (tmp_path / "pipeline" / "lib.py").write_text("def f():\n    from stages.a import run\n")
    (tmp_path / "stages" / "__init__.py").write_text("")
    (tmp_path / "stages" / "a.py").write_text("from stages import b\n")
    (tmp_path / "stages" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                              "    from stages.a import run\n")
    edges = metrics.import_graph(tmp_path)
    assert metrics.cycles(edges) == [["stages.a", "stages.b"]]
    violations = metrics.layer_violations(edges)
    assert any("pipeline.lib" in v and "the library imports stages" in v for v in violations)
    assert sum("a stage imports another stage" in v for v in violations) == 2


def test_storage_importing_teachers_and_two_folders_in_a_cycle_are_caught(tmp_path: Path) -> None:
    for folder in ("pipeline", "pipeline/stores", "pipeline/teachers", "stages"):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "pipeline" / "stores" / "lookup.py").write_text("from pipeline.teachers.base import Teacher\n")
    (tmp_path / "pipeline" / "teachers" / "base.py").write_text("from pipeline.stores.store import open_store\n")
    (tmp_path / "pipeline" / "stores" / "store.py").write_text("import numpy\n")
    edges = metrics.import_graph(tmp_path)
    assert metrics.cycles(edges) == []  # no module imports itself back...
    assert metrics.folder_cycles(edges) == [["pipeline.stores", "pipeline.teachers"]]  # ...but the folders do
    assert any("storage imports the teachers" in v for v in metrics.layer_violations(edges))
