"""Kiosk releases: build the wheelhouse, sign its manifest (off the server), store, list, withdraw.

The life of a release:

1. ``build_release`` (``palaute-server release build``): the kiosk wheel from this
   repository and, for the Pi, the kiosk wheelhouse of fleet_server.fleet.wheelhouse
   (aarch64 wheels for cp311 and cp313, hash-pinned requirements per Python: the same
   directory provisions a first install), plus ``release.json`` (version, what pip
   installs, the outbox schema).
2. ``sign_release`` (``release sign``, on the operator's machine with the key file):
   ``manifest.json`` with the sha256 and size of every wheel, and ``manifest.sig``.
3. ``add_release`` (``release add``, on the server): checks the signature against
   ``settings.release_public_key`` and every file against the manifest, copies the
   files into the store (``release_store_dir/<sha256>``, shared between releases,
   so an update that changes only the kiosk wheel stores and serves one new file)
   and records it.

The server never holds the private key: it can refuse, withdraw and serve
releases, never make one a kiosk would install.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.core.clock import utcnow
from fleet_server.core.errors import ReleaseError, WheelhouseError
from fleet_server.core.i18n import gettext as _
from fleet_server.fleet import wheelhouse
from fleet_server.models import Release, ReleaseFile
from palaute_wire import contract as c
from palaute_wire import signing
from palaute_wire.errors import ManifestRefused

_LOGGER = logging.getLogger(__name__)

RELEASE_INFO = "release.json"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"

@dataclass(frozen=True)
class BuiltRelease:
    version: str
    directory: Path
    files: tuple[str, ...]
    requirements: tuple[str, ...]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise ReleaseError(_("pip {command} failed:").format(command=args[0]) + f"\n{tail}")


def _outbox_schema(source: Path) -> int:
    match = re.search(r"^SCHEMA_VERSION\s*=\s*(\d+)", (source / "kiosk" / "outbox.py").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 1


def build_release(
    source: Path,
    out: Path,
    *,
    version: str | None = None,
    python_versions: Sequence[str] | None = None,
    extras: Sequence[str] = ("kiosk",),
    extra_requirements: Sequence[str] = (),
    download_cache: Path | None = None,
) -> BuiltRelease:
    """Build the kiosk wheel from ``source`` (a copy, so ``version`` can be set) and put it and
    its dependencies as wheels into ``out``.

    For the Pi (``python_versions``, e.g. ``PI_PYTHONS``): ``out`` is the kiosk wheelhouse
    (fleet_server.fleet.wheelhouse: aarch64 wheels per Python with the environment markers
    evaluated for that Python, and ``requirements-cpXYZ.txt``), so the same directory is
    also what ``device provision --wheelhouse`` puts into a first-install bundle. Without
    them: this machine's wheels (the tests' simulated kiosks), with ``extras`` and
    ``extra_requirements`` to choose what the kiosk installs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if any(out.glob("*.whl")):
        raise ReleaseError(_("{path} already holds wheels: build into an empty directory").format(path=out))
    try:
        if python_versions:
            if tuple(extras) != ("kiosk",) or extra_requirements:
                raise ReleaseError(_("a release for the Pi installs palaute[kiosk]: no other extras or requirements"))
            house = wheelhouse.build_wheelhouse(source, out, python_versions, download_cache=download_cache,
                                                version=version)
            for tag, why in house.missing.items():
                _LOGGER.warning("release without %s: %s", tag, why)
            wheel = house.kiosk_wheel
        else:
            wheel = wheelhouse.build_kiosk_wheel(source, out, version=version)
    except WheelhouseError as exc:
        raise ReleaseError(str(exc)) from None
    built_version = wheel.name.split("-")[1]
    extra = f"[{','.join(extras)}]" if extras else ""
    requirements = (f"palaute{extra}=={built_version}", *extra_requirements)
    if not python_versions:
        with tempfile.TemporaryDirectory(prefix="palaute-deps-") as tmp:
            # Resolve against the wheel just built; pip copies that wheel too: drop the copy.
            _pip("download", "-q", "-d", tmp, "--only-binary=:all:", f"palaute{extra} @ {wheel.resolve().as_uri()}",
                 *extra_requirements)
            for path in Path(tmp).glob("*.whl"):
                if path.name != wheel.name:
                    shutil.move(str(path), out / path.name)
            sdists = [p.name for p in Path(tmp).iterdir() if not p.name.endswith(".whl")]
            if sdists:
                raise ReleaseError(_("dependencies without wheels: {names}").format(names=", ".join(sdists)))
    info = {"version": built_version, "requirements": list(requirements), "outbox_schema": _outbox_schema(source)}
    (out / RELEASE_INFO).write_text(json.dumps(info, indent=2) + "\n")
    files = tuple(sorted(p.name for p in out.glob("*.whl")))
    _LOGGER.info("built release %s: %d wheels in %s", built_version, len(files), out)
    return BuiltRelease(built_version, out, files, requirements)


