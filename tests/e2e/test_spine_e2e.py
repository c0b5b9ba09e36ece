"""The spine, end to end: a press on a kiosk becomes exactly one row on the server.

Real parts only: the kiosk runtime (outbox, recorder, uplink, gpiozero buttons on
MockFactory pins) or the ``palaute-kiosk`` process, a private Mosquitto, the
fleet server's Ingestor, and SQLite or PostgreSQL.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import Ingestor
from fleet_server.models import Device
from fleet_server.models import FeedbackEvent as EventRow
from kiosk.app import Kiosk
from kiosk.outbox import Outbox
from tests.support.kiosk_support import DEVICE, STATION, kiosk_config, kiosk_raw, write_toml
from tests.support.waiting import wait_until


@pytest.fixture
def server(db_url, broker):
    """The fleet server's ingest on a migrated database, subscribed to the private broker."""
    migrate(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    settings = load_settings(None, database_url=db_url, mqtt_url=broker.url, mqtt_reconnect_max_s=1)
    ingestor = Ingestor(settings, factory).start()
    assert ingestor.wait_subscribed(20), "ingest did not subscribe"
    yield ingestor, factory
    ingestor.stop()
    engine.dispose()


def _rows(factory) -> list[EventRow]:
    with factory() as session:
        return list(session.scalars(select(EventRow).order_by(EventRow.seq)))


def _count(factory) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(EventRow))


def test_button_press_becomes_exactly_one_row(tmp_path, broker, server, mock_pins):
    ingestor, factory = server
    with Kiosk(kiosk_config(tmp_path, broker.url), pin_factory=mock_pins) as kiosk:
        kiosk.start()
        pin = mock_pins.pin(kiosk.pinmap.buttons[3])
        pin.drive_low()
        pin.drive_high()
        wait_until(lambda: _count(factory) == 1, what="the press in the server's database")
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0, what="the outbox to empty on PUBACK")
    (row,) = _rows(factory)
    assert (row.station_id, row.device_id, row.kind, row.value, row.seq) == (STATION, DEVICE, "smiley", 3, 1)
    assert ingestor.counters.snapshot()["inserted"] == 1


def test_thousand_events_survive_broker_outage(tmp_path, broker, server):
    _ingestor, factory = server
    with Kiosk(kiosk_config(tmp_path, broker.url)) as kiosk:
        kiosk.start(buttons=False)
        wait_until(lambda: kiosk.uplink.connected, what="kiosk connected")
        broker.stop()
        wait_until(lambda: not kiosk.uplink.connected, what="kiosk noticing the outage")
        ids = {str(kiosk.press_smiley(1 + i % 4).event_id) for i in range(1000)}
        assert kiosk.outbox.stats().queue_depth == 1000
        broker.start()
        wait_until(lambda: _count(factory) >= 1000, timeout=90, what="all 1,000 events in the database")
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0, what="the outbox to drain")
    rows = _rows(factory)
    assert {str(r.event_id) for r in rows} == ids
    assert [r.seq for r in rows] == list(range(1, 1001))


def _broker_recv_queue(port: int) -> int:
    """Bytes waiting unread in the broker's sockets on ``port`` (from /proc/net/tcp)."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        if local_port == port and fields[3] == "01":  # ESTABLISHED, broker side
            total += int(fields[4].split(":")[1], 16)
    return total


def test_kiosk_killed_between_commit_and_puback_is_counted_once(tmp_path, broker, server, processes):
    """The broker has the events but the kiosk dies before its PUBACK: it resends, the server dedupes."""
    ingestor, factory = server
    raw = kiosk_raw(tmp_path, broker.url, simulate={"presses_per_minute": 0.001})
    raw["broker"]["heartbeat_s"] = 3600  # only event batches travel while the broker is frozen
    config_path = write_toml(tmp_path / "kiosk.toml", raw)
    argv = [str(Path(sys.executable).with_name("palaute-kiosk")), "--config", str(config_path), "--simulate",
            "--count", "0"]
    kiosk = processes.start(argv, log=tmp_path / "kiosk.log")
    try:
        def device_online():
            with factory() as session:
                device = session.get(Device, DEVICE)
                return device is not None and device.online
        wait_until(device_online, what="the kiosk process online")
        assert broker.proc is not None
        broker.proc.send_signal(signal.SIGSTOP)  # the broker reads nothing and acks nothing
        try:
            # Presses recorded by the kiosk's own code path, in the kiosk's own outbox file.
            with Outbox(raw["outbox"]["path"]) as box:
                from kiosk.feedback import Recorder

                recorder = Recorder(box, station_id=STATION, device_id=DEVICE)
                ids = {str(recorder.record("smiley", 1 + i % 4, question_id="visit", lang="fi").event_id)
                       for i in range(50)}
            wait_until(lambda: _broker_recv_queue(broker.port) > 50 * 200, what="the kiosk's PUBLISH on the wire")
            kiosk.send_signal(signal.SIGKILL)
            kiosk.wait(10)
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        # The broker now reads the PUBLISH and delivers it; its PUBACK goes to a dead process.
        wait_until(lambda: _count(factory) == 50, what="the events the broker delivered")
        with Outbox(raw["outbox"]["path"]) as box:
            assert box.stats().queue_depth == 50, "the kiosk never saw a PUBACK, so it still holds them"
        kiosk = processes.start(argv, log=tmp_path / "kiosk.log")
        wait_until(lambda: ingestor.counters.snapshot()["duplicates"] >= 50, what="the restarted kiosk's resend")
        with Outbox(raw["outbox"]["path"]) as box:
            wait_until(lambda: box.stats().queue_depth == 0, what="the outbox to empty on PUBACK")
    finally:
        processes.stop(kiosk)
    rows = _rows(factory)
    assert len(rows) == 50 and {str(r.event_id) for r in rows} == ids
