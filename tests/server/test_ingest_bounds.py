"""The ingest with values out of the contract's bounds: schema dead letters, no lasting damage."""

from __future__ import annotations

import json

from sqlalchemy import select

from fleet_server.fleet.gaps import find_gaps
from fleet_server.ingest.consumer import InboundMessage, store_batch
from fleet_server.ingest.seq_jumps import REASON_SEQ_JUMP
from fleet_server.models import DeadLetter, Device, FeedbackEvent
from palaute_wire import contract as c
from tests.support.server_factories import event, events_message, raw_batch, status_message

EVENTS = c.topic("kalvia", "kalvia-1", "events")
STATUS = c.topic("kalvia", "kalvia-1", "status")


def _reasons(sessions) -> list[str]:
    with sessions() as s:
        return [d.reason for d in s.scalars(select(DeadLetter).order_by(DeadLetter.id))]


def test_infinite_or_huge_numbers_are_schema_dead_letters_and_the_device_row_stays_finite(sessions):
    store_batch(sessions, [status_message(uptime_s=100.0, queue_depth=0, last_seq=0)])
    infinite = (b'{"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "online": true, '
                b'"sent_at": "2026-11-27T08:00:01Z", "uptime_s": 1e999}')
    ev = json.loads(c.encode(event(seq=1)))
    bad = [
        InboundMessage(STATUS, infinite),
        status_message(uptime_s=5.0),  # the next status in the same batch must not store Infinity
        InboundMessage(EVENTS, raw_batch(events=[{**ev, "seq": 2**63}])),
        InboundMessage(EVENTS, raw_batch(events=[{**ev, "seq": 2**62}])),
        InboundMessage(EVENTS, raw_batch(events=[{**ev, "survey_version": 2**40}])),
        InboundMessage(EVENTS, raw_batch(events=[{**ev, "ts": "9999-12-31T23:59:59Z"}])),
        InboundMessage(EVENTS, raw_batch(events=[{**ev, "ts": "1970-01-01T00:00:00Z"}])),
        InboundMessage(EVENTS, raw_batch(events=[{**ev, "ts": "0001-01-01T00:00:00Z"}])),
    ]
    result = store_batch(sessions, bad)
    assert (result.dead_lettered, result.inserted, result.statuses) == (7, 0, 1)
    assert _reasons(sessions) == ["schema"] * 7
    with sessions() as s:
        assert s.get(Device, "kalvia-1").uptime_s == 5.0


def test_one_event_with_an_absurd_seq_is_dead_lettered_instead_of_raising_a_lasting_gap(sessions):
    store_batch(sessions, [events_message([event(seq=n) for n in range(lo, min(lo + 500, 7509))])
                           for lo in range(1, 7509, 500)] + [status_message(last_seq=7508, queue_depth=0)])
    jump, next_one = event(seq=999_999), event(seq=7509)
    result = store_batch(sessions, [events_message([next_one, jump])])
    assert (result.inserted, result.dead_lettered) == (1, 1)
    assert _reasons(sessions) == [REASON_SEQ_JUMP]
    with sessions() as s:
        assert s.scalar(select(FeedbackEvent.seq).where(FeedbackEvent.event_id == jump.event_id)) is None
        assert find_gaps(s) == {}, "no '992491 answers missing'"
        assert "999999" in s.scalars(select(DeadLetter.detail)).one()


def test_a_kiosk_back_from_a_long_outage_is_not_taken_for_a_jump(sessions):
    store_batch(sessions, [events_message([event(seq=1)])])
    # Its status (sent first on reconnect) says it has made 150,000 answers since.
    result = store_batch(sessions, [status_message(last_seq=150_001, queue_depth=100_000),
                                    events_message([event(seq=50_002), event(seq=150_001)])])
    assert (result.inserted, result.dead_lettered) == (2, 0)
