"""Health readings for the status heartbeat never raise; unknown is None."""

from pathlib import Path

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


def test_missing_or_broken_sources_give_none(tmp_path):
    (tmp_path / "temp").write_text("garbage")
    h = Health(outbox_dir=tmp_path, broker_host="no-such-host.invalid",
               thermal_path=tmp_path / "temp", timesync_flag=Path("/nonexistent/flag"))
    assert h.cpu_temp_c() is None
    assert h.local_ip() is None
    assert h.clock_synced() in (True, False, None)  # whatever timedatectl says here, no exception


def test_simulate_override_wins(tmp_path):
    assert Health(outbox_dir=tmp_path, clock_synced_override=False).clock_synced() is False
