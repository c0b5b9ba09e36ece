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


def test_kept_settled_hours_still_match_the_walk_after_new_transitions(factory):
    """The settled hours are kept per process; what happens since (a kiosk going offline now,
    a new kiosk) is read fresh, so the figures stay the per-station walk's."""
    sessions, _engine = factory
    ids = [f"s{i:03d}" for i in range(6)]
    with sessions() as s:
        _seed(s, 6, seed=11)
        period = Period(today_local() - timedelta(days=6), today_local())
        first = open_online_hours_many(s, ids, period.start, period.end)
        assert first == {sid: open_online_hours(s, sid, period.start, period.end) for sid in ids}
        now = datetime.now(UTC)
        s.add(Device(id="s000-9", station_id="s000", state="active"))
        s.flush()
        s.add_all([DevicePresence(device_id="s000-9", at=now - timedelta(minutes=50), online=True),
                   DevicePresence(device_id="s001-1", at=now - timedelta(minutes=1), online=False),
                   DevicePresence(device_id="s001-2", at=now - timedelta(minutes=1), online=False)])
        s.commit()
        again = open_online_hours_many(s, ids, period.start, period.end)
        assert again == {sid: open_online_hours(s, sid, period.start, period.end) for sid in ids}


def test_overview_rows_match_the_figures_station_by_station(factory):
    """The set-wise overview (one query for both periods, one distribution call) gives each
    station the figures it gets on its own."""
    sessions, _engine = factory
    from fleet_server.models import StationHour
    from fleet_server.results.figures import distributions, station_totals

    with sessions() as s:
        _seed(s, 5, seed=3)
        period = Period(today_local() - timedelta(days=6), today_local())
        rng = random.Random(2)
        for i in range(5):
            for d in range(14):
                hour = period.start - timedelta(days=7) + timedelta(days=d, hours=9)
                s.add(StationHour(station_id=f"s{i:03d}", hour=hour, **{f"{k}{v}": rng.randrange(4)
                                                                        for k in "cro" for v in (1, 2, 3, 4)}))
        s.commit()
        rows = {r.station_id: r for r in overview(s, stations_visible(s), period, 5)}
        prev = period.previous()
        for sid, row in rows.items():
            now = station_totals(s, [sid], period.start, period.end)[sid]
            before = station_totals(s, [sid], prev.start, prev.end)[sid]
            counted = {v: now[f"c{v}"] for v in (1, 2, 3, 4)}
            assert row.counted_raw == counted
            assert row.presses == sum(now.values())  # counted, repeated and out of hours, past the minimum
            assert row.dist == distributions({"x": counted}, 5)["x"]
            assert row.previous == distributions({"x": {v: before[f"c{v}"] for v in (1, 2, 3, 4)}}, 5)["x"]
            assert row.open_online_hours == open_online_hours(s, sid, period.start, period.end)


def test_the_overview_and_group_pages_cost_the_same_statements_for_4_or_40_stations(db_url):
    """GET / and GET /?group= run a fixed number of SQL statements, whatever the number of stations."""
    from fastapi.testclient import TestClient

    from fleet_server.app import create_app
    from fleet_server.core.settings import load_settings
    from fleet_server.models import StationGroup
    from tests.support.auth_helpers import bearer

    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as client:
        engine = client.app.state.engine
        client.headers.update(bearer(client, "coordinator"))
        statements: list[str] = []

        def record(*args) -> None:
            statements.append(args[2])

        counts: dict[str, list[int]] = {"/?range=7d": [], "/?range=7d&group=m0": []}
        made = 0
        for n in (4, 40):
            with client.app.state.session_factory() as s:
                if made == 0:
                    s.add(StationGroup(id="county", kind="county", name="Hyvinvointialue"))
                    s.flush()
                    s.add_all([StationGroup(id=f"m{m}", parent_id="county", kind="municipality", name=f"Kunta {m}")
                               for m in range(4)])
                    s.flush()
                for i in range(made, n):
                    s.add(Station(id=f"s{i:03d}", name=f"Asema {i}", group_id=f"m{i % 4}"))
                    s.add(Device(id=f"s{i:03d}-1", station_id=f"s{i:03d}", state="active"))
                s.flush()
                for i in range(made, n):
                    s.add(DevicePresence(device_id=f"s{i:03d}-1", at=datetime.now(UTC) - timedelta(days=2),
                                         online=True))
                s.commit()
            made = n
            for path, found in counts.items():
                assert client.get(path).status_code == 200  # warm: the settled hours are kept
                event.listen(engine, "before_cursor_execute", record)
                statements.clear()
                assert client.get(path).status_code == 200
                event.remove(engine, "before_cursor_execute", record)
                found.append(len(statements))
    for path, (few, many) in counts.items():
        assert few == many, (path, counts)


