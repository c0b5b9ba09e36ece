"""The shape of the code: no import cycles, and the three packages kept apart.

The import graph is built by grimp from the source (every import statement,
including those inside functions, so a cycle cannot hide in a late import).
"""

from __future__ import annotations

import graphlib

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
