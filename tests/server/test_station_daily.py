"""The daily rollups (station_daily and channel_daily, kept by triggers on PostgreSQL) equal the
hourly ones summed by Helsinki day, whoever writes the hours, and the overview's figures from them
equal the hourly sums."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select, text

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.ingest.store import store_batch
from fleet_server.models import ChannelDay, ChannelHour, FeedbackEvent, StationDay, StationHour
from fleet_server.results import rollups
from fleet_server.results.figures import (
    Period,
    channel_totals,
    channels_used,
    station_totals,
    today_local,
    totals_and_previous,
)
from fleet_server.results.rollups import COUNT_COLUMNS, SMILEYS
from palaute_wire.opening_hours import LOCAL_TZ
from tests.support.server_factories import answered_at, event, events_message

pytestmark = pytest.mark.postgres

WINTER_MIDNIGHT = datetime(2026, 11, 26, 22, 0, tzinfo=UTC)
"""Helsinki's midnight between 26 and 27 November (UTC+2)."""
SUMMER_MIDNIGHT = datetime(2026, 7, 1, 21, 0, tzinfo=UTC)
"""Between 1 and 2 July (summer time, UTC+3)."""
SPRING_FORWARD = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
"""03:00 became 04:00 in Helsinki: 29 March had 23 hours."""
FALL_BACK = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
"""04:00 became 03:00: 25 October had 25 hours."""


@pytest.fixture
def factory(postgres_url):
    engine = make_engine(postgres_url)
    migrate(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _by_local_day(session) -> dict[tuple[str, ...], tuple[int, ...]]:
    """station_hourly and channel_hourly summed by each hour's Helsinki day, in Python (zoneinfo,
    not the database): {(station, day) or (station, channel, day): counts}."""
    days: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(COUNT_COLUMNS))
    for row in [*session.scalars(select(StationHour)), *session.scalars(select(ChannelHour))]:
        key = (row.station_id, *([row.channel] if isinstance(row, ChannelHour) else []),
               row.hour.astimezone(LOCAL_TZ).date())
        for i, c in enumerate(COUNT_COLUMNS):
            days[key][i] += getattr(row, c)
    return {k: tuple(v) for k, v in days.items() if any(v)}


def _daily(session) -> dict[tuple[str, ...], tuple[int, ...]]:
    out = {}
    for row in [*session.scalars(select(StationDay)), *session.scalars(select(ChannelDay))]:
        counts = tuple(getattr(row, c) for c in COUNT_COLUMNS)
        if any(counts):  # a day whose hours were all taken out again stays, as zeros
            out[(row.station_id, *([row.channel] if isinstance(row, ChannelDay) else []), row.day)] = counts
    return out


def _answers(station: str, device: str, times: list[datetime], value: int = 4, **over) -> list:
    return [event(station=station, device=device, value=value, ts=t, **over) for t in times]


def test_the_days_equal_the_hours_by_helsinki_day_whoever_writes_them(factory):
    edges = [WINTER_MIDNIGHT - timedelta(minutes=1), WINTER_MIDNIGHT, SUMMER_MIDNIGHT - timedelta(minutes=1),
             SUMMER_MIDNIGHT, SPRING_FORWARD - timedelta(minutes=1), SPRING_FORWARD + timedelta(hours=19, minutes=59),
             SPRING_FORWARD + timedelta(hours=20), FALL_BACK, FALL_BACK + timedelta(hours=20, minutes=59),
             FALL_BACK + timedelta(hours=21)]
    today = answered_at(ago=timedelta(minutes=20), spread=timedelta(minutes=5))
    first = events_message(_answers("kalvia", "kalvia-1", [*edges, today])
                           + _answers("kalvia", "kalvia-1", edges[:2], channel="web"))
    store_batch(factory, [first, events_message(_answers("ullava", "ullava-1", edges[:4], value=1,
                                                          flags=("burst",)), "ullava", "ullava-1")])
    with factory() as s:
        days = _daily(s)
        assert days == _by_local_day(s)
        c4 = COUNT_COLUMNS.index("c4")
        assert days[("kalvia", date(2026, 11, 26))][c4] == days[("kalvia", date(2026, 11, 27))][c4] == 2  # kiosk, web
        assert days[("kalvia", date(2026, 7, 1))][c4] == 1 and days[("kalvia", date(2026, 7, 2))][c4] == 1
        assert days[("kalvia", date(2026, 3, 29))][c4] == 2  # 02:59 and 23:59 local, on a 23-hour day
        assert days[("kalvia", date(2026, 10, 25))][c4] == 2  # the second 03:00 and 23:59, on a 25-hour day
        assert days[("kalvia", today.astimezone(LOCAL_TZ).date())][c4] == 1  # today's partial day
        assert days[("kalvia", "web", date(2026, 11, 26))][c4] == days[("kalvia", "web", date(2026, 11, 27))][c4] == 1

    store_batch(factory, [first])  # redelivered: the hours do not change, nor do the days
    late = _answers("kalvia", "kalvia-1", [WINTER_MIDNIGHT - timedelta(hours=3), today], value=2)  # a late outbox
    store_batch(factory, [events_message(late)])
    with factory() as s:
        assert _daily(s) == _by_local_day(s)
        assert _daily(s)[("kalvia", date(2026, 11, 26))][COUNT_COLUMNS.index("c2")] == 1

    with factory() as s:  # a clock correction moves answers from their old hour to the new one
        moved = s.scalars(select(FeedbackEvent).where(FeedbackEvent.ts == WINTER_MIDNIGHT)).all()
        rows = [{c: getattr(e, c) for c in ("event_id", "station_id", "kind", "value", "option_id",
                                             "question_id", "ts", "answer_to", "burst", "out_of_hours", "channel")}
                for e in moved]
        rollups.add_events(s, rows, sign=-1)
        for row in rows:
            row["ts"] = SUMMER_MIDNIGHT - timedelta(hours=5)
        rollups.add_events(s, rows)
        s.commit()
    with factory() as s:
        assert _daily(s) == _by_local_day(s)
        assert ("kalvia", date(2026, 11, 27)) not in _daily(s)

    with factory() as s:
        rollups.rebuild(s)  # every hour deleted and added again, from the events
        s.commit()
    with factory() as s:
        assert _daily(s) == _by_local_day(s)
        s.execute(text("TRUNCATE station_hourly"))
        s.execute(text("TRUNCATE channel_hourly"))
        assert _daily(s) == {} == _by_local_day(s)


