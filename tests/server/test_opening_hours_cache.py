"""The alert pass reuses stations' opening hours between passes, and sees a changed config at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleet_server.core.settings import load_settings
from fleet_server.fleet.alerts import evaluate
from fleet_server.fleet.remote_config import opening_hours_by_station, save_settings
from fleet_server.models import Device, Station

WED_20 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)  # Wednesday 20:00 in Helsinki
DAYTIME = {"opening_hours": {"timezone": "Europe/Helsinki", "days": {"wed": ["08:00", "16:00"]}}}
EVENING = {"opening_hours": {"timezone": "Europe/Helsinki", "days": {"wed": ["08:00", "22:00"]}}}


@pytest.fixture
def sessions(sessions):
    with sessions() as s, s.begin():
        s.add_all([Station(id="kalvia", name="Kälviä"), Station(id="lohtaja", name="Lohtaja")])
        s.flush()
        save_settings(s, "kalvia", DAYTIME)
        s.add(Device(id="kalvia-1", station_id="kalvia", state="active", online=False,
                     created_at=WED_20 - timedelta(days=2), last_seen_at=WED_20 - timedelta(minutes=30)))
    return sessions


def _offline(sessions) -> list[str]:
    with sessions() as s:
        return [c.device_id for c in evaluate(s, load_settings(environ={}), WED_20) if c.rule == "offline"]


def test_a_station_opening_later_counts_at_the_next_pass(sessions):
    assert _offline(sessions) == []  # closed at 20:00: no offline alert
    assert _offline(sessions) == []  # (second pass from the cache)
    with sessions() as s, s.begin():
        save_settings(s, "kalvia", EVENING)
    assert _offline(sessions) == ["kalvia-1"]


def test_fleet_wide_hours_reach_stations_without_their_own(sessions):
    with sessions() as s:
        assert opening_hours_by_station(s)["lohtaja"] is None
    with sessions() as s, s.begin():
        save_settings(s, None, EVENING)
    with sessions() as s:
        hours = opening_hours_by_station(s)
    assert hours["lohtaja"].days == {"wed": ("08:00", "22:00")}
    assert hours["kalvia"].days == {"wed": ("08:00", "16:00")}  # its own layer wins
