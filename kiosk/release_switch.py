"""The installed versions of a kiosk and the two links that choose between them.

    <root>/<version>/          a complete venv per installed version (marker file last)
    <root>/current -> <version>    what palaute-kiosk.service runs
    <root>/stable  -> <version>    the last version that proved itself healthy; the
                                   updater runs from here, so a broken new version
                                   can never take away the code that switches back

A link is switched by creating a temporary link and renaming it over the old one
(rename is atomic on POSIX), then syncing the directory: after a power cut the
link names either the old version or the new one, never nothing. Only this module
changes the links. Standard library only: it must work in any version's venv.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CURRENT = "current"
STABLE = "stable"
INSTALLED_MARKER = ".palaute-installed"
"""Written into a version's directory after pip and the import check passed."""


DEBIAN_LGPIO_FROM = (3, 13)
"""From this Python on (Raspberry Pi OS Trixie) PyPI has no lgpio wheel: the kiosk extra leaves
lgpio out (pyproject.toml: ``lgpio>=0.2.2; python_version < '3.13'``) and the kiosk uses Debian's
python3-lgpio, seen through a ``--system-site-packages`` venv."""


def uses_debian_lgpio(version_info: tuple[int, ...] = tuple(sys.version_info[:2])) -> bool:
    """Does a kiosk venv on this Python see Debian's python3-lgpio (``--system-site-packages``)?

    The one rule for every kiosk venv: install-kiosk.sh's first install decides the same way
    (its ``lgpio_from_debian``), and the updater makes each release's venv with it."""
    return version_info[:2] >= DEBIAN_LGPIO_FROM


def venv_options(version_info: tuple[int, ...] = tuple(sys.version_info[:2])) -> list[str]:
    """``python -m venv`` options for a release's venv on this Python."""
    return ["--system-site-packages"] if uses_debian_lgpio(version_info) else []


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def linked(root: Path, name: str = CURRENT) -> str | None:
    """The version a link names, or None."""
    try:
        return os.readlink(Path(root) / name).rstrip("/").rsplit("/", 1)[-1]
    except (FileNotFoundError, OSError):
        return None


def switch(root: Path, version: str, name: str = CURRENT) -> None:
    """Point ``name`` at ``version`` atomically (rename of a temporary link) and durably."""
    root = Path(root)
    if not is_installed(root, version):
        raise FileNotFoundError(f"{root / version} is not a complete installation")
    tmp = root / f".{name}.tmp-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(version, tmp)  # relative: the root can move
    os.replace(tmp, root / name)
    _sync_dir(root)


def is_installed(root: Path, version: str) -> bool:
    return (Path(root) / version / INSTALLED_MARKER).is_file()


def mark_installed(root: Path, version: str, manifest_text: str = "") -> None:
    path = Path(root) / version / INSTALLED_MARKER
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(manifest_text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)


def adopt(root: Path, venv: Path, version: str, *, switch_links: bool = False, manifest_text: str = "") -> None:
    """Make an existing installation (the venv the first install made) ``<root>/<version>``:
    a link to it unless it is that directory already (install-kiosk.sh installs straight into
    ``<root>/<version>``), its marker (with ``manifest_text``, the verified manifest it was
    installed from, when known; written again with ``switch_links``), and ``current`` and ``stable`` pointing at it, when they
    name nothing yet or with ``switch_links`` (the installer ran again: this version is the one)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / version
    if not path.exists() and not path.is_symlink():
        path.symlink_to(Path(venv).resolve(), target_is_directory=True)
    if switch_links or manifest_text or not is_installed(root, version):
        mark_installed(root, version, manifest_text)  # the installer ran again: a new record, if any
    for name in (CURRENT, STABLE):
        if switch_links or linked(root, name) is None:
            switch(root, version, name)


def seed_files(cache: Path, wheels: Sequence[Path]) -> int:
    """Put wheels the first install used into the updater's cache (``<root>/.files/<sha256>``,
    hard links where it can), so a later release downloads only the files that changed."""
    import hashlib

    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    added = 0
    for wheel in wheels:
        digest = hashlib.sha256()
        with open(wheel, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        dest = cache / digest.hexdigest()
        if dest.exists():
            continue
        tmp = cache / f".{dest.name}.seed"
        try:
            os.link(wheel, tmp)
        except OSError:
            shutil.copyfile(wheel, tmp)
        os.replace(tmp, dest)
        added += 1
    return added


def installed_versions(root: Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and p.name not in (CURRENT, STABLE)
                  and (p / INSTALLED_MARKER).is_file())


def remove_version(root: Path, version: str) -> None:
    """Delete an installed version, never one a link names and never outside the root."""
    root = Path(root)
    if version in (linked(root, CURRENT), linked(root, STABLE)) or "/" in version or version.startswith("."):
        raise ValueError(f"{version} is in use or not a version")
    path = root / version
    if path.is_symlink():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


# ----------------------------------------------------------------- a small durable JSON file


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(path).read_text())
    except (FileNotFoundError, ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write-then-rename with fsync: a reader sees the old or the new content, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _sync_dir(path.parent)
