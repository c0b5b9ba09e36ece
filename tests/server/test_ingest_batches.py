"""handle_batch: valid events become exactly one row each, invalid messages become dead letters."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from fleet_server.ingest.consumer import InboundMessage, handle_batch, store_batch
from fleet_server.models import DeadLetter, Device, DevicePresence, FeedbackEvent, Station
from palaute_wire import contract as c
from tests.support.server_factories import event, events_message, raw_batch, status_message

TOPIC = "palaute/v1/kalvia/kalvia-1/events"


def _count(sessions, model) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_each_valid_event_becomes_exactly_one_row(sessions):
    events = [event(value=v) for v in (1, 2, 3, 4)] + [
        event(kind="followup", value="waiting-time", question_id="what-went-wrong")
    ]
    result = store_batch(sessions, [events_message(events[:3]), events_message(events[3:])])
    assert (result.events, result.inserted, result.duplicates, result.dead_lettered) == (5, 5, 0, 0)
    with sessions() as s:
        rows = {r.event_id: r for r in s.scalars(select(FeedbackEvent))}
        assert set(rows) == {e.event_id for e in events}
        followup = rows[events[4].event_id]
        assert (followup.kind, followup.value, followup.option_id) == ("followup", None, "waiting-time")
        smiley = rows[events[0].event_id]
        assert (smiley.value, smiley.option_id, smiley.ts) == (1, None, events[0].ts)
        assert smiley.ts.tzinfo is not None
        assert s.get(Station, "kalvia").name == "kalvia"
        device = s.get(Device, "kalvia-1")
        assert (device.station_id, device.state) == ("kalvia", "active")
        assert device.last_event_at is not None


def test_redelivered_batch_never_counts_twice(sessions):
    events = [event() for _ in range(50)]
    message = events_message(events)
    first = store_batch(sessions, [message])
    again = store_batch(sessions, [message, message])  # redelivered twice, once in the same batch
    assert (first.inserted, first.duplicates) == (50, 0)
    assert (again.events, again.inserted, again.duplicates) == (100, 0, 100)
    assert _count(sessions, FeedbackEvent) == 50


def test_flags_are_stored_as_query_friendly_columns(sessions):
    e = event(flags=("burst", "out_of_hours"))
    store_batch(sessions, [events_message([e])])
    with sessions() as s:
        row = s.scalars(select(FeedbackEvent)).one()
        assert (row.burst, row.out_of_hours) == (True, True)


INVALID = [
    ("bad_json", TOPIC, b"{not json"),
    ("bad_json", TOPIC, b"\xff\xfe\x00 not utf-8"),
    ("schema", TOPIC, raw_batch(events=[{"event_id": "nope"}])),
    ("unsupported_version", TOPIC, raw_batch(v=2)),
    ("oversize", TOPIC, b"x" * (c.MAX_PAYLOAD_BYTES + 1)),
    ("topic_mismatch", "palaute/v1/lohtaja/lohtaja-1/events", raw_batch()),
    ("bad_topic", "palaute/v1/Not A Slug/x/events", raw_batch()),
    ("bad_topic", "somewhere/else", raw_batch()),
    ("unexpected_channel", "palaute/v1/kalvia/kalvia-1/cmd", raw_batch()),
]


@pytest.mark.parametrize("reason, topic, payload", INVALID, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(INVALID)])
def test_invalid_message_is_dead_lettered_and_ingest_goes_on(sessions, reason, topic, payload):
    good_before, good_after = event(), event()
    messages = [events_message([good_before]), InboundMessage(topic, payload), events_message([good_after])]
    result = store_batch(sessions, messages)
    assert (result.inserted, result.dead_lettered) == (2, 1)
    with sessions() as s:
        letter = s.scalars(select(DeadLetter)).one()
        assert (letter.reason, letter.topic, letter.payload, letter.size) == (reason, topic, payload, len(payload))
        assert letter.detail
        assert letter.received_at.tzinfo is not None
    # and a later batch is still ingested
    assert store_batch(sessions, [events_message([event()])]).inserted == 1
    assert _count(sessions, FeedbackEvent) == 3


def test_device_reporting_under_another_station_is_dead_lettered(sessions):
    store_batch(sessions, [events_message([event()])])
    moved = event(station="lohtaja", device="kalvia-1")
    result = store_batch(sessions, [events_message([moved], station="lohtaja", device="kalvia-1")])
    assert (result.inserted, result.dead_lettered) == (0, 1)
    with sessions() as s:
        assert s.scalars(select(DeadLetter.reason)).one() == "device_station_mismatch"


def test_status_updates_the_device_and_the_last_will_marks_it_offline(sessions):
    store_batch(sessions, [status_message(software_version="1.2.3", queue_depth=7, shed_count=0, clock_synced=True)])
    with sessions() as s:
        d = s.get(Device, "kalvia-1")
        assert (d.online, d.software_version, d.queue_depth, d.clock_synced) == (True, "1.2.3", 7, True)
        assert d.last_seen_at is not None and d.last_status["queue_depth"] == 7
        seen = d.last_seen_at
    store_batch(sessions, [status_message(online=False)])  # the Last Will: only the required fields
    with sessions() as s:
        d = s.get(Device, "kalvia-1")
        assert (d.online, d.software_version, d.queue_depth) == (False, "1.2.3", 7)
        assert d.last_seen_at == seen  # the broker spoke, not the device
        presence = s.scalars(select(DevicePresence.online).order_by(DevicePresence.id)).all()
        assert presence == [True, False]


def test_statuses_apply_in_arrival_order_within_a_batch(sessions):
    result = store_batch(sessions, [status_message(online=True), status_message(online=False), status_message(online=True)])
    assert result.statuses == 3
    with sessions() as s:
        assert s.get(Device, "kalvia-1").online is True
        assert len(s.scalars(select(DevicePresence)).all()) == 3


@pytest.mark.parametrize("together", [False, True], ids=["separate batches", "one batch"])
def test_statuses_apply_in_the_kiosks_own_order_not_in_arrival_order(sessions, together):
    from datetime import timedelta

    from tests.support.server_factories import T0

    ms = timedelta(milliseconds=1)
    c1, c2 = T0, T0 + timedelta(seconds=100)  # two connections of the kiosk

    def store(*messages):
        if together:
            store_batch(sessions, list(messages))
        else:
            for m in messages:
                store_batch(sessions, [m])

    def online():
        with sessions() as s:
            return s.get(Device, "kalvia-1").online

    store(status_message(online=True, connected_at=c1, sent_at=c1 + timedelta(seconds=30)))
    # "offline" (goodbye of connection 1) then "online" (connection 2) 1 ms apart, arriving the other way round.
    store(status_message(online=True, connected_at=c2, sent_at=c2 + ms),
          status_message(online=False, connected_at=c1, sent_at=c2))
    assert online() is True
    # The Last Will of connection 1, late: its sent_at is connection 1's start. Still online.
    store(status_message(online=False, connected_at=c1, sent_at=c1))
    assert online() is True
    # Connection 2's own Last Will is newer than its heartbeats in the kiosk's order: offline.
    store(status_message(online=True, connected_at=c2, sent_at=c2 + timedelta(seconds=30)),
          status_message(online=False, connected_at=c2, sent_at=c2))
    assert online() is False


def test_handle_batch_leaves_the_commit_to_the_caller(sessions):
    with sessions() as s:
        handle_batch(s, [events_message([event()])])
        s.rollback()
    assert _count(sessions, FeedbackEvent) == 0


def test_a_provisioned_device_becomes_active_with_its_first_valid_message(sessions):
    from fleet_server.fleet.provisioning import add_station, provision_device

    with sessions() as s, s.begin():
        add_station(s, "kalvia", "Kälviä")
        provision_device(s, "kalvia-1", "kalvia")
    store_batch(sessions, [InboundMessage(TOPIC, b"not json")])  # an invalid message proves nothing
    with sessions() as s:
        assert s.get(Device, "kalvia-1").state == "provisioned"
    store_batch(sessions, [status_message()])
    with sessions() as s:
        assert s.get(Device, "kalvia-1").state == "active"