def test_the_overview_from_days_counts_what_the_hours_count(factory):
    """Both periods of a custom range ending on 27 November, and 7 days up to today (today's partial
    day): the counts from station_daily are station_totals' over the periods' UTC hours."""
    today = answered_at(ago=timedelta(minutes=20), spread=timedelta(minutes=5))
    times = [WINTER_MIDNIGHT + timedelta(hours=h) for h in range(-200, 30, 7)] + [today, today - timedelta(days=8)]
    store_batch(factory, [events_message(_answers("kalvia", "kalvia-1", times[v - 1::4], value=v)) for v in SMILEYS])
    store_batch(factory, [events_message(_answers("kalvia", "kalvia-1", times[::5], value=2, channel="web"))])
    store_batch(factory, [events_message(_answers("ullava", "ullava-1", times[::3], value=3, flags=("out_of_hours",)),
                                         "ullava", "ullava-1")])
    ids = ["kalvia", "ullava", "nowhere"]
    with factory() as s:
        assert s.get_bind().dialect.name == "postgresql"  # the daily rollup's reader
        for period in (Period(date(2026, 11, 21), date(2026, 11, 27)), Period(date(2026, 11, 27), date(2026, 11, 27)),
                       Period(today_local() - timedelta(days=6), today_local())):
            now, before = totals_and_previous(s, ids, period)
            prev = period.previous()
            for counts, (start, end) in ((now, (period.start, period.end)), (before, (prev.start, prev.end))):
                hourly = station_totals(s, ids, start, end)
                for sid in ids:
                    assert counts[sid].counted == {v: hourly[sid][f"c{v}"] for v in SMILEYS}, (period, sid)
                    assert counts[sid].presses == sum(hourly[sid].values()), (period, sid)
            assert sum(now["kalvia"].counted.values()) and sum(before["kalvia"].counted.values())
            by_channel = channel_totals(s, ids, period.start, period.end)
            for ch in ("kiosk", "web"):
                hourly = station_totals(s, ids, period.start, period.end, channel=ch)  # channel_hourly's sums
                for sid in ids:
                    assert by_channel[sid].get(ch, dict.fromkeys(COUNT_COLUMNS, 0)) == hourly[sid], (period, sid, ch)
                now_ch, _before_ch = totals_and_previous(s, ids, period, ch)
                assert {sid: now_ch[sid].presses for sid in ids} == {sid: sum(hourly[sid].values()) for sid in ids}
            used = channels_used(s, ids, period.start, period.end, 5)
            assert used == {sid: tuple(ch for ch in ("kiosk", "web") if sum(
                station_totals(s, [sid], period.start, period.end, channel=ch)[sid].values()) >= 5) for sid in ids}


def test_the_migration_fills_the_days_from_the_hours_already_there(postgres_url):
    engine = make_engine(postgres_url)
    try:
        migrate(engine, "2500_token_groups")
        with make_session_factory(engine)() as s:
            for h in range(-30, 30):
                s.add(StationHour(station_id="kalvia", hour=WINTER_MIDNIGHT + timedelta(hours=h),
                                  **{c: (h + i) % 3 for i, c in enumerate(COUNT_COLUMNS)}))
            s.commit()
        migrate(engine)
        with make_session_factory(engine)() as s:
            assert _daily(s) == _by_local_day(s) and len(_daily(s)) == 4  # 25-28 November
    finally:
        engine.dispose()
