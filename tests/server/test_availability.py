"""Quiet is not broken: open and online hours from opening hours and kiosk presence."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.fleet.remote_config import save_settings
from fleet_server.models import Device, DevicePresence, Station
from fleet_server.results.figures import LOCAL_TZ, Period, availability, open_online_hours, station_page

MONDAY = date(2026, 11, 16)


@pytest.fixture
def session(sqlite_url):
    engine = make_engine(sqlite_url)
    migrate(engine)
    with make_session_factory(engine)() as s:
        s.add(Station(id="kalvia", name="Kälviä"))
        s.add(Device(id="kalvia-1", station_id="kalvia", state="active"))
        s.add(Device(id="kalvia-2", station_id="kalvia", state="active"))
        s.flush()
        yield s
    engine.dispose()


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL_TZ).astimezone(UTC)


def test_online_hours_are_the_union_of_the_kiosks_and_need_half_an_hour(session):
    # kalvia-1 online 08:00-10:00, kalvia-2 09:30-11:20 on Monday: online 08-11 (11:00-11:20 is too short).
    session.add_all([
        DevicePresence(device_id="kalvia-1", at=local(MONDAY, 8), online=True),
        DevicePresence(device_id="kalvia-1", at=local(MONDAY, 10), online=False),
        DevicePresence(device_id="kalvia-2", at=local(MONDAY, 9, 30), online=True),
        DevicePresence(device_id="kalvia-2", at=local(MONDAY, 11, 20), online=False),
    ])
    session.flush()
    period = Period(MONDAY, MONDAY)
    assert open_online_hours(session, "kalvia", period.start, period.end) == 3
    avail = availability(session, "kalvia", period.start, period.end)
    assert [h.astimezone(LOCAL_TZ).hour for h in avail.hours if avail.online[h]] == [8, 9, 10]
    assert not avail.opening_hours_known and avail.status(local(MONDAY, 12)) == "offline"


def test_closed_hours_do_not_count_and_are_shaded_apart(session):
    save_settings(session, "kalvia", {"opening_hours": {"timezone": "Europe/Helsinki",
                                                        "days": {"mon": ("09:00", "10:00")}}})
    session.add_all([
        DevicePresence(device_id="kalvia-1", at=local(MONDAY, 7), online=True),
        DevicePresence(device_id="kalvia-1", at=local(MONDAY + timedelta(days=1), 12), online=False),
    ])
    session.flush()
    period = Period(MONDAY, MONDAY + timedelta(days=1))
    # Online 29 hours, but open only Monday 09-10.
    assert open_online_hours(session, "kalvia", period.start, period.end) == 1
    page = station_page(session, session.get(Station, "kalvia"), period, 5)
    monday = page.heatmap[0]["cells"]
    assert monday[9]["state"] == "on" and monday[12]["state"] == "closed"
    tuesday = page.heatmap[1]["cells"]
    assert all(c["state"] == "closed" for c in tuesday)
    assert page.trend[1]["hours"]["open"] == 0  # Tuesday: closed all day, drawn as a "closed" band


def test_a_dead_kiosk_marks_its_open_hours_offline(session):
    save_settings(session, "kalvia", {"opening_hours": {"timezone": "Europe/Helsinki",
                                                        "days": {"mon": ("08:00", "16:00")}}})
    session.flush()
    period = Period(MONDAY, MONDAY)
    assert open_online_hours(session, "kalvia", period.start, period.end) == 0
    page = station_page(session, session.get(Station, "kalvia"), period, 5)
    assert [c["state"] for c in page.heatmap[0]["cells"][8:16]] == ["off"] * 8
    assert page.trend[0]["hours"] == {"open": 8, "online": 0, "offline": 8, "closed": 16}
