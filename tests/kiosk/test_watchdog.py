"""The kiosk tells systemd it is ready and keeps pinging its watchdog from the main loop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from fleet_server.devtools.local_broker import free_port
from kiosk.watchdog import SystemdNotifier

BIN = Path(sys.executable).parent


def _listen(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(30)
    return sock


def test_first_tick_says_ready_then_each_tick_pings(tmp_path):
    with _listen(tmp_path / "notify") as sock:
        notifier = SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        notifier.tick()
        notifier.tick()
        notifier.stopping()
        got = [sock.recv(1024).decode() for _ in range(3)]
    assert got[0].split("\n")[0] == "READY=1" and "WATCHDOG=1" in got[0]
    assert got[1:] == ["WATCHDOG=1", "STOPPING=1"]


def test_without_systemd_nothing_is_sent():
    notifier = SystemdNotifier.from_environ({})
    assert not notifier.enabled and notifier.notify("READY=1") is False
    notifier.tick()


def test_simulated_kiosk_process_notifies_ready_and_pings(tmp_path):
    config = tmp_path / "kiosk.toml"
    config.write_text(
        '[device]\nstation_id = "kalvia"\ndevice_id = "kalvia-1"\n'
        f'[broker]\nurl = "mqtt://127.0.0.1:{free_port()}"\n'  # nothing listens: it keeps trying
        f'[outbox]\npath = "{tmp_path}/outbox.db"\n[state]\ndir = "{tmp_path}/state"\n'
    )
    with _listen(tmp_path / "notify") as sock:
        env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify")}
        proc = subprocess.Popen([str(BIN / "palaute-kiosk"), "--config", str(config), "--simulate"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            first = sock.recv(1024).decode()
            second = sock.recv(1024).decode()
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        assert sock.recv(1024).decode() == "STOPPING=1"
    assert first.startswith("READY=1") and second == "WATCHDOG=1"
    assert proc.returncode == 0
