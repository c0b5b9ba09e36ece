"""The kiosk's software updater: a service of its own beside palaute-kiosk.

    palaute-kiosk-updater --config /etc/palaute/kiosk.toml      (runs from <root>/stable)

Where the target comes from: the kiosk's own authenticated config topic. The kiosk
process stores every config it applies in its state directory
(kiosk.state.save_station_config); the updater reads the ``release`` field there.
Nothing else can give it a target.

What it refuses (``update_state: failed`` with the reason, never retried for that
manifest): a target for another device, a manifest that is unsigned or signed by
another key than ``[updates] release_public_key``, one limited to other stations or
devices, one whose version differs from the target's, a release whose outbox
schema is older than the outbox file's, and any file whose sha256 differs.

The steps, each recorded in ``<state>/update-state.json`` before it starts, so a
power cut anywhere resumes or undoes it on the next boot:

1. download every file not already in the cache (``<root>/.files/<sha256>``), with
   HTTP Range resume of a ``.part`` file, and verify its sha256;
2. wait for the install window (by default: while the station is closed);
3. install into ``<root>/<version>``, a new venv beside the running one
   (``pip install --no-index --find-links``: only the verified files), check that it
   imports, then write its marker file; a directory without the marker is removed;
4. switch ``current`` atomically (kiosk.release_switch) and restart the kiosk
   through systemd (``[updates] restart_command``);
5. trial: the new version must prove itself healthy within ``health_timeout_s``:
   its kiosk process reports (``<state>/health.json``, written every few seconds
   by :class:`HealthReporter`) that it runs this version, is online, its outbox
   opens and its self-check passes. Then ``stable`` is switched too (committed).
   Otherwise ``current`` goes back to the previous version, the kiosk restarts, and
   the status says why (``rolled_back``). A version that cannot get healthy goes
   back at once instead of at the deadline: when systemd has restarted it
   ``crash_loop_restarts`` times (``restarts_command``), or when it reports that
   its outbox does not open or its self-check fails (those do not mend by waiting).

The kiosk process publishes the state in its status (``update_state``,
``update_version``, ``update_error``): :func:`status_fields`.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from palaute_wire.contract import ReleaseFile, ReleaseManifest, ReleaseTarget, StationConfig
from palaute_wire.errors import ManifestRefused
from palaute_wire.opening_hours import LOCAL_TZ, is_open

from . import release_switch as rs
from .config import KioskConfig
from .errors import UpdateRefused
from .state import station_config_path

_LOGGER = logging.getLogger(__name__)

STATE_FILE = "update-state.json"
HEALTH_FILE = "health.json"
FILES_DIR = ".files"
CRASH_POINTS = ("download", "install", "compile", "switch", "trial", "commit", "rollback")
CRASH_EXIT_CODE = 86
DOWNLOAD_CHUNK = 256 * 1024
DOWNLOAD_TIMEOUT_S = 60
TRIAL_POLL_S = 1.0
"""How often the health report of a version on trial is read (it commits within this of being healthy)."""
_LASTING = ("its outbox did not open", "its self-check failed")
"""What a fresh report of the version on trial can say that waiting does not mend: it goes back at once."""
WAKE_POLL_S = 1.0
"""How often, between steps, the updater looks whether the kiosk stored a new config (a stat)."""
HEALTH_FRESH_S = 30.0
"""A health report older than this does not count as "running"."""
NIGHT_WINDOW = (2, 5)
"""A station without opening hours counts as always open; its kiosk installs between 02 and 05 local time."""


# ----------------------------------------------------------------- state shared with the kiosk process


def state_path(config: KioskConfig) -> Path:
    return config.state.dir / STATE_FILE


def health_path(config: KioskConfig) -> Path:
    return config.state.dir / HEALTH_FILE


def status_fields(config: KioskConfig) -> dict[str, Any]:
    """``update_state``/``update_version``/``update_error`` for the kiosk's status."""
    if not config.updates.release_public_key:
        return {}
    state = rs.read_json(state_path(config)) or {}
    phase = state.get("phase", "idle")
    return {
        "update_state": phase,
        "update_version": state.get("version"),
        "update_error": (state.get("error") or None) and str(state["error"])[:500],
    }


