"""When a station is open: the one rule the kiosk and the fleet server both use.

The kiosk marks an answer ``out_of_hours`` with it, the fleet server's alerts
ask it before calling a kiosk offline, and the dashboard's hourly figures
(availability, open-and-online hours) count hours with it.

The rule, for one instant ``at``, in the station's zone (``OpeningHours.timezone``,
``LOCAL_ZONE_NAME`` unless the station's config names another):

- The station is open when the local weekday has hours ``[opens, closes)`` and
  the local time of day is inside them (opens included, closes not).
- A Finnish public holiday is a closed day, unless the config says
  ``open_on_public_holidays: true`` (then the weekday's hours hold on holidays
  too). The holidays are those the ``holidays`` package lists for Finland:
  New Year's Day, Epiphany, Good Friday, Easter Sunday and Monday, May Day,
  Ascension Day, Whit Sunday, Midsummer Eve and Day, All Saints' Day,
  Independence Day, Christmas Eve, Christmas Day and Boxing Day.
- No opening hours, or opening hours that name no day, mean "no schedule":
  always open, holidays included (a kiosk without a schedule never marks its
  answers).

An hour of the dashboard's figures is open when the station is open at the
hour's midpoint (``hour_is_open``): with opening times on the hour or the half
hour, an hour that is open for at least half of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from palaute_wire.errors import UnknownTimeZone

LOCAL_ZONE_NAME = "Europe/Helsinki"
"""The zone of every station unless its config names another, and of local days and times on the dashboard."""
LOCAL_TZ = ZoneInfo(LOCAL_ZONE_NAME)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Monday first, as ``datetime.weekday()`` counts."""

HOLIDAY_COUNTRY = "FI"


class Schedule(Protocol):
    """What the rule reads from ``palaute_wire.contract.OpeningHours``."""

    @property
    def timezone(self) -> str: ...
    @property
    def days(self) -> Mapping[Weekday, tuple[str, str]]: ...
    @property
    def open_on_public_holidays(self) -> bool | None: ...


@lru_cache(maxsize=32)
def zone(name: str) -> ZoneInfo:
    """The time zone called ``name``; UnknownTimeZone (a ValueError) saying so when there is none."""
    if name == LOCAL_ZONE_NAME:
        return LOCAL_TZ
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UnknownTimeZone(f"{name!r} is not a time zone name (e.g. {LOCAL_ZONE_NAME})") from None


@lru_cache(maxsize=8)
def _public_holidays(year: int) -> frozenset[date]:
    import holidays  # about 0.2 s to import: only when a schedule is asked about

    return frozenset(holidays.country_holidays(HOLIDAY_COUNTRY, years=year))


def is_public_holiday(day: date) -> bool:
    """Whether ``day`` (a local date) is a Finnish public holiday."""
    return day in _public_holidays(day.year)


def is_open(hours: Schedule | None, at: datetime) -> bool:
    """Whether the station is open at the instant ``at`` (an aware datetime); see the module's rule."""
    if hours is None or not hours.days:
        return True
    local = at.astimezone(zone(hours.timezone))
    span = hours.days.get(WEEKDAYS[local.weekday()])
    if span is None or not span[0] <= local.strftime("%H:%M") < span[1]:
        return False
    return bool(hours.open_on_public_holidays) or not is_public_holiday(local.date())


def hour_is_open(hours: Schedule | None, hour_start: datetime) -> bool:
    """Whether the hour starting at ``hour_start`` counts as open: open at its midpoint."""
    return is_open(hours, hour_start + timedelta(minutes=30))
