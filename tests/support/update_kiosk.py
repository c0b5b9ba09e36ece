"""Simulated kiosks for the update tests: a releases directory, a kiosk.toml and a systemd stand-in.

The stand-in does for two "units" what systemd does on a Pi (deploy/systemd):
``palaute-kiosk`` runs ``<root>/current/bin/palaute-kiosk --simulate`` and
``palaute-kiosk-updater`` runs ``<root>/stable/bin/python -m kiosk.updater``; both are
started again when they exit (Restart=always, RestartSec 0.5 s); the updater's
restart command (``touch <dir>/restart-request``) restarts the kiosk unit, as
``systemctl restart palaute-kiosk.service`` would, and ``<dir>/kiosk-restarts`` counts the
kiosk's own exits it restarted, as systemd's NRestarts does (the updater's ``restarts_command``). Each unit is a process group led by
tests/support/unit_scope.py (systemd's control group), started through the ``processes``
fixture: nothing a unit starts outlives it or pytest. A power cut is ``kill -9`` of both groups.

The first installed version, ``0.1.0``, is this test run's own venv (an editable
install of the worktree) linked into the releases directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from kiosk import release_switch as rs
from tests.support.processes import Processes

VENV = Path(sys.prefix)
BASE_VERSION = "0.1.0"


def make_kiosk_dir(base: Path, station: str, device: str, secret: str, broker_url: str, public_key: str) -> Path:
    """A kiosk's files: kiosk.toml, state, outbox and releases/{0.1.0 -> this venv, current, stable}."""
    base.mkdir(parents=True, exist_ok=True)
    root = base / "releases"
    rs.adopt(root, VENV, BASE_VERSION)  # as `palaute-kiosk-updater --adopt` does after a first install
    (base / "secret").write_text(secret)
    (base / "kiosk.toml").write_text(f"""
[device]
station_id = "{station}"
device_id = "{device}"

[broker]
url = "{broker_url}"
username = "{device}"
password_file = "{base / 'secret'}"
heartbeat_s = 1
reconnect_min_s = 0.2
reconnect_max_s = 1

[outbox]
path = "{base / 'outbox.db'}"

[state]
dir = "{base / 'state'}"

[updates]
release_public_key = "{public_key}"
releases_root = "{root}"
restart_command = ["touch", "{base / 'restart-request'}"]
restarts_command = ["cat", "{base / 'kiosk-restarts'}"]
check_interval_s = 0.5

[simulate]
presses_per_minute = 60
clock_synced = true
""")
    return base


UNIT_SCOPE = Path(__file__).with_name("unit_scope.py")


def start_unit(processes: Processes, argv: list[str], **popen: Any) -> subprocess.Popen:
    """Start ``argv`` as a unit: through the processes fixture (it dies with pytest), in a process
    group of its own with tests/support/unit_scope.py leading it, so what it starts (the updater's
    pip) goes down with it, on a stop, a power cut, or pytest killed outright."""
    return processes.start([sys.executable, str(UNIT_SCOPE), *argv], start_new_session=True, **popen)


def kill_unit(proc: subprocess.Popen) -> None:
    """A power cut for one unit: SIGKILL to its whole process group at once."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class SystemdStandIn:
    """Keeps one kiosk's two units running from the links, like systemd with Restart=always."""

    def __init__(self, base: Path, processes: Processes, units: tuple[str, ...] = ("kiosk", "updater")) -> None:
        self.base = base
        self.processes = processes
        self.root = base / "releases"
        self.procs: dict[str, subprocess.Popen | None] = dict.fromkeys(units)
        self.starts = {"kiosk": 0, "updater": 0}
        self.restarts = 0
        (base / "kiosk-restarts").write_text("0\n")
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _command(self, unit: str) -> list[str]:
        config = str(self.base / "kiosk.toml")
        if unit == "kiosk":
            return [str(self.root / "current/bin/palaute-kiosk"), "--config", config, "--simulate", "-v"]
        return [str(self.root / "stable/bin/python"), "-m", "kiosk.updater", "--config", config, "-v"]

    def _start(self, unit: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1", KIVY_NO_FILELOG="1")
        log = self.base / f"{unit}.log"
        with open(log, "a") as f:
            f.write(f"--- start {self.starts[unit] + 1}: {' '.join(self._command(unit))}\n")
        self.procs[unit] = start_unit(self.processes, self._command(unit), log=log, env=env, cwd=self.base)
        self.starts[unit] += 1

    def _kill(self, unit: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs[unit]
        if proc is not None:
            if sig == signal.SIGKILL:
                kill_unit(proc)
            self.processes.stop(proc)
        self.procs[unit] = None

    def _run(self) -> None:
        request = self.base / "restart-request"
        while not self._stop.wait(0.2):
            if self._paused.is_set():
                continue
            with self._lock:
                if request.exists():
                    request.unlink()
                    self._kill("kiosk")
                for unit, proc in self.procs.items():
                    if proc is not None and proc.poll() is not None and unit == "kiosk":
                        self.restarts += 1
                        (self.base / "kiosk-restarts").write_text(f"{self.restarts}\n")
                    if proc is None or proc.poll() is not None:
                        self._start(unit)

    def start(self) -> SystemdStandIn:
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"standin-{self.base.name}")
        self._thread.start()
        return self

    def power_cut(self) -> None:
        """kill -9 both units and wait, as a cut would; ``boot()`` starts them again."""
        with self._lock:
            self._paused.set()
            for unit in self.procs:
                self._kill(unit, signal.SIGKILL)

    def boot(self) -> None:
        self._paused.clear()

    def kill_updater(self) -> None:
        with self._lock:
            self._kill("updater", signal.SIGKILL)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for unit in self.procs:
            self._kill(unit)

    def log(self, unit: str) -> str:
        path = self.base / f"{unit}.log"
        return path.read_text() if path.exists() else ""