def outbox_check(path: Path) -> tuple[bool, str]:
    """Does the outbox open, pass SQLite's quick check and have a schema this code reads?"""
    from .outbox import SCHEMA_VERSION

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            (result,) = db.execute("PRAGMA quick_check").fetchone()
            (schema,) = db.execute("PRAGMA user_version").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        return False, f"outbox does not open: {exc}"
    if result != "ok":
        return False, f"outbox check: {result}"
    if schema > SCHEMA_VERSION:
        return False, f"outbox schema {schema} is newer than this release's {SCHEMA_VERSION}"
    return True, "ok"


class HealthReporter:
    """In the kiosk process: writes ``health.json`` each tick, the proof the updater waits for."""

    def __init__(self, kiosk: Any) -> None:
        self.kiosk = kiosk
        self.path = health_path(kiosk.config)
        self._lock = threading.Lock()
        self._update_state = _mtime(state_path(kiosk.config))
        self.version = kiosk.health.software_version()
        self.outbox_ok, detail = outbox_check(kiosk.config.outbox.path)
        self.selftest_ok, self.selftest_detail = self._selftest(self.outbox_ok, detail)

    def _selftest(self, outbox_ok: bool, detail: str) -> tuple[bool, str]:
        if not outbox_ok:
            return False, detail
        if not self.kiosk.pinmap.all_pins():
            return False, "the pin map has no pins"
        return True, "ok"

    def __call__(self) -> None:
        """From the tick and from the uplink thread (a connection change): one writer at a time.
        When the updater's state changed since the last call (a commit, a rollback), the status
        goes out now: the rollout's next wave waits for the server to see it."""
        with self._lock:
            update_state = _mtime(state_path(self.kiosk.config))
            if update_state != self._update_state:
                self._update_state = update_state
                self.kiosk.uplink.send_status_soon()
            snapshot = self.kiosk.uplink.snapshot()
            rs.write_json(self.path, {
                "version": self.version, "pid": os.getpid(), "at": time.time(),
                "online": snapshot.connected, "outbox_ok": self.outbox_ok, "selftest_ok": self.selftest_ok,
                "detail": self.selftest_detail,
            })


# ----------------------------------------------------------------- checks


def check_target(config: KioskConfig, target: ReleaseTarget) -> ReleaseManifest:
    """The verified manifest of a target meant for this kiosk; UpdateRefused otherwise."""
    from palaute_wire import signing

    device = config.device
    if target.device_id != device.device_id:
        raise UpdateRefused(f"the release target is for {target.device_id}, this kiosk is {device.device_id}")
    key = config.updates.release_public_key
    if not key:
        raise UpdateRefused("this kiosk has no release_public_key in [updates]: it installs nothing")
    try:
        manifest = signing.verify(key, target.manifest, target.signature)
    except ManifestRefused as exc:
        raise UpdateRefused(str(exc)) from None
    if manifest.version != target.version:
        raise UpdateRefused(f"the target says {target.version} but the signed manifest is {manifest.version}")
    if not manifest.allows(device.station_id, device.device_id):
        raise UpdateRefused(f"release {manifest.version} is signed for other kiosks, not "
                            f"{device.station_id}/{device.device_id}")
    return manifest


def in_install_window(config: StationConfig, window: str, now: datetime | None = None) -> bool:
    """``any``: always; ``closed``: while the station is closed (no schedule: at night)."""
    if window == "any":
        return True
    now = now or datetime.now(UTC)
    hours = config.opening_hours
    if hours is None or not hours.days:  # no schedule (palaute_wire.opening_hours): at night
        local = now.astimezone(LOCAL_TZ)
        return NIGHT_WINDOW[0] <= local.hour < NIGHT_WINDOW[1]
    return not is_open(hours, now) and not is_open(hours, now + timedelta(minutes=10))