def test_the_station_table_pages_by_100_sorted_over_all_stations(sqlite_url):
    import re

    from fastapi.testclient import TestClient

    from fleet_server.app import create_app
    from fleet_server.core.settings import load_settings
    from tests.support.auth_helpers import bearer

    settings = load_settings(environ={}, database_url=sqlite_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as client:
        with client.app.state.session_factory() as s:
            s.add_all([Station(id=f"s{i:03d}", name=f"Asema {i:03d}") for i in range(105)])
            s.commit()
        client.headers.update(bearer(client, "coordinator"))
        first = client.get("/?range=7d&sort=name&dir=desc").text
        second = client.get("/?range=7d&sort=name&dir=desc&page=2").text
        past = client.get("/?range=7d&sort=name&dir=desc&page=9").text
    rows = lambda html: re.findall(r'<tr data-station="(s\d+)">', html)
    assert rows(first) == [f"s{i:03d}" for i in range(104, 4, -1)]
    assert rows(second) == rows(past) == ["s004", "s003", "s002", "s001", "s000"]
    assert "Stations 1–100 of 105" in first and 'dir=desc&page=2" rel="next"' in first
    assert "Stations 101–105 of 105" in second and "page=1" in second


def test_the_overview_names_the_channels_a_station_uses(db_url):
    """Kiosk and web answers (5 each, the minimum) are named under the station; two phone answers are
    a small count, so the phone channel is not named."""
    from fastapi.testclient import TestClient

    from fleet_server.app import create_app
    from fleet_server.core.settings import load_settings
    from fleet_server.ingest.consumer import store_batch
    from tests.support.auth_helpers import bearer
    from tests.support.server_factories import answer_day, answered_at, events_message
    from tests.support.server_factories import event as make_event

    settings = load_settings(environ={}, database_url=db_url, mode="development")
    base = answered_at(ago=timedelta(minutes=40))
    answers = [make_event(value=4, ts=base - timedelta(minutes=i), channel=ch)
               for i, ch in enumerate(["kiosk"] * 5 + ["web"] * 5 + ["phone"] * 2)]
    with TestClient(create_app(settings, start_ingest=False)) as client:
        store_batch(client.app.state.session_factory, [events_message(answers)])
        client.headers.update(bearer(client, "coordinator"))
        html = client.get(f"/?{answer_day(base)}").text
        sv = client.get(f"/?{answer_day(base)}", headers={"Accept-Language": "sv"}).text
    assert 'data-channels="kiosk web"' in html and "kiosk, web survey" in html
    assert "phone" not in html.split('data-channels="kiosk web"')[1].split("</small>")[0]
    assert 'data-channels="kiosk web"' in sv


def test_a_dashboard_page_takes_one_database_connection(db_url):
    """The layout's alert count runs in the page's own session: one pool checkout (and one ping)
    a page, not a second connection for the navigation bar."""
    from fastapi.testclient import TestClient

    from fleet_server.app import create_app
    from fleet_server.core.settings import load_settings
    from fleet_server.models import Alert
    from tests.support.auth_helpers import bearer

    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as client:
        with client.app.state.session_factory() as s:
            s.add(Station(id="s000", name="Asema"))
            s.flush()
            s.add(Alert(key="offline:s000", rule="offline", station_id="s000", message="kiosk offline"))
            s.commit()
        client.headers.update(bearer(client, "coordinator"))
        assert client.get("/?range=7d").status_code == 200  # the token's first use is noted (a commit)
        checkouts: list[object] = []
        event.listen(client.app.state.engine, "checkout", lambda *a: checkouts.append(a))
        html = client.get("/?range=7d").text
    assert "1 alert" in html
    assert len(checkouts) == 1, checkouts
