"""Each installable part imports only what its own extra declares (directly or through a declared package).

`pip install 'palaute[server]'` on a server and `palaute[kiosk]` on a Pi must each be enough:
the development venv has every extra at once, so an undeclared import works here and fails there.
"""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PARTS = {"palaute_wire": (), "kiosk": ("kiosk",), "fleet_server": ("server",)}
OWN = set(PARTS)


def _imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in OWN}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(extras: tuple[str, ...]) -> set[str]:
    """The project's requirements for these extras, with everything they pull in (markers of this machine)."""
    wanted = []
    for text in metadata.requires("palaute") or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in ("", *extras)):
            wanted.append(req.name)
    seen: set[str] = set()
    while wanted:
        name = _norm(wanted.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                wanted.append(req.name)
    return seen


@pytest.mark.parametrize("package", sorted(PARTS))
def test_every_third_party_import_is_declared_for_its_part(package):
    distributions = metadata.packages_distributions()
    declared = _declared(PARTS[package])
    missing = {}
    for module in sorted(_imports(package)):
        owners = {_norm(d) for d in distributions.get(module, [module])}
        if not owners & declared:
            missing[module] = sorted(owners)
    assert not missing, (f"{package} imports {missing} but pyproject.toml does not declare them for "
                         f"{'palaute[' + ','.join(PARTS[package]) + ']' if PARTS[package] else 'palaute'}")
