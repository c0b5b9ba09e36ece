"""Rollup hours are UTC hours, exact for any offset a time carries, across Finland's DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import AwareDatetime, TypeAdapter
from sqlalchemy import select

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.ingest.store import handle_batch
from fleet_server.models import StationHour
from fleet_server.results.rollups import COUNT_COLUMNS, hour_of, rebuild
from tests.support.server_factories import event, events_message

HELSINKI = ZoneInfo("Europe/Helsinki")
# 2026: summer time starts Sun 29 March 01:00 UTC (03:00 -> 04:00 local) and ends Sun 25 October
# 01:00 UTC (04:00 -> 03:00 local, the hour 03:00-04:00 local twice).
SPRING = datetime(2026, 3, 29, 1, tzinfo=UTC)
AUTUMN = datetime(2026, 10, 25, 1, tzinfo=UTC)


def _reference(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("change", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_hour_of_is_the_utc_hour_in_every_form_a_time_comes_in(change):
    parse = TypeAdapter(AwareDatetime).validate_python
    for minutes in range(-180, 181, 7):
        utc = change + timedelta(minutes=minutes, seconds=59, microseconds=999_999)
        local = utc.astimezone(HELSINKI)  # a zone, folds and all
        offset = local.utcoffset()
        assert offset is not None
        fixed = utc.astimezone(timezone(offset))  # what a kiosk sends: +02:00 or +03:00
        # the other fold of a local time: another instant where the local hour is ambiguous
        for ts in (utc, local, fixed, parse(fixed.isoformat()), local.replace(fold=1 - local.fold)):
            assert hour_of(ts) == _reference(ts), ts
            assert hour_of(ts).tzinfo is not None and hour_of(ts).utcoffset() == timedelta(0)


def test_the_last_microsecond_of_an_hour_stays_in_it():
    end = datetime(2099, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert hour_of(end) == datetime(2099, 12, 31, 23, tzinfo=UTC)
    assert hour_of(datetime(2020, 1, 1, tzinfo=UTC)) == datetime(2020, 1, 1, tzinfo=UTC)
    assert hour_of(datetime(2026, 10, 25, 3, 59, 59, 999_999, tzinfo=HELSINKI, fold=1)) == datetime(
        2026, 10, 25, 1, tzinfo=UTC)
    assert hour_of(datetime(2026, 10, 25, 3, 59, 59, 999_999, tzinfo=HELSINKI, fold=0)) == datetime(
        2026, 10, 25, 0, tzinfo=UTC)


@pytest.mark.parametrize("change", [SPRING, AUTUMN], ids=["spring", "autumn"])
def test_answers_across_a_dst_change_roll_up_into_their_utc_hours_exactly(db_url, change):
    """Kiosk times with the local offset of the moment (+02:00 / +03:00) go into the hours a fresh count
    from the stored events gives (rebuild), and each hour holds exactly its answers."""
    engine = make_engine(db_url)
    migrate(engine)
    factory = make_session_factory(engine)
    expected: dict[datetime, int] = {}
    events = []
    for n, minutes in enumerate(range(-150, 150, 10), start=1):
        utc = change + timedelta(minutes=minutes)
        local = utc.astimezone(HELSINKI)
        events.append(event(seq=n, value=1, ts=utc.astimezone(timezone(local.utcoffset() or timedelta()))))
        hour = _reference(utc)
        expected[hour] = expected.get(hour, 0) + 1
    with factory() as s:
        handle_batch(s, [events_message(events)])
        s.commit()
        counted = {r.hour: r.c1 for r in s.scalars(select(StationHour))}
        assert counted == expected
        assert all(sum(getattr(r, c) for c in COUNT_COLUMNS) == r.c1 for r in s.scalars(select(StationHour)))
        rebuild(s)
        s.commit()
        assert {r.hour: r.c1 for r in s.scalars(select(StationHour))} == expected
    engine.dispose()


def test_sqlite_time_text_is_the_utc_text_for_every_offset():
    """The SQLite bulk path's time text skips the conversion only where there is none to make."""
    from fleet_server.ingest.sqlite_events import time_text as _sqlite_time

    parse = TypeAdapter(AwareDatetime).validate_python
    for utc in (AUTUMN + timedelta(minutes=30, microseconds=1), SPRING - timedelta(seconds=1), datetime(2026, 1, 1)):
        for ts in (utc, utc.astimezone(HELSINKI), utc.astimezone(timezone(timedelta(hours=3))),
                   parse("2026-10-25T01:30:00.000001Z"), parse("2026-10-25T03:30:00+02:00")):
            assert _sqlite_time(ts) == ts.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