def wheel_fits(name: str, tag: str = f"cp{sys.version_info[0]}{sys.version_info[1]}") -> bool:
    """Can a Python with ``tag`` (``cp311``) install this wheel, by its file name's Python and ABI
    tags? A release for the Pi carries wheels for each Raspberry Pi OS Python (cp311 and cp313);
    a kiosk downloads only its own. The platform tag is not checked: a release is for the Pi."""
    parts = name.removesuffix(".whl").split("-")
    if len(parts) < 5:
        return True  # not a wheel name we understand: let pip decide
    pythons, abi = parts[-3].split("."), parts[-2]
    if any(not p.startswith("cp") for p in pythons):  # py3, py2.py3: pure Python
        return True
    mine = int(tag[3:]) if tag[2:3] == "3" and tag[3:].isdigit() else -1
    minors = [int(p[3:]) for p in pythons if p.startswith("cp3") and p[3:].isdigit()]
    if abi == "abi3":
        return any(m <= mine for m in minors)
    return tag in pythons


def files_for_me(manifest: ReleaseManifest) -> list[ReleaseFile]:
    """The manifest's files this kiosk's Python installs (see :func:`wheel_fits`)."""
    return [f for f in manifest.files if wheel_fits(f.name)]


def project_of(name: str) -> str:
    """A project's normalised name (PEP 503) from a wheel's file name or a distribution's Name."""
    return re.sub(r"[-_.]+", "-", name.split("-")[0] if name.endswith(".whl") else name).lower()


SITE_PACKAGES = Path("lib") / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
"""A release venv's site-packages, relative to the venv (every release runs this Python)."""


SERVER_ONLY_PACKAGES = frozenset({"fleet_server"})
"""Packages of the project's wheel that a kiosk never imports (the wheel is one for the whole
repository): not byte-compiled on the kiosk; three quarters of the wheel's code, most of an
update's install time on a Pi."""

CHECK_SCRIPT = """import compileall, os, sys
ok = all(compileall.compile_dir(p, quiet=1, workers=0) if os.path.isdir(p) else compileall.compile_file(p, quiet=1)
         for p in sys.argv[1:])
import kiosk.app, kiosk.updater
sys.exit(0 if ok else 'byte-compiling failed')
"""
"""Run by the new venv's Python before its marker is written: byte-compile the given paths (the
packages an update installed with ``pip --no-compile``), then import the kiosk and its updater."""


def _compiled_paths(wheel: Path, venv: Path) -> list[Path]:
    """Where a wheel's top-level packages and modules are in ``venv`` (what to byte-compile),
    without :data:`SERVER_ONLY_PACKAGES` and the wheel's metadata and data directories."""
    import zipfile

    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/", 1)[0] for name in zf.namelist()}
    site = venv / SITE_PACKAGES
    return sorted(site / top for top in tops if not top.endswith((".dist-info", ".data"))
                  and top not in SERVER_ONLY_PACKAGES and (top.endswith(".py") or "." not in top))


def installed_manifest(root: Path, version: str) -> ReleaseManifest | None:
    """The verified manifest an installed version was installed from (its marker's text), or None
    (a marker without one: a first install adopted without a signed wheelhouse)."""
    try:
        return ReleaseManifest.model_validate_json((root / version / rs.INSTALLED_MARKER).read_text())
    except (OSError, ValueError):
        return None


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


# ----------------------------------------------------------------- the updater


@dataclass
class Counters:
    downloaded_bytes: int = 0
    files_fetched: int = 0
    reused_files: int = 0
    download_s: float = 0.0
    install_s: float = 0.0


