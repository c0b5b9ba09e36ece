"""Dead letters: a reused event id with other content is refused with both copies; repeats count, not multiply."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import func, select

from fleet_server.ingest.store import REASON_CONFLICTING_DUPLICATE, InboundMessage, store_batch
from fleet_server.models import DeadLetter, FeedbackEvent, StationHour
from tests.support.server_factories import T0, event, events_message

TOPIC = "palaute/v1/kalvia/kalvia-1/events"


def _letters(sessions) -> list[DeadLetter]:
    with sessions() as s:
        return list(s.scalars(select(DeadLetter).order_by(DeadLetter.id)))


def _smileys(sessions) -> int:
    with sessions() as s:
        return s.scalar(select(func.sum(StationHour.c1 + StationHour.c2 + StationHour.c3 + StationHour.c4))) or 0


def test_event_id_reused_with_other_content_is_dead_lettered_with_both_copies(sessions):
    first = event(value=4)
    forged = first.model_copy(update={"value": 1})
    store_batch(sessions, [events_message([first])])
    result = store_batch(sessions, [events_message([forged, event(value=2)])])
    assert (result.inserted, result.dead_lettered) == (1, 1)  # the other event of the message is stored
    (letter,) = _letters(sessions)
    assert letter.reason == REASON_CONFLICTING_DUPLICATE
    assert str(first.event_id) in letter.detail and "value" in letter.detail
    assert json.loads(letter.payload)["value"] == 1  # the refused copy
    assert json.loads(letter.stored_payload)["value"] == 4  # the copy that was kept
    with sessions() as s:
        assert s.scalars(select(FeedbackEvent.value).where(FeedbackEvent.event_id == first.event_id)).one() == 4
    assert _smileys(sessions) == 2  # rollups count the first copy and the new event, not the conflict


def test_event_id_reused_within_one_batch_is_dead_lettered(sessions):
    first = event(value=3)
    result = store_batch(sessions, [events_message([first]), events_message([first.model_copy(update={"seq": 999})])])
    assert (result.inserted, result.dead_lettered) == (1, 1)
    (letter,) = _letters(sessions)
    assert letter.reason == REASON_CONFLICTING_DUPLICATE and "seq" in letter.detail
    assert (json.loads(letter.stored_payload)["seq"], json.loads(letter.payload)["seq"]) == (first.seq, 999)


def test_an_identical_redelivery_is_no_conflict(sessions):
    message = events_message([event(), event()])
    store_batch(sessions, [message])
    later = InboundMessage(message.topic, message.payload, received_at=message.received_at + timedelta(minutes=5))
    result = store_batch(sessions, [later, later])
    assert (result.inserted, result.duplicates, result.dead_lettered) == (0, 4, 0)
    assert _letters(sessions) == []


def test_the_same_bad_message_is_one_dead_letter_with_a_count_and_last_seen(sessions):
    bad = [InboundMessage(TOPIC, b"{not json", received_at=T0 + timedelta(seconds=i)) for i in range(6)]
    store_batch(sessions, bad[:2])  # twice in one batch
    for message in bad[2:]:  # then as paho resends it after each reconnect
        store_batch(sessions, [message])
    store_batch(sessions, [InboundMessage(TOPIC, b"{other junk", received_at=T0)])
    letters = _letters(sessions)
    assert [(d.payload, d.count) for d in letters] == [(b"{not json", 6), (b"{other junk", 1)]
    assert letters[0].received_at == T0 and letters[0].last_seen_at == T0 + timedelta(seconds=5)
