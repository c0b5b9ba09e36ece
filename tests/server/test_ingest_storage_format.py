"""The ingest's bulk insert stores values exactly as the ORM does, so queries find them on both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text

from fleet_server.ingest.store import store_batch
from fleet_server.models import FeedbackEvent
from tests.support.server_factories import T0, event, events_message


def test_an_event_is_found_by_a_time_range_starting_at_its_own_second(sessions):
    on_the_second = event(ts=T0)
    store_batch(sessions, [events_message([on_the_second, event(ts=T0 + timedelta(microseconds=250))])])
    with sessions() as s:
        found = s.scalars(select(FeedbackEvent.event_id).where(FeedbackEvent.ts >= T0, FeedbackEvent.ts < T0 + timedelta(seconds=1)))
        assert on_the_second.event_id in set(found)
        assert s.scalars(select(FeedbackEvent.ts).where(FeedbackEvent.event_id == on_the_second.event_id)).one() == T0


def test_bulk_inserted_rows_look_like_orm_rows(sessions):
    store_batch(sessions, [events_message([event(ts=T0)])])
    with sessions() as s:
        template = s.scalars(select(FeedbackEvent)).one()
        s.add(FeedbackEvent(**{c: getattr(template, c) for c in ("station_id", "device_id", "kind", "value", "question_id",
                                                                 "lang", "ts", "received_at", "seq", "clock_synced")},
                            event_id=event().event_id))
        s.commit()
        rows = s.execute(text("SELECT ts, received_at, event_id FROM feedback_events ORDER BY id")).all()
    bulk, orm = rows
    assert [type(v) for v in bulk] == [type(v) for v in orm]
    assert [len(str(v)) for v in bulk] == [len(str(v)) for v in orm]
