"""The overview at county scale: open/online hours of every station in a constant number of
queries, with the same figures as the per-station walk."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.fleet.remote_config import save_settings
from fleet_server.models import Device, DevicePresence, Station
from fleet_server.results.figures import (
    Period,
    open_online_hours,
    open_online_hours_many,
    overview,
    stations_visible,
    today_local,
)


@pytest.fixture
def factory(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    yield make_session_factory(engine), engine
    engine.dispose()


def _seed(session, n: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for i in range(n):
        sid = f"s{i:03d}"
        session.add(Station(id=sid, name=f"Station {i}"))
        for k in (1, 2):
            session.add(Device(id=f"{sid}-{k}", station_id=sid, state="active"))
    session.flush()
    for i in range(n):
        sid = f"s{i:03d}"
        if i % 3 == 0:
            save_settings(session, sid, {"opening_hours": {"timezone": "Europe/Helsinki",
                                                           "days": {"mon": ["08:00", "16:00"], "tue": ["08:00", "16:00"],
                                                                    "wed": ["08:00", "16:00"]}}}, by="test")
        for k in (1, 2):
            at = now - timedelta(days=12, minutes=rng.randrange(600))
            online = rng.random() < 0.5
            while at < now:
                session.add(DevicePresence(device_id=f"{sid}-{k}", at=at, online=online))
                online = not online
                at += timedelta(minutes=rng.randrange(20, 900))
    session.commit()


def test_many_stations_get_the_same_open_online_hours_as_one_by_one(factory):
    sessions, _engine = factory
    with sessions() as s:
        _seed(s, 9)
        period = Period(today_local() - timedelta(days=6), today_local())
        many = open_online_hours_many(s, [f"s{i:03d}" for i in range(9)], period.start, period.end)
        one = {sid: open_online_hours(s, sid, period.start, period.end) for sid in many}
        assert many == one and any(many.values())


def test_the_overview_costs_the_same_queries_for_3_or_30_stations(factory):
    sessions, engine = factory
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with sessions() as s:
        _seed(s, 30)
        period = Period(today_local() - timedelta(days=6), today_local())
        counts = []
        overview(s, stations_visible(s), period, 5)  # the opening hours are cached after the first page
        for n in (3, 30):
            stations = stations_visible(s, [f"s{i:03d}" for i in range(n)])
            statements.clear()
            overview(s, stations, period, 5)
            counts.append(len(statements))
    assert counts[0] == counts[1] <= 8, counts
