"""The kiosk's wheelhouse: the kiosk wheel built from this repository and every
dependency as an aarch64 wheel, with one hash-pinned requirements file per Python.

A Pi installs only from these files (``pip install --no-index --find-links
<wheelhouse> --require-hashes -r requirements-cp311.txt``): no public index is
asked, so no one can slip in a package of the same name (``palaute`` is not ours
on PyPI), and nothing is compiled on the Pi.

Which Pythons: Raspberry Pi OS Bookworm has 3.11 (glibc 2.36), Trixie 3.13
(glibc 2.41). ``pip download --platform`` does not widen a ``manylinux_2_X`` tag to
older glibcs by itself, so every tag from manylinux2014 (2.17) up to the release's
glibc is passed: lgpio's wheel is manylinux_2_34, Kivy's manylinux2014. lgpio has
no cp313 wheel (the cp313 file on PyPI is an empty 0.0.0.2 placeholder), so the
kiosk extra asks for it only below 3.13 and Trixie uses Debian's python3-lgpio
through a ``--system-site-packages`` venv (install-kiosk.sh).
"""

from __future__ import annotations

import email.parser
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from fleet_server.core.errors import WheelhouseError
from palaute_wire.contract import VERSION_PATTERN

PI_PYTHONS: dict[str, int] = {"3.11": 36, "3.13": 41}
"""Python version on Raspberry Pi OS -> the glibc minor version of that release (2.X)."""

_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


_NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "var", "artifacts", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".ruff_cache", ".mypy_cache", ".hypothesis", "docs")


@dataclass(frozen=True)
class Wheelhouse:
    directory: Path
    kiosk_wheel: Path
    requirements: dict[str, Path]
    """cp tag (``cp311``) -> its requirements file; a Python whose wheels are missing is left out."""
    missing: dict[str, str]
    """cp tag -> why it was left out (pip's last line)."""


