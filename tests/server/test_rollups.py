"""Hourly rollups maintained by the ingest equal a fresh count of the events, exactly once."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.ingest.consumer import handle_batch
from fleet_server.models import FeedbackEvent, FollowupHour, StationHour
from fleet_server.results.rollups import COUNT_COLUMNS, flag_kind, hour_of, rebuild
from tests.support.server_factories import T0, event, events_message

STATIONS = ("kalvia", "lohtaja", "ullava")


@pytest.fixture
def factory(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    yield make_session_factory(engine)
    engine.dispose()


def _rollup_snapshot(session):
    smileys = {
        (r.station_id, r.hour): tuple(getattr(r, c) for c in COUNT_COLUMNS)
        for r in session.scalars(select(StationHour))
    }
    followups = {
        (r.station_id, r.hour, r.smiley, r.question_id, r.option_id): r.n for r in session.scalars(select(FollowupHour))
    }
    return smileys, followups


def _expected_from_events(session):
    cells: dict = {}
    smiley_of = {}
    e = FeedbackEvent
    for row in session.execute(select(e).where(e.kind == "smiley")).scalars():
        key = (row.station_id, hour_of(row.ts))
        cells.setdefault(key, Counter())[f"{flag_kind(row.burst, row.out_of_hours)}{row.value}"] += 1
        smiley_of[row.event_id] = row.value
    smileys = {k: tuple(c[col] for col in COUNT_COLUMNS) for k, c in cells.items()}
    followups: Counter = Counter()
    for row in session.execute(select(e).where(e.kind == "followup")).scalars():
        followups[(row.station_id, hour_of(row.ts), smiley_of.get(row.answer_to, 0), row.question_id, row.option_id)] += 1
    return smileys, dict(followups)


answers = st.lists(
    st.tuples(
        st.sampled_from(STATIONS),
        st.integers(1, 4),
        st.integers(0, 3 * 24 * 60),  # minute offset: a few days, many hours
        st.booleans(),  # burst
        st.booleans(),  # out of hours
        st.sampled_from([None, "waiting-time", "staff-attitude"]),  # follow-up chosen
    ),
    min_size=1,
    max_size=40,
)


def _run(factory, data, redeliver):
    messages = []
    for station, value, minute, burst, ooh, option in data:
        device = f"{station}-1"
        ts = T0 + timedelta(minutes=minute)
        flags = tuple(f for f, on in (("burst", burst), ("out_of_hours", ooh)) if on)
        smiley = event(station=station, device=device, value=value, ts=ts, flags=flags)
        evs = [smiley]
        if option:
            evs.append(event(station=station, device=device, kind="followup", value=option,
                             question_id="what-went-wrong", ts=ts + timedelta(seconds=5), answer_to=smiley.event_id))
        messages.append(events_message(evs, station=station, device=device))
    with factory() as s:
        for table in (StationHour, FollowupHour, FeedbackEvent):
            s.execute(delete(table))
        s.commit()
    # Batches of three messages; redelivered messages come again in a later batch.
    again = messages[::3] if redeliver else []
    stream = messages + again
    for i in range(0, len(stream), 3):
        with factory() as s:
            handle_batch(s, stream[i : i + 3])
            s.commit()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=answers, redeliver=st.booleans())
def test_rollups_equal_a_fresh_count_of_the_events(factory, data, redeliver):
    _run(factory, data, redeliver)
    with factory() as s:
        got = _rollup_snapshot(s)
        assert got == _expected_from_events(s)
        # Sums per station equal the station's smiley events: nothing lost, nothing twice.
        per_station = Counter()
        for (station, _), counts in got[0].items():
            per_station[station] += sum(counts)
        expected = dict(
            s.execute(select(FeedbackEvent.station_id, func.count()).where(FeedbackEvent.kind == "smiley")
                      .group_by(FeedbackEvent.station_id)).all()
        )
        assert dict(per_station) == expected
        assert sum(per_station.values()) == sum(1 for _ in data)
        # A rebuild from the events gives the same tables.
        rebuild(s)
        assert _rollup_snapshot(s) == got
        s.rollback()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=answers)
def test_dashboard_figures_add_up_to_the_events(factory, data):
    """With the minimum at 0 nothing is hidden: per-station, per-day and per-kind figures equal the events."""
    from fleet_server.models import Station
    from fleet_server.results.figures import daily_rows, period_from_utc, station_page

    _run(factory, data, redeliver=True)
    start, end = T0 - timedelta(days=1), T0 + timedelta(days=4)
    period = period_from_utc(start, end)
    with factory() as s:
        e = FeedbackEvent
        stations = sorted({d[0] for d in data})
        for sid in stations:
            rows = s.execute(select(e.value, e.burst, e.out_of_hours).where(e.station_id == sid, e.kind == "smiley")).all()
            counted = sum(1 for _, b, o in rows if not b and not o)
            page = station_page(s, s.get(Station, sid), period, 0)
            assert page.breakdown["all"]["total"] == len(rows)
            assert (page.breakdown["counted"]["total"] or 0) == counted
            assert sum(t["dist"]["total"] or 0 for t in page.trend) == counted
            days = list(daily_rows(s, [sid], period, 0))
            assert sum(d["counted"]["total"] or 0 for d in days) == counted
            assert sum(d["all_presses"] or 0 for d in days) == len(rows)
            heat = sum(c["n"] or 0 for row in page.heatmap for c in row["cells"])
            assert heat == counted