class Updater:
    """One kiosk's updater. ``step()`` does whatever is due now and returns; ``run()`` loops."""

    def __init__(self, config: KioskConfig, *, clock: Callable[[], float] = time.time,
                 python: str = sys.executable, crash_at: str | None = None) -> None:
        self.config = config
        self.crash_at = crash_at
        self.root = config.updates.releases_root
        self.clock = clock
        self.python = python
        self.counters = Counters()
        self.state: dict[str, Any] = rs.read_json(state_path(config)) or {"phase": "idle"}
        self._booted = False

    # -- state ------------------------------------------------------------------

    def _crash_point(self, name: str) -> None:
        """``--crash-at NAME`` ends the process here at once, as a power cut would (the tests)."""
        if self.crash_at == name:
            _LOGGER.warning("crash point %s: exiting without cleanup", name)
            os._exit(CRASH_EXIT_CODE)

    def _save(self, **changes: Any) -> None:
        self.state.update(changes)
        rs.write_json(state_path(self.config), self.state)

    @property
    def phase(self) -> str:
        return self.state.get("phase", "idle")

    def _target(self) -> tuple[StationConfig, ReleaseTarget] | None:
        try:
            config = StationConfig.model_validate_json(station_config_path(self.config.state.dir).read_bytes())
        except (OSError, ValueError):
            return None
        return (config, config.release) if config.release is not None else None

    # -- the loop -----------------------------------------------------------------

    def run(self, stop: Callable[[], bool] = lambda: False) -> int:
        while not stop():
            try:
                if self.step() == "exit":
                    return 0
            except Exception:  # an updater that dies leaves the kiosk on its version; keep trying
                _LOGGER.exception("update step failed; trying again later")
            self._pause(stop)
        return 0

    def _pause(self, stop: Callable[[], bool]) -> None:
        """Wait for the next step: ``check_interval_s``, but at most :data:`TRIAL_POLL_S` while a
        version is on trial (its health report is a file: cheap to read), and no longer than
        :data:`WAKE_POLL_S` after the kiosk stored a new config (a new target starts at once)."""
        interval = self.config.updates.check_interval_s
        if self.phase == "trial":
            interval = min(interval, TRIAL_POLL_S)
        path = station_config_path(self.config.state.dir)
        seen = _mtime(path)
        until = time.monotonic() + interval
        while not stop() and (left := until - time.monotonic()) > 0:
            time.sleep(min(left, WAKE_POLL_S))
            if _mtime(path) != seen:
                return

    def step(self) -> str:
        """Do what is due; returns the phase afterwards (or "exit" after a commit, when configured)."""
        if not self._booted:
            self._booted = True
            self._recover()
        if self.phase == "trial":
            return self._supervise()
        found = self._target()
        if found is None:
            if self.phase in ("waiting", "downloading"):
                self._save(phase="idle", error=None)  # the target was taken back before the switch
            return self.phase
        station_config, target = found
        running = rs.linked(self.root, rs.CURRENT)
        if target.version == running:
            if self.phase in ("idle", "waiting"):
                self._save(phase="committed" if self.state.get("version") == running else "idle")
            return self.phase
        fingerprint = hashlib.sha256(target.model_dump_json().encode()).hexdigest()
        if fingerprint in self.state.get("refused", []):
            return self.phase  # this exact target failed or was refused before: not again
        try:
            manifest = check_target(self.config, target)
            self._check_outbox_schema(manifest)
        except UpdateRefused as exc:
            return self._refuse(target, fingerprint, str(exc))
        if self.phase not in ("downloading", "waiting", "installing") or self.state.get("version") != target.version:
            self._save(phase="downloading", version=target.version, error=None, fingerprint=fingerprint,
                       rollout_id=target.rollout_id)
        try:
            self._download(target, manifest)
        except UpdateRefused as exc:
            return self._refuse(target, fingerprint, str(exc))
        except (OSError, urllib.error.URLError) as exc:
            _LOGGER.warning("download of %s interrupted (%s); resuming later", target.version, exc)
            return self.phase
        if not in_install_window(station_config, target.install_window, datetime.fromtimestamp(self.clock(), UTC)):
            if self.phase != "waiting":
                self._save(phase="waiting")
            return self.phase
        self._save(phase="installing")
        try:
            self._install(target.version, manifest, self._stage(manifest))
        except UpdateRefused as exc:
            return self._refuse(target, fingerprint, str(exc))
        except OSError as exc:  # a disk error, a full disk: the old version runs on; try again later
            _LOGGER.error("install of %s failed (%s); trying again later", target.version, exc)
            return self.phase
        return self._switch(target)

    # -- steps ------------------------------------------------------------------

    def _refuse(self, target: ReleaseTarget, fingerprint: str, reason: str) -> str:
        _LOGGER.error("update to %s refused: %s", target.version, reason)
        refused = (self.state.get("refused", []) + [fingerprint])[-20:]
        self._save(phase="failed", version=target.version, error=reason, refused=refused)
        return self.phase

    def _check_outbox_schema(self, manifest: ReleaseManifest) -> None:
        path = self.config.outbox.path
        if not path.exists():
            return
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            try:
                (schema,) = db.execute("PRAGMA user_version").fetchone()
            finally:
                db.close()
        except sqlite3.Error:
            return
        if manifest.outbox_schema < schema:
            raise UpdateRefused(f"release {manifest.version} reads outbox schema {manifest.outbox_schema}, "
                                f"the outbox is at {schema}: it would not read the stored answers")

    def _download(self, target: ReleaseTarget, manifest: ReleaseManifest) -> None:
        """Every file not in the cache yet into it, by hash (resuming .part files), verified."""
        cache = self.root / FILES_DIR
        cache.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        for f in files_for_me(manifest):
            dest = cache / f.sha256
            if dest.is_file():
                continue
            part = cache / f"{f.sha256}.part"
            self._fetch(target.url + f.name, part, f.size)
            if sha256_file(part) != f.sha256:
                part.unlink()
                raise UpdateRefused(f"{f.name}: the downloaded file does not match its sha256 in the manifest")
            os.replace(part, dest)
            self.counters.files_fetched += 1
        self.counters.download_s += time.monotonic() - started

    def _stage(self, manifest: ReleaseManifest) -> Path:
        """A directory with the release's files under their names (links into the cache), each
        checked against the manifest once more: pip sees nothing else."""
        cache = self.root / FILES_DIR
        staging = self.root / ".staging" / manifest.version
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        mine = files_for_me(manifest)
        for f in mine:
            if sha256_file(cache / f.sha256) != f.sha256:
                (cache / f.sha256).unlink()
                raise OSError(f"{f.name}: the stored copy no longer matches its sha256; fetching it again")
            os.link(cache / f.sha256, staging / f.name)
        self.counters.reused_files = len(mine) - self.counters.files_fetched
        return staging

    def _fetch(self, url: str, part: Path, size: int) -> None:
        have = part.stat().st_size if part.exists() else 0
        if have > size:
            part.unlink()
            have = 0
        if have == size:
            return
        request = urllib.request.Request(url)
        secret = self.config.broker.secret() or ""
        token = base64.b64encode(f"{self.config.device.device_id}:{secret}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        if have:
            request.add_header("Range", f"bytes={have}-")
        context = None
        if url.startswith("https://"):
            ca = self.config.updates.ca_file
            context = ssl.create_default_context(cafile=str(ca) if ca else None)
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S, context=context) as response:
            mode = "ab" if have and response.status == 206 else "wb"
            with open(part, mode) as out:
                while chunk := response.read(DOWNLOAD_CHUNK):
                    out.write(chunk)
                    self.counters.downloaded_bytes += len(chunk)
                    if self.crash_at == "download":
                        out.flush()
                        os.fsync(out.fileno())
                        self._crash_point("download")
                out.flush()
                os.fsync(out.fileno())

    def _install(self, version: str, manifest: ReleaseManifest, staging: Path) -> None:
        target = self.root / version
        if rs.is_installed(self.root, version):
            return
        if target.is_symlink():
            target.unlink()
        elif target.exists():
            shutil.rmtree(target)  # a half-made venv from before a power cut
        started = time.monotonic()
        cloned = self._clone_running(target)
        if not cloned:
            # With its own pip (ensurepip, offline): the new version's updater installs the next one.
            self._run([self.python, "-m", "venv", *rs.venv_options(), str(target)], "create the venv")
        self._crash_point("install")
        python = str(target / "bin" / "python")
        pip = [python, "-m", "pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check", "-q"]
        changed = self._changed_files(target, manifest) if cloned else None
        if changed is None:
            self._run([*pip, "--find-links", str(staging), *manifest.requirements], "install the release")
            compile_paths: list[str] = []
        else:
            # Only the wheels whose sha256 the running release was not installed from, each in
            # place of its project's installed copy; byte-compiled below, the kiosk's part only.
            if changed:
                self._run([*pip, "--no-deps", "--force-reinstall", "--no-compile",
                           *(str(staging / name) for name in changed)], "install the release")
            compile_paths = [str(p) for name in changed for p in _compiled_paths(staging / name, target)]
        self._crash_point("compile")
        self._run([python, "-c", CHECK_SCRIPT, *compile_paths], "import the new version")
        from palaute_wire.signing import manifest_text

        rs.mark_installed(self.root, version, manifest_text(manifest))
        self.counters.install_s += time.monotonic() - started
        shutil.rmtree(staging, ignore_errors=True)

    def _clone_running(self, target: Path) -> bool:
        """Start the new venv with hard links to the running release's installed packages, so pip
        only installs what changed (an update of the project alone: one wheel, seconds instead of
        minutes on a Pi). Only from a release this updater installed or adopted (a real directory
        with its marker); links never change the running copy: pip and the byte-compiler replace
        files (a new file renamed over the link), they never edit one. False (and nothing left
        behind) when it cannot be done; then the venv is made from scratch."""
        running = rs.linked(self.root, rs.CURRENT)
        if running is None or not rs.is_installed(self.root, running) or (self.root / running).is_symlink():
            return False
        source = self.root / running / SITE_PACKAGES
        if not source.is_dir():
            return False
        try:
            self._run([self.python, "-m", "venv", "--without-pip", *rs.venv_options(), str(target)],
                      "create the venv")
            # cp -al: one native process instead of a Python walk over ~10,000 files (minutes under qemu).
            shutil.rmtree(target / SITE_PACKAGES, ignore_errors=True)  # venv made it empty
            self._run(["cp", "-al", str(source), str(target / SITE_PACKAGES)], "link the running packages")
        except (OSError, UpdateRefused) as exc:
            _LOGGER.info("new venv from scratch (linking %s's packages failed: %s)", running, exc)
            shutil.rmtree(target, ignore_errors=True)
            return False
        return True

    def _changed_files(self, target: Path, manifest: ReleaseManifest) -> list[str] | None:
        """The new release's files (names) that the running release was not installed from, when
        each replaces an installed project of the same name; None when pip must resolve the whole
        release instead (a dependency added or removed, or the running release's manifest unknown).

        The running release's marker holds the manifest it was installed from (verified then),
        so a file with the same sha256 is the same file: its installed copy, linked, is kept."""
        running = rs.linked(self.root, rs.CURRENT) or ""
        before = installed_manifest(self.root, running)
        if before is None:
            return None
        old, new = files_for_me(before), files_for_me(manifest)
        if {project_of(f.name) for f in old} != {project_of(f.name) for f in new}:
            return None
        from importlib import metadata

        site = str(target / SITE_PACKAGES)
        installed = {project_of(d.metadata["Name"] or "") for d in metadata.distributions(path=[site])}
        shas = {f.sha256 for f in old}
        changed = [f.name for f in new if f.sha256 not in shas]
        if any(project_of(name) not in installed for name in changed):
            return None
        return changed

    def _run(self, cmd: list[str], what: str) -> None:
        # Only the verified files: no pip config (extra indexes, find-links) may add any.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
        env["PIP_CONFIG_FILE"] = os.devnull
        result = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-2:])[:300]
            raise UpdateRefused(f"could not {what}: {tail}")

    def _switch(self, target: ReleaseTarget) -> str:
        previous = rs.linked(self.root, rs.CURRENT)
        n = self.counters
        _LOGGER.info("release %s: downloaded %d bytes in %.1f s (%d files already here), installed in %.1f s",
                     target.version, n.downloaded_bytes, n.download_s, n.reused_files, n.install_s)
        measured = {"downloaded_bytes": n.downloaded_bytes, "reused_files": n.reused_files,
                    "download_s": round(n.download_s, 2), "install_s": round(n.install_s, 2)}
        self.counters = Counters()
        self._save(phase="switching", previous=previous, measured=measured, timeout_s=target.health_timeout_s)
        rs.switch(self.root, target.version, rs.CURRENT)
        self._crash_point("switch")
        self._begin_trial(target.health_timeout_s)
        self._crash_point("trial")
        self._restart_on_trial()
        _LOGGER.info("switched %s -> %s; on trial for %.0f s", previous, target.version, target.health_timeout_s)
        return self.phase

    def _begin_trial(self, timeout_s: float) -> None:
        now = self.clock()
        self._save(phase="trial", trial_started=now, deadline=now + timeout_s, timeout_s=timeout_s)

    def _restart(self) -> None:
        command = list(self.config.updates.restart_command)
        try:
            subprocess.run(command, check=False, timeout=60, capture_output=True)
        except (OSError, subprocess.TimeoutExpired) as exc:
            _LOGGER.error("restart command %s failed: %s", command, exc)

    def _restart_on_trial(self) -> None:
        """Restart into the version on trial and note systemd's restart count from there on."""
        self._restart()
        self._save(restarts_base=self._restarts())

    def _restarts(self) -> int | None:
        """How many times systemd has restarted the kiosk by itself; None when it cannot say."""
        command = list(self.config.updates.restarts_command)
        if not command:
            return None
        try:
            done = subprocess.run(command, check=False, timeout=10, capture_output=True, text=True)
            return int(done.stdout.strip()) if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError):
            return None

    def _crash_loop(self) -> int | None:
        """The restarts since the trial began, when there were enough to give up now."""
        base, now = self.state.get("restarts_base"), self._restarts()
        if base is None or now is None:
            return None
        restarts = now - base
        return restarts if restarts >= self.config.updates.crash_loop_restarts else None

    def _health_problem(self, version: str) -> str | None:
        """None when the new version proved itself healthy; otherwise what is missing."""
        report = rs.read_json(health_path(self.config))
        started = self.state.get("trial_started", 0)
        if report is None or report.get("version") != version or report.get("at", 0) < started:
            return "it never reported running (it did not start, or crashed at start)"
        if self.clock() - report.get("at", 0) > HEALTH_FRESH_S:
            return "it stopped reporting (not running)"
        if not report.get("outbox_ok"):
            return f"{_LASTING[0]} ({report.get('detail')})"
        if not report.get("selftest_ok"):
            return f"{_LASTING[1]} ({report.get('detail')})"
        if not report.get("online"):
            return "it did not get online (no broker connection)"
        return None

    def _supervise(self) -> str:
        version = self.state["version"]
        problem = self._health_problem(version)
        if problem is None:
            return self._commit(version)
        elapsed = self.clock() - self.state.get("trial_started", self.clock())
        if problem.startswith(_LASTING):
            return self._rollback(f"{version} is not healthy after {elapsed:.0f} s: {problem}")
        restarts = self._crash_loop()
        if restarts is not None:
            return self._rollback(f"{version} was restarted {restarts} times in {elapsed:.0f} s (it keeps "
                                  f"crashing): {problem}")
        if self.clock() < self.state.get("deadline", 0):
            return self.phase
        timeout = self.state.get("timeout_s", 0)
        return self._rollback(f"{version} did not prove itself healthy within {timeout:.0f} s: {problem}")

    def _commit(self, version: str) -> str:
        rs.switch(self.root, version, rs.STABLE)
        self._crash_point("commit")
        self._save(phase="committed", error=None)
        _LOGGER.info("release %s is healthy: committed", version)
        self._prune()
        return "exit" if self.config.updates.exit_after_commit else self.phase

    def _rollback(self, reason: str) -> str:
        previous = self.state.get("previous") or rs.linked(self.root, rs.STABLE)
        _LOGGER.error("rolling back to %s: %s", previous, reason)
        self._save(rollback_reason=reason)
        if previous and rs.is_installed(self.root, previous):
            rs.switch(self.root, previous, rs.CURRENT)
        self._crash_point("rollback")
        refused = (self.state.get("refused", []) + [self.state.get("fingerprint", "")])[-20:]
        self._save(phase="rolled_back", error=reason, refused=refused, rollback_reason=None)
        self._restart()
        return self.phase

    def _recover(self) -> None:
        """After a start (a boot, a crash, a power cut): finish or undo what was under way."""
        phase = self.phase
        version = self.state.get("version")
        if phase == "switching":
            # Cut between recording the switch and starting the trial: the link names
            # either version, both are installed; start the trial of the new one again.
            if version and rs.is_installed(self.root, version):
                rs.switch(self.root, version, rs.CURRENT)
                self._begin_trial(self.state.get("timeout_s") or 300)
                self._crash_point("trial")
                self._restart_on_trial()
            else:
                self._save(phase="failed", error="interrupted before the switch")
        elif phase == "trial" and (self.state.get("rollback_reason") or rs.linked(self.root, rs.CURRENT) != version):
            self._rollback(self.state.get("rollback_reason") or f"interrupted while switching back from {version}")
        elif phase == "trial":
            # The trial starts again from now (the time without power does not count), and the
            # kiosk is restarted: if only the updater died, the old version may still be running.
            self._begin_trial(self.state.get("timeout_s") or 300)
            self._restart_on_trial()
        elif phase == "installing" and version and not rs.is_installed(self.root, version):
            path = self.root / version
            if path.exists() and not path.is_symlink() and version != rs.linked(self.root, rs.CURRENT):
                shutil.rmtree(path, ignore_errors=True)
        if rs.linked(self.root, rs.CURRENT) is None and rs.linked(self.root, rs.STABLE):
            rs.switch(self.root, rs.linked(self.root, rs.STABLE) or "", rs.CURRENT)

    def _prune(self) -> None:
        """Keep the running and the previous version; drop older ones and unused cached files."""
        keep = {rs.linked(self.root, rs.CURRENT), rs.linked(self.root, rs.STABLE), self.state.get("previous")}
        for version in rs.installed_versions(self.root):
            if version not in keep and not (self.root / version).is_symlink():
                rs.remove_version(self.root, version)
        wanted: set[str] = set()
        for kept in keep:
            manifest = installed_manifest(self.root, kept) if kept else None
            if manifest is not None:
                wanted.update(f.sha256 for f in manifest.files)
        cache = self.root / FILES_DIR
        if cache.is_dir() and wanted:
            for path in cache.iterdir():
                if path.name not in wanted and not path.name.endswith(".part"):
                    path.unlink()


