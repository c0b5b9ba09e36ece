"""PostgreSQL rolls the inserted rows up in SQL (ingest.pg_writer): the same cells as rollups.add_events."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.ingest.store import store_batch
from fleet_server.models import ChannelHour, Device, FollowupHour, StationHour
from fleet_server.results.rollups import COUNT_COLUMNS, rebuild
from tests.support.server_factories import T0, event, events_message

pytestmark = pytest.mark.postgres


@pytest.fixture
def factory(postgres_url):
    engine = make_engine(postgres_url)
    migrate(engine)

    @sa_event.listens_for(engine, "connect")
    def _far_zone(dbapi_connection, _record):  # date_trunc must not truncate in the session's zone
        dbapi_connection.execute("SET TimeZone = 'Asia/Kolkata'")
        dbapi_connection.commit()

    engine.dispose()  # new connections only, each with the listener
    yield make_session_factory(engine)
    engine.dispose()


def _tables(session):
    def cells(model, keys, counts):
        return {tuple(getattr(r, k) for k in keys): tuple(getattr(r, c) for c in counts)
                for r in session.scalars(select(model))}

    return (cells(StationHour, ("station_id", "hour"), COUNT_COLUMNS),
            cells(ChannelHour, ("station_id", "hour", "channel"), COUNT_COLUMNS),
            cells(FollowupHour, ("station_id", "hour", "smiley", "question_id", "option_id"), ("n",)))


def test_sql_rollups_equal_a_rebuild_from_the_events(factory):
    half_past = T0 + timedelta(minutes=30)  # 14:00 in Kolkata: a half-hour zone would move the bucket
    earlier = event(value=2, ts=half_past)
    store_batch(factory, [events_message([earlier])])
    smiley = event(value=3, ts=half_past.astimezone(timezone(timedelta(hours=2))), flags=("burst",))
    late = event(value=1, ts=half_past + timedelta(hours=1), flags=("out_of_hours",))
    followups = [
        event(kind="followup", value="queue", question_id="what-went-wrong", ts=half_past, answer_to=smiley.event_id),
        event(kind="followup", value="queue", question_id="what-went-wrong", ts=half_past, answer_to=earlier.event_id),
        event(kind="followup", value="staff", question_id="what-went-wrong", ts=half_past, answer_to=late.event_id),
        event(kind="followup", value="staff", question_id="what-went-wrong", ts=half_past),  # smiley never seen
    ]
    message = events_message([smiley, late, *followups])
    first = store_batch(factory, [message])
    again = store_batch(factory, [message, events_message([earlier])])  # redelivered: adds nothing
    assert (first.inserted, again.inserted, again.duplicates) == (6, 0, 7)
    with factory() as s:
        stored = _tables(s)
        assert stored[0][("kalvia", T0)] == tuple(
            {"c2": 1, "r3": 1}.get(c, 0) for c in COUNT_COLUMNS)
        assert stored[2] == {("kalvia", T0, 3, "what-went-wrong", "queue"): (1,),
                             ("kalvia", T0, 2, "what-went-wrong", "queue"): (1,),
                             ("kalvia", T0, 1, "what-went-wrong", "staff"): (1,),
                             ("kalvia", T0, 0, "what-went-wrong", "staff"): (1,)}
        rebuild(s)  # rollups.add_events over the stored events
        assert _tables(s) == stored
        device = s.get(Device, "kalvia-1")
        assert device is not None and device.last_event_at is not None  # set in the same statement
