"""The one opening-hours rule (palaute_wire.opening_hours) the kiosk and the server share."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from fleet_server.fleet import alerts
from fleet_server.results import figures
from kiosk import answers
from palaute_wire import contract as c
from palaute_wire import opening_hours as oh
from palaute_wire.contract import OpeningHours

WEEKDAY_HOURS = {d: ("08:30", "15:30") for d in ("mon", "tue", "wed", "thu", "fri")}


def local(y, m, d, hh, mm=0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=oh.LOCAL_TZ)


def test_open_from_the_opening_minute_until_before_the_closing_one_in_the_station_zone():
    hours = OpeningHours(days=WEEKDAY_HOURS)
    assert not oh.is_open(hours, local(2026, 11, 30, 8, 29))
    assert oh.is_open(hours, local(2026, 11, 30, 8, 30))
    assert oh.is_open(hours, local(2026, 11, 30, 15, 29).astimezone(UTC))
    assert not oh.is_open(hours, local(2026, 11, 30, 15, 30))
    assert not oh.is_open(hours, local(2026, 11, 28, 10))  # Saturday: no hours
    stockholm = OpeningHours(timezone="Europe/Stockholm", days=WEEKDAY_HOURS)
    assert not oh.is_open(stockholm, local(2026, 11, 30, 9))  # 08:00 in Stockholm


@pytest.mark.parametrize("day", [date(2026, 1, 6), date(2026, 4, 3), date(2026, 4, 6), date(2026, 5, 14),
                                 date(2026, 6, 19), date(2026, 12, 24), date(2026, 12, 25)])
def test_finnish_public_holidays_on_weekdays_are_closed_unless_the_config_opens_them(day):
    at = datetime.combine(day, datetime.min.time().replace(hour=10), oh.LOCAL_TZ)
    assert oh.is_public_holiday(day)
    assert not oh.is_open(OpeningHours(days=WEEKDAY_HOURS), at)
    assert oh.is_open(OpeningHours(days=WEEKDAY_HOURS, open_on_public_holidays=True), at)
    assert not oh.is_public_holiday(date(2026, 12, 23))


def test_no_schedule_is_always_open_holidays_included():
    christmas = local(2026, 12, 25, 3)
    assert oh.is_open(None, christmas)
    assert oh.is_open(OpeningHours(), christmas)  # a zone but no day


def test_an_hour_counts_as_open_when_the_station_is_open_at_its_midpoint():
    hours = OpeningHours(days=WEEKDAY_HOURS)
    assert oh.hour_is_open(hours, local(2026, 11, 30, 8))  # 08:30 opens: open half of it
    assert not oh.hour_is_open(hours, local(2026, 11, 30, 7))
    assert not oh.hour_is_open(hours, local(2026, 11, 30, 15))  # 15:30 closes
    assert oh.hour_is_open(hours, local(2026, 11, 30, 14))


def test_the_kiosk_the_alerts_and_the_figures_decide_with_the_one_rule():
    assert answers.is_open is alerts.is_open is oh.is_open
    assert figures.hour_is_open is oh.hour_is_open
    assert figures.LOCAL_TZ is oh.LOCAL_TZ


def test_a_mistyped_time_zone_is_refused_by_the_contract_naming_it():
    with pytest.raises(ValidationError) as info:
        OpeningHours(timezone="Europe/Helsinkii", days=WEEKDAY_HOURS)
    assert "'Europe/Helsinkii' is not a time zone name (e.g. Europe/Helsinki)" in str(info.value)
    config = {"v": 1, "config_version": 2, "station_id": "kalvia",
              "survey": {"question": {"fi": "Miten meni?"}},
              "opening_hours": {"timezone": "Europe/Helsinkii", "days": {"mon": ["08:00", "16:00"]}}}
    with pytest.raises(c.ContractError) as refused:
        c.decode("palaute/v1/kalvia/kalvia-1/config", json.dumps(config).encode())
    assert refused.value.reason == "schema"
    assert "opening_hours.timezone: Value error, 'Europe/Helsinkii' is not a time zone name" in str(refused.value)


def test_the_holiday_setting_is_sent_only_when_a_station_sets_it():
    """Older kiosks refuse unknown fields: an unset setting stays off the wire."""
    assert "open_on_public_holidays" not in c.encode(OpeningHours(days=WEEKDAY_HOURS)).decode()
    assert '"open_on_public_holidays":true' in c.encode(OpeningHours(days=WEEKDAY_HOURS,
                                                                        open_on_public_holidays=True)).decode()