WHEELHOUSE_MANIFEST = ("manifest.json", "manifest.sig")
"""A signed release directory's manifest and signature (fleet_server.fleet.releases.sign_release)."""


def wheelhouse_manifest(config: KioskConfig, wheelhouse: Path, version: str) -> str:
    """The first install's wheelhouse manifest text when it is signed with this kiosk's release key
    and names ``version``: the adopted release's marker then records what it was installed from,
    so the first update installs only the wheels that changed. "" otherwise (pip then resolves
    the whole first update)."""
    from palaute_wire import signing

    key = config.updates.release_public_key
    try:
        text, signature = ((wheelhouse / name).read_text() for name in WHEELHOUSE_MANIFEST)
        if not key:
            raise ManifestRefused("no release_public_key")
        manifest = signing.verify(key, text, signature.strip())
    except (OSError, ValueError) as exc:  # ManifestRefused is a ValueError
        _LOGGER.info("the wheelhouse's manifest is not used (%s)", exc)
        return ""
    return text if manifest.version == version else ""


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .config import ConfigError, load_config

    parser = argparse.ArgumentParser(prog="palaute-kiosk-updater", description="Palaute kiosk software updater")
    parser.add_argument("--config", "-c", default="/etc/palaute/kiosk.toml")
    parser.add_argument("--once", action="store_true", help="one step, then exit")
    parser.add_argument("--adopt", action="store_true",
                        help="make the venv this runs from the installed release (<root>/<version>, current, stable)")
    parser.add_argument("--wheelhouse", type=Path, help="with --adopt: the first install's wheelhouse, kept by hash "
                        "so that updates download only what changed")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("--crash-at", choices=CRASH_POINTS, help=argparse.SUPPRESS)  # power-cut tests
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not config.updates.release_public_key:
        _LOGGER.warning("no [updates] release_public_key: this kiosk installs no updates")
    if args.adopt:
        from importlib import metadata

        version = metadata.version("palaute")
        root = config.updates.releases_root
        text = wheelhouse_manifest(config, args.wheelhouse, version) if args.wheelhouse else ""
        rs.adopt(root, Path(sys.prefix), version, switch_links=True, manifest_text=text)
        seeded = rs.seed_files(root / FILES_DIR, sorted(args.wheelhouse.glob("*.whl"))) if args.wheelhouse else 0
        print(f"{root}/{version} ({Path(sys.prefix).resolve()}) is installed; current and stable -> "
              f"{rs.linked(root)}; {seeded} wheels kept for updates")
        return 0
    updater = Updater(config, crash_at=args.crash_at)
    if args.once:
        updater.step()
        return 0
    return updater.run()


if __name__ == "__main__":
    sys.exit(main())
