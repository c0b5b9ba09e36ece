"""Missing answers, end to end: events vanish from the server's table after they arrived
(as a misconfigured broker queue would lose them), the fleet loop's gap check asks
the kiosk, the kiosk resends from its outbox, and the gap closes -- or, when the
kiosk keeps nothing (retention_days = 0) and its status says so (held_from_seq),
the gap is shown as unrecoverable.

Real parts: a private Mosquitto, the fleet server's Ingestor and FleetLoop with its
Publisher, the kiosk runtime (outbox, uplink), SQLite and PostgreSQL. The test
steps the loop's gap check itself with a chosen ``now`` (grace periods without
sleeping) and polls with deadlines for what travels over MQTT.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from fleet_server.core.clock import utcnow
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.fleet.gap_words import describe
from fleet_server.fleet.gaps import open_gaps
from fleet_server.fleet.loop import FleetLoop
from fleet_server.fleet.publisher import Publisher
from fleet_server.ingest.consumer import Ingestor
from fleet_server.models import Device, DeviceCommand, FeedbackEvent
from kiosk.app import Kiosk
from tests.support.kiosk_support import DEVICE, kiosk_config
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker

GRACE_S = 60


@pytest.fixture
def server(db_url, broker):
    migrate(db_url)
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    settings = load_settings(environ={}, database_url=db_url, mqtt_url=broker.url, mqtt_reconnect_max_s=1,
                             gap_grace_s=GRACE_S, gap_resend_interval_s=900,
                             alert_heartbeat_timeout_s=3600)  # stepped clock: the kiosk stays "online"
    ingestor = Ingestor(settings, factory).start()
    assert ingestor.wait_subscribed(20), "ingest did not subscribe"
    publisher = Publisher(settings)
    yield FleetLoop(settings, factory, publisher), factory
    publisher.close()
    ingestor.stop()
    engine.dispose()


def _seqs(factory) -> list[int]:
    with factory() as s:
        return list(s.scalars(select(FeedbackEvent.seq).where(FeedbackEvent.device_id == DEVICE)
                              .order_by(FeedbackEvent.seq)))


def _lose(factory, seqs: list[int]) -> None:
    """Delete rows that had arrived, as if the broker had never delivered them."""
    with factory() as s, s.begin():
        s.execute(delete(FeedbackEvent).where(FeedbackEvent.device_id == DEVICE, FeedbackEvent.seq.in_(seqs)))


def _status_says(factory, last_seq: int):
    def check():
        with factory() as s:
            d = s.get(Device, DEVICE)
            return d is not None and d.online and d.last_seq == last_seq and d.queue_depth == 0
    return check


def _gaps(factory):
    with factory() as s:
        return [(g.first_seq, g.last_seq, g.unrecoverable_at is not None, g.ack_seen_at is not None)
                for g in open_gaps(s, [DEVICE]).get(DEVICE, [])]


def test_lost_events_are_asked_for_resent_by_the_kiosk_and_the_gap_closes(tmp_path, broker, server):
    loop, factory = server
    with Kiosk(kiosk_config(tmp_path, broker.url)) as kiosk:
        kiosk.start(buttons=False)
        for i in range(20):
            kiosk.press_smiley(1 + i % 4)
        wait_until(lambda: _seqs(factory) == list(range(1, 21)), what="20 events on the server")
        _lose(factory, [5, 6, 7, 8, 19, 20])  # an internal gap and a tail
        wait_until(_status_says(factory, 20), what="the kiosk's status: last_seq 20, nothing queued")

        t0 = utcnow()
        first = loop.check_gaps(t0)
        assert first.resends == [], "within the grace period: maybe still in flight"
        assert _gaps(factory) == [(5, 8, False, False), (19, 20, False, False)]

        asked = loop.check_gaps(t0 + timedelta(seconds=GRACE_S + 1))
        assert [(c.name, c.from_seq) for c in asked.resends] == [("resend", 5)]
        again = loop.check_gaps(t0 + timedelta(seconds=GRACE_S + 2))
        assert again.resends == []  # one, not one per pass

        wait_until(lambda: _seqs(factory) == list(range(1, 21)), what="the resent events on the server")
        closed = loop.check_gaps(t0 + timedelta(seconds=GRACE_S + 3))
        # The tail may close one pass early: once the kiosk's status says 16 queued again,
        # seqs 19-20 are in flight, not missing (seen once when that status beat the pass).
        resolved = again.resolved + closed.resolved
        assert sorted((g.first_seq, g.last_seq) for g in resolved) == [(5, 8), (19, 20)]
        assert _gaps(factory) == []

        def acknowledged():
            loop.check_gaps(t0 + timedelta(seconds=GRACE_S + 4))
            with factory() as s:
                return s.get(DeviceCommand, asked.resends[0].cmd_id).acked_at is not None
        wait_until(acknowledged, what="the kiosk's acknowledgement of the resend")
    with factory() as s:
        command = s.get(DeviceCommand, asked.resends[0].cmd_id)
        assert command.ok and command.detail.startswith("16 events queued again from seq 5")
        assert s.scalar(select(func.count()).select_from(FeedbackEvent)) == 20  # resent copies deduplicated


def test_a_gap_the_kiosk_no_longer_holds_is_shown_as_unrecoverable(tmp_path, broker, server):
    loop, factory = server
    config = kiosk_config(tmp_path, broker.url, outbox={"retention_days": 0})  # purged on PUBACK
    with Kiosk(config) as kiosk:
        kiosk.start(buttons=False)
        for i in range(10):
            kiosk.press_smiley(1 + i % 4)
        wait_until(lambda: _seqs(factory) == list(range(1, 11)), what="10 events on the server")
        _lose(factory, [3, 4])
        wait_until(_status_says(factory, 10), what="the kiosk's status: last_seq 10, nothing queued")

        with factory() as s:
            assert s.get(Device, DEVICE).held_from_seq == 11  # its own word: it holds nothing

        t0 = utcnow()
        assert loop.check_gaps(t0).unrecoverable == []  # within the grace period: maybe still in flight
        after_grace = loop.check_gaps(t0 + timedelta(seconds=GRACE_S + 1))
        assert [(g.first_seq, g.last_seq) for g in after_grace.unrecoverable] == [(3, 4)]
        assert after_grace.resends == []  # nothing to ask for
        assert loop.check_gaps(t0 + timedelta(seconds=5000)).resends == []  # never asked later either
    assert _seqs(factory) == [1, 2, *range(5, 11)]
    with factory() as s:
        text, level = describe(open_gaps(s, [DEVICE])[DEVICE], utcnow())
    assert level == "bad"
    assert text.startswith("2 answers missing, seq 3–4; unrecoverable: 2 (the kiosk holds answers from seq 11 on; "
                           "past its retention window)")
