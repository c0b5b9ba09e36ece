"""The suite's own process ownership (tests/support/processes.py): nothing a test starts outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.processes import Processes

REPO = Path(__file__).resolve().parents[1]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # gone between the lookup and the read
        return True
    return state in {"Z", "X"}


def _wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_processes_are_stopped_when_the_test_fails(tmp_path):
    with pytest.raises(RuntimeError), Processes() as owned:
        proc = owned.start(["sleep", "600"], log=tmp_path / "sleep.log")
        raise RuntimeError("the test failed here")
    assert proc.poll() is not None


def test_a_started_process_dies_with_pytest_even_without_teardown():
    """pytest killed outright (no teardown runs): the kernel kills what it started."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from tests.support.processes import Processes\n"
        "p = Processes().start(['sleep', '600'])\n"
        "print(p.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(REPO)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert not _gone(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        if not _wait_gone(child):
            os.kill(child, signal.SIGKILL)
            pytest.fail("the child outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_private_broker_dies_with_the_process_that_started_it(tmp_path):
    """The broker fixture's and the demo's Mosquitto: a test run or demo killed outright frees its port."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from pathlib import Path\n"
        "from fleet_server.devtools.local_broker import Mosquitto\n"
        "b = Mosquitto(Path(sys.argv[2])).start()\n"
        "print(b.proc.pid, flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script, str(REPO), str(tmp_path / "broker")],
                              stdout=subprocess.PIPE, text=True)
    try:
        broker = int(parent.stdout.readline())
        assert not _gone(broker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        if not _wait_gone(broker):
            os.kill(broker, signal.SIGKILL)
            pytest.fail("the broker outlived its killed parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_the_ui_tests_leave_no_kivy_home_behind(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in {"KIVY_HOME", "DISPLAY", "WAYLAND_DISPLAY"}}
    env["TMPDIR"] = str(tmp_path)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
                          "tests/kiosk/ui"], cwd=REPO, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert list(tmp_path.glob("palaute-kivy-home-*")) == []
