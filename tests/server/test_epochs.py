"""Outbox epochs: a replaced SD card is a new sequence, and old kiosks' payloads still go in."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import uuid6
from sqlalchemy import select

from fleet_server.core.settings import load_settings
from fleet_server.fleet.gaps import REPLACED_OUTBOX, open_gaps, track_gaps
from fleet_server.ingest.consumer import InboundMessage, store_batch
from fleet_server.models import Device, FeedbackEvent, SeqGap
from palaute_wire import contract as c
from tests.support.server_factories import event, events_message, status_message

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


class Recording:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []

    def publish(self, topic_name: str, payload: bytes, *, retain: bool = False) -> None:
        self.sent.append((topic_name, payload, retain))


def _pass(sessions, at_s: float, marks: dict | None):
    settings = load_settings(environ={}, database_url="sqlite://", gap_grace_s=60)
    with sessions() as s, s.begin():
        return track_gaps(s, settings, Recording(), T0 + timedelta(seconds=at_s), online=lambda d: False,
                          watermarks=marks)


def test_a_replaced_sd_card_is_a_new_sequence_whose_own_gaps_are_found(sessions):
    old, new = uuid6.uuid7(), uuid6.uuid7()
    marks: dict = {}
    store_batch(sessions, [events_message([event(seq=n, epoch=old) for n in (1, 2, 3, 4, 6, 7, 8, 9, 10)]),
                           status_message(last_seq=10, queue_depth=0, epoch=old)])
    assert [(g.first_seq, g.last_seq, g.epoch) for g in _pass(sessions, 0, marks).opened] == [(5, 5, old)]

    # The card is replaced: seq starts at 1 again under a new epoch, and seq 2 of it goes missing.
    store_batch(sessions, [status_message(last_seq=3, queue_depth=0, epoch=new),
                           events_message([event(seq=1, epoch=new), event(seq=3, epoch=new)])])
    result = _pass(sessions, 10, marks)
    assert [(g.first_seq, g.last_seq, g.epoch) for g in result.opened] == [(2, 2, new)], \
        "reused seqs of the new card must not hide its own gap"
    assert [(g.first_seq, g.epoch, g.reason) for g in result.unrecoverable] == [(5, old, REPLACED_OUTBOX)]
    with sessions() as s:
        assert [(g.first_seq, g.epoch) for g in open_gaps(s)["kalvia-1"]] == [(2, new)]
        assert s.get(Device, "kalvia-1").epoch == new
        stored = {(e.seq, e.epoch) for e in s.scalars(select(FeedbackEvent))}
        assert (1, old) in stored and (1, new) in stored
    store_batch(sessions, [events_message([event(seq=2, epoch=new)])])
    assert [g.first_seq for g in _pass(sessions, 20, marks).resolved] == [2]
    with sessions() as s:
        assert s.scalars(select(SeqGap).where(SeqGap.resolved_at.is_(None))).all() == []


# What a kiosk released before epochs (and before the status ordering fields) sent, byte for byte.
OLD_EVENT = {
    "event_id": "0192f0c4-7c1e-7d3a-9b1e-3f5a2c9d8e71", "station_id": "kalvia", "device_id": "kalvia-1",
    "kind": "smiley", "value": 4, "question_id": "visit", "lang": "fi", "ts": "2026-11-27T08:00:00Z",
    "seq": 1, "clock_synced": True, "survey_version": 1, "answer_to": None, "flags": [],
}
OLD_BATCH = json.dumps({"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "sent_at": "2026-11-27T08:00:01Z",
                        "events": [OLD_EVENT, {**OLD_EVENT, "event_id": "0192f0c4-7c1e-7d3a-9b1e-3f5a2c9d8e72",
                                               "seq": 3}]}).encode()
OLD_STATUS = json.dumps({"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "online": True,
                         "sent_at": "2026-11-27T08:00:02Z", "software_version": "0.1.0", "uptime_s": 12.5,
                         "queue_depth": 0, "oldest_queued_age_s": 0.0, "shed_count": 0, "last_seq": 3,
                         "clock_synced": True, "config_version": 1, "cpu_temp_c": 48.2,
                         "disk_free_mb": 9000.0, "ip": "10.0.0.5"}).encode()


def test_an_old_kiosks_payloads_round_trip_and_are_stored_by_the_new_server(sessions):
    for channel, raw in (("events", OLD_BATCH), ("status", OLD_STATUS)):
        topic = c.topic("kalvia", "kalvia-1", channel)
        _, message = c.decode(topic, raw)
        assert c.decode(topic, c.encode(message))[1] == message
        assert getattr(message, "epoch", None) is None  # the documented default: the legacy sequence
    result = store_batch(sessions, [InboundMessage(c.topic("kalvia", "kalvia-1", "events"), OLD_BATCH),
                                    InboundMessage(c.topic("kalvia", "kalvia-1", "status"), OLD_STATUS)])
    assert (result.inserted, result.statuses, result.dead_lettered) == (2, 1, 0)
    with sessions() as s:
        assert {e.epoch for e in s.scalars(select(FeedbackEvent))} == {None}
        assert s.get(Device, "kalvia-1").software_version == "0.1.0"
    opened = _pass(sessions, 0, {}).opened
    assert [(g.first_seq, g.last_seq, g.epoch) for g in opened] == [(2, 2, None)], "gaps of old kiosks still found"
    assert uuid.UUID(OLD_EVENT["event_id"])
