"""The update tests' systemd stand-in owns what its units start: nothing outlives pytest.

The updater's pip runs are children of the updater, not of pytest, so the processes fixture's
death signal alone does not reach them; each unit is a process group led by
tests/support/unit_scope.py (systemd's control group), which takes the group down.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kiosk import release_switch as rs
from tests.test_processes_fixture import _gone, _wait_gone

REPO = Path(__file__).resolve().parents[1]
UNIT = """#!/bin/sh
# A unit that starts a child of its own, as the updater starts pip.
sleep 600 &
echo "{unit} $$ $!" >> "{pids}"
wait
"""


def _fake_kiosk(base: Path) -> Path:
    """A kiosk directory whose 'kiosk' and 'updater' are shell scripts that each start a sleep."""
    bin_dir = base / "releases/0.1.0/bin"
    bin_dir.mkdir(parents=True)
    for name, unit in (("palaute-kiosk", "kiosk"), ("python", "updater")):
        (bin_dir / name).write_text(UNIT.format(unit=unit, pids=base / "pids"))
        (bin_dir / name).chmod(0o755)
    rs.mark_installed(base / "releases", "0.1.0")
    for link in (rs.CURRENT, rs.STABLE):
        rs.switch(base / "releases", "0.1.0", link)
    return base


def _pids(base: Path, timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = (base / "pids").read_text().splitlines() if (base / "pids").exists() else []
        if len(lines) == 2:
            return [int(pid) for line in lines for pid in line.split()[1:]]
        time.sleep(0.1)
    pytest.fail("the stand-in did not start both units")


def test_a_units_children_die_with_pytest_killed_outright(tmp_path):
    base = _fake_kiosk(tmp_path / "kiosk")
    script = (
        "import sys, time; sys.path.insert(0, sys.argv[1])\n"
        "from pathlib import Path\n"
        "from tests.support.processes import Processes\n"
        "from tests.support.update_kiosk import SystemdStandIn\n"
        "SystemdStandIn(Path(sys.argv[2]), Processes()).start()\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(REPO), str(base)])
    try:
        pids = _pids(base)  # each unit and the sleep it started
        assert not any(_gone(pid) for pid in pids)
        os.kill(parent.pid, signal.SIGKILL)  # pytest killed: no teardown runs
        parent.wait(10)
        left = [pid for pid in pids if not _wait_gone(pid, 20)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        assert not left, "these outlived the killed test process"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_power_cut_and_a_stop_take_each_units_children_too(tmp_path, processes):
    from tests.support.update_kiosk import SystemdStandIn

    base = _fake_kiosk(tmp_path / "kiosk")
    standin = SystemdStandIn(base, processes).start()
    try:
        pids = _pids(base)
        standin.power_cut()
        assert all(_wait_gone(pid, 10) for pid in pids)
        (base / "pids").unlink()
        standin.boot()
        pids = _pids(base)
    finally:
        standin.stop()
    assert all(_wait_gone(pid, 20) for pid in pids)
