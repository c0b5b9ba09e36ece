"""The kiosk as a process: ``palaute-kiosk --simulate`` killed and restarted against a real broker."""

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from palaute_wire import contract as c
from tests.support.kiosk_support import DEVICE, STATION, Subscriber, kiosk_raw, write_toml
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker

CLI = str(Path(sys.executable).with_name("palaute-kiosk"))
STATUS = c.topic(STATION, DEVICE, "status")


class KioskProcess:
    def __init__(self, tmp_path: Path, url: str, *args: str) -> None:
        raw = kiosk_raw(tmp_path, url, simulate={"presses_per_minute": 600, "followup_share": 0})
        self.config = write_toml(tmp_path / "kiosk.toml", raw)
        self.outbox = Path(raw["outbox"]["path"])
        with open(tmp_path / "kiosk.log", "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([CLI, "--config", str(self.config), "--simulate", *args],
                                         stdout=log, stderr=log)

    def rows(self) -> list[tuple[int, str, bytes, float | None]]:
        """(seq, event_id, payload, acked_at) straight from the outbox file the process writes."""
        if not self.outbox.exists():
            return []
        db = sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True)
        try:
            return db.execute("SELECT seq, event_id, payload, acked_at FROM events ORDER BY seq").fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            db.close()

    def kill(self, sig=signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(30)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def processes():
    started = []

    def start(*args, **kw):
        p = KioskProcess(*args, **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.close()


def _status(payload: bytes) -> dict:
    return json.loads(payload) if payload else {}


def test_retained_status_shows_queue_depth_and_goes_offline_by_last_will_on_sigkill(
    tmp_path, broker, processes
):
    with Subscriber(broker.port) as sub:
        kiosk = processes(tmp_path, broker.url, "--count", "5")
        wait_until(lambda: (s := sub.last_status()) and s["online"] and s.get("last_seq") == 5
                   and s.get("queue_depth") == 0, 30, "an online status after 5 presses, queue empty")
        status = sub.last_status()
        assert {"software_version", "uptime_s", "shed_count", "clock_synced",
                "config_version", "disk_free_mb"} <= set(status)
        kiosk.kill(signal.SIGKILL)
        wait_until(lambda: sub.last_status() and not sub.last_status()["online"], 30, "the Last Will")
        assert "queue_depth" not in sub.last_status(), "the will carries only the required fields"
    with Subscriber(broker.port, STATUS) as late:  # retained: a newcomer sees offline too
        wait_until(lambda: late.on("status"), 10, "the retained status")
        payload, retained = late.on("status")[-1]
        assert retained and _status(payload)["online"] is False


def test_sigterm_stops_cleanly_with_an_explicit_offline_status(tmp_path, broker, processes):
    with Subscriber(broker.port) as sub:
        kiosk = processes(tmp_path, broker.url, "--count", "3")
        wait_until(lambda: (s := sub.last_status()) and s.get("last_seq") == 3, 30, "3 presses reported")
        assert kiosk.kill(signal.SIGTERM) == 0
        wait_until(lambda: sub.last_status() and not sub.last_status()["online"], 30, "the offline status")
        assert sub.last_status().get("queue_depth") == 0, "a clean stop sends a full status, not the will"


def test_kiosk_killed_before_puback_resends_pending_events_with_the_same_ids(tmp_path, broker, processes):
    with Subscriber(broker.port) as sub:
        kiosk = processes(tmp_path, broker.url, "--count", "30")
        wait_until(lambda: (s := sub.last_status()) and s["online"], 30, "the kiosk online")
        broker.proc.send_signal(signal.SIGSTOP)  # bytes reach the broker, no PUBACK comes back
        try:
            wait_until(lambda: len(kiosk.rows()) == 30, 30, "30 presses stored")
            kiosk.kill(signal.SIGKILL)
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        before = kiosk.rows()
        pending = [r for r in before if r[3] is None]
        assert pending, "the test must kill the kiosk with events unacknowledged"
        again = processes(tmp_path, broker.url, "--count", "0")
        every = {r[1] for r in before}
        wait_until(lambda: sub.event_ids() >= every, 30, "all 30 events after the restart")
        assert sub.event_ids() == every
        stored = {r[1]: json.loads(r[2]) for r in before}
        for event_id, copies in sub.events.items():
            assert all(copy == stored[event_id] for copy in copies), "a resend must be the same event"
        wait_until(lambda: all(r[3] is not None for r in again.rows()), 30, "every row acknowledged")
