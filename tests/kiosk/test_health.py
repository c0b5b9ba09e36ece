"""Health readings for the status heartbeat never raise; unknown is None."""

from pathlib import Path

import pytest

from kiosk.health import Health


def test_readings_from_the_system_files(tmp_path):
    (tmp_path / "temp").write_text("48312\n")
    (tmp_path / "synced").write_text("")
    h = Health(outbox_dir=tmp_path / "not" / "yet", broker_host="127.0.0.1",
               thermal_path=tmp_path / "temp", timesync_flag=tmp_path / "synced")
    assert h.cpu_temp_c() == 48.3
    assert h.disk_free_mb() > 0
    assert h.clock_synced() is True
    assert h.local_ip() == "127.0.0.1"
    assert h.uptime_s() >= 0
    assert h.software_version() == "0.1.0"


def _timedatectl(bin_dir: Path, script: str | None) -> None:
    """A timedatectl on PATH that runs ``script`` (None: no timedatectl at all)."""
    bin_dir.mkdir(exist_ok=True)
    if script is not None:
        tool = bin_dir / "timedatectl"
        tool.write_text(f"#!/bin/sh\n{script}\n")
        tool.chmod(0o755)


def test_missing_or_broken_sources_give_none(tmp_path, monkeypatch):
    (tmp_path / "temp").write_text("garbage")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    _timedatectl(tmp_path / "bin", None)
    h = Health(outbox_dir=tmp_path, broker_host="no-such-host.invalid",
               thermal_path=tmp_path / "temp", timesync_flag=Path("/nonexistent/flag"))
    assert h.cpu_temp_c() is None
    assert h.local_ip() is None
    assert h.clock_synced() is None  # no sync flag and no timedatectl: unknown, no exception


@pytest.mark.parametrize(
    ("script", "synced"),
    [
        ("echo yes", True),
        ("echo no", False),
        ("echo maybe", None),  # an answer it does not understand
        ("echo yes; exit 1", None),  # timedatectl failing (no systemd-timedated)
    ],
)
def test_clock_sync_is_what_timedatectl_says_and_none_when_it_says_nothing_clear(tmp_path, monkeypatch, script,
                                                                                  synced):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    _timedatectl(tmp_path / "bin", script)
    h = Health(outbox_dir=tmp_path, timesync_flag=tmp_path / "no-flag")
    assert h.clock_synced() is synced


def test_simulate_override_wins(tmp_path):
    assert Health(outbox_dir=tmp_path, clock_synced_override=False).clock_synced() is False
