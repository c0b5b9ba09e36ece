"""The demo supervises its kiosks as systemd would: "restart the app" (exit 75) or a crash
restarts the kiosk instead of ending the demo; one that keeps failing is reported."""

from __future__ import annotations

import sys
import time

import pytest

from fleet_server.devtools import demo
from fleet_server.devtools.demo import Supervised


def _wait_exit(kiosk: Supervised) -> None:
    deadline = time.monotonic() + 10
    while kiosk.proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_a_kiosk_that_exits_75_is_started_again(tmp_path):
    marker = tmp_path / "runs"
    script = (f"import pathlib, sys; p = pathlib.Path({str(marker)!r}); n = len(p.read_text()) if p.exists() else 0; "
              "p.write_text('x' * (n + 1)); sys.exit(75 if n == 0 else 0)")
    kiosk = Supervised([sys.executable, "-c", script], tmp_path / "kiosk.log").start()
    _wait_exit(kiosk)
    assert kiosk.proc.returncode == 75
    assert kiosk.check() is True  # restarted, not the end of the demo
    _wait_exit(kiosk)
    assert marker.read_text() == "xx" and kiosk.proc.returncode == 0
    assert kiosk.check() is False  # a clean exit is left alone, as Restart=on-failure does
    assert "restarts it, as systemd would" in (tmp_path / "kiosk.log").read_text()


def test_a_kiosk_that_keeps_crashing_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "RESTART_LIMIT", 2)
    kiosk = Supervised([sys.executable, "-c", "raise SystemExit(1)"], tmp_path / "kiosk.log").start()
    for _ in range(2):
        _wait_exit(kiosk)
        assert kiosk.check() is True
    _wait_exit(kiosk)
    with pytest.raises(RuntimeError, match="exited 3 times"):
        kiosk.check()
