"""The shape of the code: no import cycles, and the three packages kept apart.

The import graph is built by grimp from the source (every import statement,
including those inside functions, so a cycle cannot hide in a late import).
"""

from __future__ import annotations

import ast
import builtins
import graphlib
import importlib
import importlib.util
from pathlib import Path

import grimp
import pytest

PACKAGES = ("palaute_wire", "kiosk", "fleet_server")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES)


def import_cycle(graph: grimp.ImportGraph) -> list[str] | None:
    """One cycle of module imports, as ``[a, b, ..., a]``, or None when there is none."""
    order = graphlib.TopologicalSorter({m: graph.find_modules_directly_imported_by(m) for m in graph.modules})
    try:
        order.prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_no_module_imports_itself_through_others(graph):
    cycle = import_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_finds_a_cycle():
    graph = grimp.build_graph("palaute_wire")
    graph.add_import(importer="palaute_wire.contract", imported="palaute_wire.surveys")
    graph.add_import(importer="palaute_wire.surveys", imported="palaute_wire.contract")
    cycle = import_cycle(graph)
    assert cycle is not None and set(cycle) == {"palaute_wire.contract", "palaute_wire.surveys"}


@pytest.mark.parametrize(
    ("importer", "imported"),
    [("kiosk", "fleet_server"), ("fleet_server", "kiosk"), ("palaute_wire", "kiosk"), ("palaute_wire", "fleet_server")],
)
def test_packages_stay_apart(graph, importer, imported):
    chain = graph.find_shortest_chain(importer=importer, imported=imported, as_packages=True)
    assert chain is None, f"{importer} must not import {imported}: " + " -> ".join(chain or ())


WERE_PLAIN_EXCEPTIONS = {"LoginRequired"}
"""Kinds that replaced a bare ``Exception``: the package's base is their builtin."""
ERROR_TREES = {"palaute_wire": "palaute_wire.errors", "kiosk": "kiosk.errors", "fleet_server": "fleet_server.core.errors"}
_BUILTIN_ERRORS = {name for name, value in vars(builtins).items()
                   if isinstance(value, type) and issubclass(value, BaseException)}


def _error_classes_outside_the_tree(package: str) -> list[str]:
    tree_file = Path(importlib.util.find_spec(ERROR_TREES[package]).origin)
    root = Path(importlib.util.find_spec(package).origin).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        if path == tree_file or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if bases & _BUILTIN_ERRORS or any(b.endswith(("Error", "Exception")) for b in bases):
                    found.append(f"{path.relative_to(root.parent)}:{node.lineno} {node.name}")
    return found


@pytest.mark.parametrize("package", sorted(ERROR_TREES))
def test_every_error_class_lives_in_its_packages_error_tree(package):
    assert _error_classes_outside_the_tree(package) == []


@pytest.mark.parametrize("package", sorted(ERROR_TREES))
def test_each_error_is_a_kind_of_its_packages_base_and_of_a_builtin(package):
    module = importlib.import_module(ERROR_TREES[package])
    classes = [c for c in vars(module).values() if isinstance(c, type) and c.__module__ == module.__name__]
    base = classes[0]
    assert base.__bases__ == (Exception,) and len(classes) > 2
    for kind in classes[1:]:
        assert issubclass(kind, base), kind
        builtin_bases = [b for b in kind.__mro__[1:] if b.__module__ == "builtins" and b not in (Exception, BaseException,
                                                                                               object)]
        assert builtin_bases or kind.__name__ in WERE_PLAIN_EXCEPTIONS, f"{kind.__name__} inherits no builtin error"