def sign_release(
    directory: Path, key_file: Path, *, stations: Sequence[str] = (), devices: Sequence[str] = ()
) -> c.ReleaseManifest:
    """Write ``manifest.json`` (every wheel's sha256 and size) and ``manifest.sig`` into a
    built release directory, signed with the operator's key file."""
    directory = Path(directory)
    try:
        info = json.loads((directory / RELEASE_INFO).read_text())
    except FileNotFoundError:
        raise ReleaseError(_("{path} has no {file}: build it with: {command}").format(
            path=directory, file=RELEASE_INFO, command="palaute-server release build")) from None
    try:
        key = signing.load_private_key(key_file)
    except (OSError, ValueError) as exc:
        raise ReleaseError(_("cannot read the signing key {path}: {error}").format(path=key_file, error=exc)) from None
    files = [
        c.ReleaseFile(name=p.name, sha256=sha256_file(p), size=p.stat().st_size)
        for p in sorted(directory.glob("*.whl"))
    ]
    manifest = c.ReleaseManifest(
        version=info["version"], requirements=tuple(info["requirements"]), files=tuple(files),
        outbox_schema=info.get("outbox_schema", 1), stations=tuple(stations), devices=tuple(devices),
        created_at=utcnow(),
    )
    text = signing.manifest_text(manifest)
    (directory / MANIFEST).write_text(text)
    (directory / SIGNATURE).write_text(signing.sign(key, text) + "\n")
    return manifest


def store_path(store: Path, sha256: str) -> Path:
    return Path(store) / sha256[:2] / sha256


def add_release(session: Session, store: Path, public_key: str | None, directory: Path,
                *, by: str | None = None) -> Release:
    """Verify a signed release directory and put it in the store and the database."""
    if not public_key:
        raise ReleaseError(_("no release public key is configured ({setting}): the server cannot check who signed "
                             "the release").format(setting="PALAUTE_RELEASE_PUBLIC_KEY"))
    directory = Path(directory)
    try:
        text = (directory / MANIFEST).read_text()
        signature = (directory / SIGNATURE).read_text().strip()
    except FileNotFoundError as exc:
        raise ReleaseError(_("{path} is missing: sign the release first ({command})").format(
            path=exc.filename, command="palaute-server release sign")) from None
    try:
        manifest = signing.verify(public_key, text, signature)
    except ManifestRefused as exc:
        raise ReleaseError(_("refused: {reason}").format(reason=exc)) from None
    if session.get(Release, manifest.version) is not None:
        raise ReleaseError(_("release {version} exists already (releases are never replaced)").format(
            version=manifest.version))
    for f in manifest.files:
        path = directory / f.name
        if not path.is_file():
            raise ReleaseError(_("{file} is in the manifest but not in {path}").format(file=f.name, path=directory))
        if path.stat().st_size != f.size or sha256_file(path) != f.sha256:
            raise ReleaseError(_("{file} does not match its hash in the manifest").format(file=f.name))
    for f in manifest.files:
        dest = store_path(store, f.sha256)
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".tmp")
            shutil.copyfile(directory / f.name, tmp)
            os.replace(tmp, dest)
    release = Release(version=manifest.version, manifest=text, signature=signature,
                      total_bytes=sum(f.size for f in manifest.files), added_by=by)
    session.add(release)
    session.add_all(ReleaseFile(release_version=manifest.version, name=f.name, sha256=f.sha256, size=f.size)
                    for f in manifest.files)
    session.flush()
    return release


def list_releases(session: Session, *, include_withdrawn: bool = True) -> list[Release]:
    query = select(Release).order_by(Release.added_at.desc(), Release.version.desc())
    if not include_withdrawn:
        query = query.where(Release.withdrawn_at.is_(None))
    return list(session.scalars(query))


def release_files(session: Session, version: str) -> list[ReleaseFile]:
    return list(session.scalars(select(ReleaseFile).where(ReleaseFile.release_version == version)
                                .order_by(ReleaseFile.name)))


def withdraw_release(session: Session, version: str, reason: str = "") -> Release:
    """Stop offering a release: its files are no longer served and rollouts of it stop."""
    from fleet_server.fleet.rollouts import abort_rollouts_of

    release = session.get(Release, version)
    if release is None:
        raise KeyError(version)
    if release.withdrawn_at is None:
        release.withdrawn_at = utcnow()
        release.withdrawn_reason = reason
        abort_rollouts_of(session, version, f"release {version} withdrawn" + (f": {reason}" if reason else ""))
    return release


def manifest_of(release: Release) -> c.ReleaseManifest:
    return c.ReleaseManifest.model_validate_json(release.manifest)