def cp_tag(python_version: str) -> str:
    return "cp" + python_version.replace(".", "")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pip(args: Sequence[str], what: str, pip: Sequence[str]) -> None:
    run = subprocess.run([*pip, *args], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        tail = "\n".join((run.stderr or run.stdout).strip().splitlines()[-5:])
        raise WheelhouseError(f"{what} failed:\n{tail}")


def platform_args(glibc_minor: int) -> list[str]:
    tags = ["manylinux2014_aarch64"] + [f"manylinux_2_{m}_aarch64" for m in range(17, glibc_minor + 1)]
    return [arg for tag in tags for arg in ("--platform", tag)]


def requirements_text(wheels: Iterable[Path]) -> str:
    """``name==version --hash=sha256:...`` per project; the kiosk line asks for its extra."""
    lines = []
    for wheel in sorted(wheels, key=lambda p: p.name.lower()):
        match = _WHEEL_NAME.match(wheel.name)
        if match is None:
            raise WheelhouseError(f"not a wheel file name: {wheel.name}")
        name = match["name"]
        extra = "[kiosk]" if name == "palaute" else ""
        lines.append(f"{name}{extra}=={match['version']} --hash=sha256:{_sha256(wheel)}")
    return "\n".join(lines) + "\n"


def kiosk_requirements(wheel: Path, python_version: str) -> list[str]:
    """The kiosk wheel's requirements (with its ``kiosk`` extra) that apply on a Pi with that Python.

    Evaluated here because ``pip download --python-version`` checks wheel tags for the
    target but evaluates markers such as ``python_version < '3.13'`` for the Python
    running pip.
    """
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.BytesParser().parsebytes(archive.read(name))
    target = {
        "python_version": python_version, "python_full_version": f"{python_version}.0",
        "implementation_name": "cpython", "platform_python_implementation": "CPython",
        "platform_machine": "aarch64", "platform_system": "Linux", "sys_platform": "linux",
        "os_name": "posix", "extra": "kiosk",
    }
    wanted = []
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate(target):
            requirement.marker = None
            wanted.append(str(requirement))
    return wanted


def _dependencies(kiosk_wheel: Path, version: str, pip: Sequence[str], cache: Path | None) -> list[Path]:
    """The dependency wheels for one Python: from ``cache`` when it has this exact set, else pip."""
    wanted = kiosk_requirements(kiosk_wheel, version)
    args = ["--only-binary=:all:", "--implementation", "cp", "--python-version", version,
            *platform_args(PI_PYTHONS.get(version, 36)), *wanted]
    key = hashlib.sha256("\n".join(args).encode()).hexdigest()[:16]
    if cache is not None:
        kept = cache / f"{cp_tag(version)}-{key}"
        if (kept / "complete").exists():
            return sorted(kept.glob("*.whl"))
    with tempfile.TemporaryDirectory(prefix=f"palaute-{cp_tag(version)}-") as tmp:
        _pip(["download", "-q", "--dest", tmp, *args], f"downloading the kiosk's dependencies for Python {version}", pip)
        if cache is None:
            kept = Path(tempfile.mkdtemp(prefix=f"palaute-{cp_tag(version)}-wheels-"))
        else:
            kept.mkdir(parents=True, exist_ok=True)
        for wheel in Path(tmp).glob("*.whl"):
            shutil.copyfile(wheel, kept / wheel.name)
        (kept / "complete").write_text("")
    return sorted(kept.glob("*.whl"))


def build_kiosk_wheel(source: Path, out: Path, *, version: str | None = None,
                      pip: Sequence[str] = (sys.executable, "-m", "pip")) -> Path:
    """``pip wheel --no-deps`` of a clean copy of ``source`` into ``out``; with ``version``
    that version is written into the copy's pyproject.toml first. Returns the wheel."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="palaute-wheel-") as tmp:
        tree = Path(tmp) / "src"  # a clean copy: the build leaves build/ and *.egg-info behind
        shutil.copytree(source, tree, ignore=_NOT_SOURCE, symlinks=True)
        if version is not None:
            if not re.fullmatch(VERSION_PATTERN, version):
                raise WheelhouseError(f"{version!r} is not a release version (e.g. 0.2.0)")
            pyproject = tree / "pyproject.toml"
            text, n = re.subn(r'(?m)^version = "[^"]*"', f'version = "{version}"', pyproject.read_text(), count=1)
            if n != 1:
                raise WheelhouseError(f"{source}/pyproject.toml has no version line to set")
            pyproject.write_text(text)
        _pip(["wheel", "--no-deps", "-q", "-w", tmp, str(tree)], "building the kiosk wheel", pip)
        built = list(Path(tmp).glob("palaute-*.whl"))
        if len(built) != 1:
            raise WheelhouseError(f"expected one palaute wheel from {source}, pip made {len(built)}")
        kiosk_wheel = out / built[0].name
        shutil.copyfile(built[0], kiosk_wheel)
    return kiosk_wheel


def build_wheelhouse(
    source: Path,
    out: Path,
    python_versions: Sequence[str] = tuple(PI_PYTHONS),
    pip: Sequence[str] = (sys.executable, "-m", "pip"),
    download_cache: Path | None = None,
    version: str | None = None,
) -> Wheelhouse:
    """Build the kiosk wheel from ``source`` and download its aarch64 dependencies into ``out``.

    Needs the package index (once per requirement set with ``download_cache``). A Python for which
    some dependency has no wheel is reported in ``missing``, not fatal, so a Bookworm
    rollout does not wait for Trixie wheels. With ``download_cache`` the dependencies'
    wheels are kept there per Python and requirement set and reused without asking the index.
    ``version`` sets the kiosk wheel's version (a release, ``palaute-server release build``).
    """
    kiosk_wheel = build_kiosk_wheel(source, out, version=version, pip=pip)
    requirements: dict[str, Path] = {}
    missing: dict[str, str] = {}
    for python in python_versions:
        tag = cp_tag(python)
        try:
            downloaded = _dependencies(kiosk_wheel, python, pip, download_cache)
        except WheelhouseError as exc:
            missing[tag] = str(exc).splitlines()[-1]
            continue
        wheels = [kiosk_wheel]
        for wheel in downloaded:
            target = out / wheel.name
            if not target.exists():
                shutil.copyfile(wheel, target)
            wheels.append(target)
        path = out / f"requirements-{tag}.txt"
        path.write_text(f"# The kiosk for Python {python} on aarch64: install with --no-index --require-hashes\n"
                        + requirements_text(wheels))
        requirements[tag] = path
    if not requirements:
        raise WheelhouseError("no Python has all its wheels: " + "; ".join(f"{k}: {v}" for k, v in missing.items()))
    return Wheelhouse(out, kiosk_wheel, requirements, missing)
