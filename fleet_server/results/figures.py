"""The dashboard's figures: periods, per-station results, trends, heatmaps, availability.

Everything here reads the hourly rollups (fleet_server.results.rollups), never the raw
events, and every figure goes through fleet_server.results.small_counts before a page,
an export or the results API sees it.

Which answers count (docs/dashboard.md):
- *counted* answers are smiley presses given in opening hours that the kiosk did
  not flag as part of a repeated-press burst; the headline total and the
  satisfaction score use them;
- flagged repeated presses and out-of-hours presses are stored and shown apart;
  *all presses* is their sum;
- satisfaction = (counted 3 + counted 4) / counted, the share of the two happy faces.

Quiet is not broken: for each UTC hour of a period we know whether the station
was open (its opening hours, from the station config; every hour when none is
configured) and whether any of its kiosks was online (device_presence
transitions; an hour counts as online when a kiosk was online for at least half
of it). The overview divides counted answers by open *and* online hours; the
station page shades closed and offline hours.

Days and weeks are local (Europe/Helsinki) calendar days; a period
[first, last] runs from local midnight before ``first`` to local midnight after
``last``; both are whole UTC hours, so rollup hours never straddle a boundary.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any, Protocol, cast
from weakref import WeakKeyDictionary

from sqlalchemy import String, any_, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from fleet_server.core import i18n
from fleet_server.core.errors import BadPeriod
from fleet_server.core.i18n import N_
from fleet_server.models import (
    ChannelDay,
    ChannelHour,
    Device,
    DevicePresence,
    FeedbackEvent,
    FollowupHour,
    Station,
    StationDay,
    StationHour,
)
from fleet_server.results.groups import wilson
from fleet_server.results.rollups import COUNT_COLUMNS, SMILEYS
from fleet_server.results.small_counts import (
    Group,
    distributions,
    masked,
    series_table,
    share,
    split_hides,
    split_suppress,
    suppress,
)
from palaute_wire.contract import ANSWER_CHANNELS, OpeningHours, text_in
from palaute_wire.opening_hours import LOCAL_TZ, hour_is_open

PRESETS = {"today": 1, "7d": 7, "30d": 30}
PRESET_LABELS = {"today": N_("Today"), "7d": N_("7 days"), "30d": N_("30 days"), "this_month": N_("This month"),
                 "last_month": N_("Last month"), "this_quarter": N_("This quarter"), "last_year": N_("Last year")}
"""Translated where shown (fleet_server.core.i18n)."""
MAX_PERIOD_DAYS = 731
ONLINE_SHARE = 0.5
"""An hour counts as online when a kiosk of the station was online at least this share of it."""
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


# --------------------------------------------------------------------- periods


@dataclass(frozen=True)
class Period:
    """Local calendar days ``first``..``last`` inclusive; ``preset`` when chosen by name."""

    first: date
    last: date
    preset: str | None = None

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), LOCAL_TZ).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), LOCAL_TZ).astimezone(UTC)

    def previous(self) -> Period:
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1))

    @property
    def label(self) -> str:
        if self.preset:
            return i18n.gettext(PRESET_LABELS[self.preset])
        return f"{i18n.day(self.first)} – {i18n.day(self.last)}"

    def query(self) -> str:
        """The query-string that selects this period again."""
        if self.preset:
            return f"range={self.preset}"
        return f"range=custom&from={self.first.isoformat()}&to={self.last.isoformat()}"


def today_local(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(LOCAL_TZ).date()


CALENDAR_PRESETS = ("this_month", "last_month", "this_quarter", "last_year")
"""Calendar periods, local days: this month and this quarter so far, last month and last year whole."""


def calendar_period(name: str, today: date) -> tuple[date, date]:
    if name == "this_month":
        return today.replace(day=1), today
    if name == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last
    if name == "this_quarter":
        return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1), today
    if name == "last_year":
        return date(today.year - 1, 1, 1), date(today.year - 1, 12, 31)
    raise BadPeriod(f"no calendar period {name!r}")


def parse_period(range_: str | None, from_: str | None, to: str | None, today: date) -> Period:
    """``range`` today|7d|30d|this_month|last_month|this_quarter|last_year|custom (custom needs ``from``
    and ``to``, ISO dates)."""
    if range_ in (None, ""):
        range_ = "7d" if not (from_ or to) else "custom"
    if range_ in PRESETS:
        return Period(today - timedelta(days=PRESETS[range_] - 1), today, range_)
    if range_ in CALENDAR_PRESETS:
        first, last = calendar_period(range_, today)
        return Period(first, last, range_)
    if range_ != "custom":
        raise BadPeriod(f"range {range_!r} is not one of {', '.join(PRESET_LABELS)}, custom")
    try:
        first = date.fromisoformat(from_ or "")
        last = date.fromisoformat(to or "")
    except ValueError:
        raise BadPeriod("a custom range needs from and to as dates, e.g. from=2026-11-01&to=2026-11-27") from None
    if last < first:
        raise BadPeriod(f"the range ends ({last}) before it starts ({first})")
    if (last - first).days + 1 > MAX_PERIOD_DAYS:
        raise BadPeriod(f"a range can span at most {MAX_PERIOD_DAYS} days")
    return Period(first, last)


def period_from_utc(start: datetime, end: datetime) -> Period:
    """The local days covering [start, end) (for API callers that pass instants)."""
    first = start.astimezone(LOCAL_TZ).date()
    last = (end - timedelta(microseconds=1)).astimezone(LOCAL_TZ).date()
    return Period(first, max(first, last))


# --------------------------------------------------------------------- rollup reads


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNT_COLUMNS, 0)


LONG_IN = 100
"""Past this many station ids a read takes every station's rows and keeps the wanted ones in
Python: a 500-item IN list cost more to compile, send and plan than the extra rows cost to skip."""


def _for_stations(query: Any, column: Any, ids: Sequence[str], session: Session | None = None,
                  longest: int = LONG_IN) -> Any:
    """``query`` limited to ``column`` in ``ids``: on PostgreSQL as ``= ANY(array)`` (one parameter,
    and the (station_id, hour) index still serves it), elsewhere as IN up to ``LONG_IN`` ids
    (callers skip the rows of other stations)."""
    if session is not None and session.get_bind().dialect.name == "postgresql":
        return query.where(column == any_(bindparam(None, list(ids), type_=postgresql.ARRAY(String))))
    return query.where(column.in_(list(ids))) if len(ids) <= longest else query


CHANNEL_LABELS = {"kiosk": N_("Kiosk"), "web": N_("Web (QR code)"), "phone": N_("Phone"), "sms": N_("SMS")}
"""How the pages name the channels an answer came through (translated where shown)."""


def parse_channel(value: str | None) -> str | None:
    """The ``channel`` query parameter: one of ANSWER_CHANNELS, or None (empty, "all") for every channel."""
    if value in (None, "", "all"):
        return None
    if value not in ANSWER_CHANNELS:
        raise BadPeriod(f"channel {value!r} is not one of all, {', '.join(ANSWER_CHANNELS)}")
    return value


def _daily_days(session: Session, start: datetime, end: datetime) -> tuple[date, date] | None:
    """The local days [first, last] that [start, end) is exactly, when the daily rollups can sum it
    (PostgreSQL: kept by triggers, see StationDay; a tenth of the hourly rows); else None."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    days = period_from_utc(start, end)
    return (days.first, days.last) if days.start == start and days.end == end else None


def _rollup_table(daily: bool, by_channel: bool) -> Any:
    """The columns of the rollup table: by local day or by UTC hour, per station or per station and channel."""
    if daily:
        return (ChannelDay if by_channel else StationDay).__table__.c
    return (ChannelHour if by_channel else StationHour).__table__.c


def _rollup(session: Session, start: datetime, end: datetime, by_channel: bool) -> tuple[Any, tuple]:
    """The rollup table to sum [start, end) from (its columns) and the conditions selecting the range:
    the daily rollup where ``_daily_days`` allows it, else the hourly one."""
    days = _daily_days(session, start, end)
    t = _rollup_table(days is not None, by_channel)
    if days is not None:
        return t, (t.day >= days[0], t.day <= days[1])
    return t, (t.hour >= start, t.hour < end)


def station_totals(session: Session, station_ids: Sequence[str], start: datetime, end: datetime,
                   channel: str | None = None) -> dict[str, dict[str, int]]:
    """{station: {"c1": n, ..., "o4": n}} summed over [start, end), in one query (Core columns:
    the ORM's row loading cost more than the sums at 500 stations); of one channel's answers or all."""
    h = (StationHour if channel is None else ChannelHour).__table__.c
    cols = [func.coalesce(func.sum(h[c]), 0) for c in COUNT_COLUMNS]
    q = _for_stations(select(h.station_id, *cols).where(h.hour >= start, h.hour < end), h.station_id, station_ids,
                      session)
    if channel is not None:
        q = q.where(h.channel == channel)
    out = {sid: _zero() for sid in station_ids}
    for sid, *values in session.execute(q.group_by(h.station_id)):
        if sid in out:
            out[sid] = dict(zip(COUNT_COLUMNS, (int(v) for v in values), strict=True))
    return out


@dataclass(frozen=True)
class OverviewCounts:
    """What the overview needs of a station's rollups in a period: its counted answers by smiley
    (1..4), its repeated and its out-of-hours presses."""

    counted: dict[int, int]
    repeated: int = 0
    out_of_hours: int = 0

    @property
    def presses(self) -> int:
        """Every press: counted + repeated + out of hours."""
        return sum(self.counted.values()) + self.repeated + self.out_of_hours


@cache
def _period_sums(postgres: bool, daily: bool, by_channel: bool, with_ids: bool, kind: str) -> Any:
    """The overview's two sums over a rollup as statements built once, their range (``lo``, ``hi``;
    ``cut``, where the period starts), station ids (``ids``) and channel bound when run: building
    and keying a new statement for each page cost SQLAlchemy more CPU than PostgreSQL spends
    running it. ``kind`` "periods": counted answers by smiley and the other presses, by station
    and by which period (``cut``) a row is in; "channels": every press by station and channel."""
    t = _rollup_table(daily, by_channel)
    when = t.day if daily else t.hour
    span = [when >= bindparam("lo"), when <= bindparam("hi") if daily else when < bindparam("hi")]
    if with_ids:
        span.append(t.station_id == any_(bindparam("ids", type_=postgresql.ARRAY(String))) if postgres
                    else t.station_id.in_(bindparam("ids", expanding=True)))
    if kind == "channels":
        presses = func.sum(sum((t[c] for c in COUNT_COLUMNS[1:]), t[COUNT_COLUMNS[0]]))
        return select(t.station_id, t.channel, presses).where(*span).group_by(t.station_id, t.channel)
    if by_channel:
        span.append(t.channel == bindparam("channel"))
    current = (when >= bindparam("cut")).label("in_period")
    repeated, out_of_hours = ([t[f"{kind}{v}"] for v in SMILEYS] for kind in "ro")
    return (select(t.station_id, current, *(func.sum(t[f"c{v}"]) for v in SMILEYS),
                   func.sum(sum(repeated[1:], repeated[0])), func.sum(sum(out_of_hours[1:], out_of_hours[0])))
            .where(*span).group_by(t.station_id, current))


def _sums(session: Session, kind: str, station_ids: Sequence[str], start: datetime, end: datetime,
          cut: datetime | None = None, by_channel: bool = False, channel: str | None = None,
          every_station: bool = False) -> Sequence[Any]:
    """Run ``_period_sums``' statement over [start, end) (whole local days from the daily rollup
    on PostgreSQL, see ``_rollup``); rows of stations not in ``station_ids`` may come too."""
    postgres = session.get_bind().dialect.name == "postgresql"
    days = _daily_days(session, start, end)
    with_ids = not every_station and (postgres or len(station_ids) <= LONG_IN)
    params: dict[str, Any] = {"lo": start, "hi": end}
    if days is not None:
        params = {"lo": days[0], "hi": days[1]}
    if cut is not None:
        params["cut"] = cut if days is None else cut.astimezone(LOCAL_TZ).date()
    if with_ids:
        params["ids"] = list(station_ids)
    if channel is not None:
        params["channel"] = channel
    statement = _period_sums(postgres, days is not None, by_channel, with_ids, kind)
    return session.execute(statement, params).all()  # .all(): psycopg's fetchall, half the CPU of one by one


def totals_and_previous(session: Session, station_ids: Sequence[str], period: Period, channel: str | None = None,
                        every_station: bool = False) -> tuple[dict[str, OverviewCounts], dict[str, OverviewCounts]]:
    """Per station, the counted answers and presses of ``period`` and of the period before it
    (which ends where it starts), in one query over both: the overview's figures and their
    change (of one channel or all). Grouped by station and by which period an hour is in, with
    six plain sums: the rows are read once, where a CASE per column and period made 24
    aggregates of each row (three times the database's time at 500 stations). ``every_station``:
    ``station_ids`` are all the stations, so the query names none (500 ids cost it a third)."""
    rows = _sums(session, "periods", station_ids, period.previous().start, period.end, cut=period.start,
                 by_channel=channel is not None, channel=channel, every_station=every_station)
    wanted = set(station_ids)
    now: dict[str, OverviewCounts] = {}
    before: dict[str, OverviewCounts] = {}
    for sid, is_current, c1, c2, c3, c4, repeated, out_of_hours in rows:
        if sid in wanted:
            (now if is_current else before)[sid] = OverviewCounts(
                {1: int(c1 or 0), 2: int(c2 or 0), 3: int(c3 or 0), 4: int(c4 or 0)},
                int(repeated or 0), int(out_of_hours or 0))
    for counts in (now, before):  # stations without a row: nothing counted
        for sid in wanted.difference(counts):
            counts[sid] = OverviewCounts(dict.fromkeys(SMILEYS, 0))
    return now, before


def channels_used(session: Session, station_ids: Sequence[str], start: datetime, end: datetime,
                  minimum: int, every_station: bool = False) -> dict[str, tuple[str, ...]]:
    """Per station, the answer channels (palaute_wire.contract.ANSWER_CHANNELS order) with at least
    ``minimum`` presses in [start, end), in one query over the channel rollup. A channel with fewer is
    not named: that it brought one or two answers is a small count too."""
    found: dict[str, set[str]] = defaultdict(set)
    for sid, channel, n in _sums(session, "channels", station_ids, start, end, by_channel=True,
                                 every_station=every_station):
        if int(n or 0) >= max(1, minimum):
            found[sid].add(channel)
    order = {c: i for i, c in enumerate(ANSWER_CHANNELS)}
    return {sid: tuple(sorted(found.get(sid, ()), key=lambda c: (order.get(c, len(order)), c))) for sid in station_ids}


def station_hours(session: Session, station_id: str, start: datetime, end: datetime) -> dict[datetime, dict[str, int]]:
    """{hour: {"c1": n, ...}} of every channel, from station_hourly (one channel's: ``channel_hours``)."""
    h = StationHour
    q = select(h.hour, *(getattr(h, c) for c in COUNT_COLUMNS)).where(
        h.station_id == station_id, h.hour >= start, h.hour < end
    )
    return {hour: dict(zip(COUNT_COLUMNS, values, strict=True)) for hour, *values in session.execute(q)}


def channel_hours(session: Session, station_id: str, start: datetime, end: datetime) -> dict[str, dict[datetime, dict[str, int]]]:
    """{channel: {hour: {"c1": n, ...}}} from channel_hourly (summed over channels: station_hours)."""
    h = ChannelHour
    q = select(h.channel, h.hour, *(getattr(h, c) for c in COUNT_COLUMNS)).where(
        h.station_id == station_id, h.hour >= start, h.hour < end)
    out: dict[str, dict[datetime, dict[str, int]]] = defaultdict(dict)
    for channel, hour, *values in session.execute(q):
        out[channel][hour] = dict(zip(COUNT_COLUMNS, (int(v) for v in values), strict=True))
    return dict(out)


def channel_totals(session: Session, station_ids: Sequence[str], start: datetime,
                   end: datetime) -> dict[str, dict[str, dict[str, int]]]:
    """{station: {channel: {"c1": n, ...}}} summed over [start, end)."""
    h, span = _rollup(session, start, end, True)
    cols = [func.coalesce(func.sum(h[c]), 0) for c in COUNT_COLUMNS]
    q = (select(h.station_id, h.channel, *cols)
         .where(*span, h.station_id.in_(list(station_ids)))
         .group_by(h.station_id, h.channel))
    out: dict[str, dict[str, dict[str, int]]] = {sid: {} for sid in station_ids}
    for sid, channel, *values in session.execute(q):
        out[sid][channel] = dict(zip(COUNT_COLUMNS, (int(v) for v in values), strict=True))
    return out


def _kind_total(cols: Mapping[str, int], kind: str) -> int:
    """Answers of one row of the breakdown: c, r, o, or "all" (every press)."""
    kinds = "cro" if kind == "all" else kind
    return sum(int(cols.get(f"{k}{v}", 0)) for k in kinds for v in SMILEYS)


def channel_guard(per_channel: Mapping[str, Mapping[str, int]], channel: str | None, minimum: int,
                  kind: str = "c") -> bool:
    """True when one channel's figure must be hidden because the split by channel hides it
    (fleet_server.results.small_counts.split_hides); never for the all-channel view."""
    if channel is None:
        return False
    return split_hides({ch: _kind_total(cols, kind) for ch, cols in per_channel.items()}, channel, minimum)


def breakdown_hides_presses(counts: OverviewCounts, minimum: int) -> bool:
    """Does the station page's breakdown hide all presses (``BREAKDOWN_SUM``)? Then so does the
    overview beside the counted answers, or presses minus counted would give what the page hides."""
    values = {"counted": sum(counts.counted.values()), "repeated": counts.repeated,
              "out_of_hours": counts.out_of_hours}
    if all(n == 0 or n >= minimum for n in values.values()):
        return False  # nothing small: nothing to hide (the common case, 500 times an overview)
    values["all"] = counts.presses
    total, parts = BREAKDOWN_SUM
    return total in suppress(values, [Group(total, parts)], minimum, prefer=[total])


def by_kind(cols: Mapping[str, int], kind: str) -> dict[int, int]:
    return {v: int(cols.get(f"{kind}{v}", 0)) for v in SMILEYS}


def all_presses(cols: Mapping[str, int]) -> dict[int, int]:
    return {v: sum(int(cols.get(f"{k}{v}", 0)) for k in "cro") for v in SMILEYS}


# --------------------------------------------------------------------- availability


def opening_hours_for(session: Session, station_id: str) -> OpeningHours | None:
    """The station's opening hours from its newest config (or the fleet defaults); None if unset."""
    try:
        from fleet_server.models import StationConfigVersion as V
    except ImportError:  # fleet ops not installed: every hour counts as open
        return None
    for scope in (station_id, None):
        cond = V.station_id == scope if scope is not None else V.station_id.is_(None)
        for settings in session.scalars(select(V.settings).where(cond).order_by(V.id.desc()).limit(5)):
            if isinstance(settings, dict) and settings.get("opening_hours"):
                try:
                    return OpeningHours.model_validate(settings["opening_hours"])
                except ValueError:
                    continue
    return None


def _online_by_hour(session: Session, station_id: str, start: datetime, end: datetime) -> dict[int, float]:
    """{epoch second of a UTC hour: seconds of it when at least one kiosk of the station was online}."""
    device_ids = list(session.scalars(select(Device.id).where(Device.station_id == station_id)))
    if not device_ids:
        return {}
    p = DevicePresence
    t_start, t_end = start.timestamp(), min(end, datetime.now(UTC)).timestamp()
    intervals: list[tuple[float, float]] = []
    for device_id in device_ids:
        before = session.execute(
            select(p.online).where(p.device_id == device_id, p.at < start).order_by(p.at.desc(), p.id.desc()).limit(1)
        ).scalar()
        online_since = t_start if before else None
        for at, online in session.execute(
            select(p.at, p.online).where(p.device_id == device_id, p.at >= start, p.at < end).order_by(p.at, p.id)
        ):
            if online and online_since is None:
                online_since = at.timestamp()
            elif not online and online_since is not None:
                intervals.append((online_since, at.timestamp()))
                online_since = None
        if online_since is not None and online_since < t_end:
            intervals.append((online_since, t_end))
    intervals.sort()
    merged: list[list[float]] = []
    for a, b in intervals:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    seconds: dict[int, float] = defaultdict(float)
    for a, b in merged:
        h = int(a // 3600 * 3600)
        while h < b:
            seconds[h] += min(b, h + 3600) - max(a, h)
            h += 3600
    return seconds


def _online_enough(hour_ts: int, secs: float, now_ts: float) -> bool:
    span = max(1.0, min(3600.0, now_ts - hour_ts))  # the current hour counts its elapsed part
    return hour_ts <= now_ts and secs >= ONLINE_SHARE * span


def online_seconds(session: Session, station_id: str, start: datetime, end: datetime) -> dict[datetime, float]:
    """Seconds in each UTC hour of [start, end) when at least one kiosk of the station was online."""
    return {
        datetime.fromtimestamp(h, UTC): v for h, v in _online_by_hour(session, station_id, start, end).items()
    }


def open_online_hours(session: Session, station_id: str, start: datetime, end: datetime,
                      now: datetime | None = None) -> int:
    """How many hours of [start, end) the station was open and a kiosk online (the overview's divisor).

    Walks only the hours with a kiosk online, so a year costs what its online hours cost.
    """
    now_ts = (now or datetime.now(UTC)).timestamp()
    hours_oh = opening_hours_for(session, station_id)
    return sum(
        1
        for h, secs in _online_by_hour(session, station_id, start, end).items()
        if _online_enough(h, secs, now_ts)
        and hour_is_open(hours_oh, datetime.fromtimestamp(h, UTC))
    )


_OPENING_HOURS_CACHE: WeakKeyDictionary[Any, tuple[int | None, dict[str | None, OpeningHours]]] = (
    WeakKeyDictionary()
)
"""Per database (engine): the newest config row id, and each scope's newest valid opening hours then."""


def _opening_hours_layers(session: Session) -> dict[str | None, OpeningHours]:
    """Each scope's (station id, None for the fleet) newest valid opening hours. Config rows are
    append-only, so the newest row id says whether the cached answer still holds: one cheap
    query a page instead of reading every config version ever saved."""
    from fleet_server.models import StationConfigVersion as V

    newest = session.scalar(select(func.max(V.id)))
    bind = session.get_bind()
    cached = _OPENING_HOURS_CACHE.get(bind)
    if cached is not None and cached[0] == newest:
        return cached[1]
    found: dict[str | None, OpeningHours] = {}
    for scope, settings in session.execute(select(V.station_id, V.settings).order_by(V.id.desc())):
        if scope in found or not isinstance(settings, dict) or not settings.get("opening_hours"):
            continue
        try:
            found[scope] = OpeningHours.model_validate(settings["opening_hours"])
        except ValueError:
            continue
    _OPENING_HOURS_CACHE[bind] = (newest, found)
    return found


def opening_hours_many(session: Session, station_ids: Sequence[str]) -> dict[str, OpeningHours | None]:
    """``opening_hours_for`` of many stations (the newest valid setting per scope), cached."""
    found = _opening_hours_layers(session)
    return {sid: found.get(sid, found.get(None)) for sid in station_ids}


def _device_states(session: Session, station_ids: Sequence[str], at: datetime) -> tuple[dict[str, str], dict[str, bool]]:
    """The devices of the stations ({device: station}) and whether each was online at ``at`` (its
    newest transition before, found through the (device_id, at) index), in one query."""
    p = DevicePresence.__table__.c
    d = Device.__table__.c
    wanted = set(station_ids)
    before = (select(p.online).where(p.device_id == d.id, p.at < at)
              .order_by(p.at.desc(), p.id.desc()).limit(1).scalar_subquery())
    devices: dict[str, str] = {}
    state: dict[str, bool] = {}
    for device_id, sid, online in session.execute(_for_stations(select(d.id, d.station_id, before),
                                                                d.station_id, station_ids)).all():
        if sid in wanted:
            devices[device_id] = sid
            state[device_id] = bool(online)
    return devices, state


def _spans(session: Session, devices: Mapping[str, str], state: Mapping[str, bool], station_ids: Sequence[str],
           start: datetime, end: datetime, now: datetime, by_time: bool = False) -> dict[str, list[tuple[float, float]]]:
    """Per station, the merged spans (epoch seconds) of [start, min(end, now)) when a kiosk of it
    was online, from each device's state at ``start`` and one query for the transitions.
    ``by_time``: every device's transitions in the range through the index on ``at`` (a short
    range, the last hour: a few rows, where a list of 1,000 devices is 1,000 index probes)."""
    p = DevicePresence.__table__.c
    out: dict[str, list[tuple[float, float]]] = {sid: [] for sid in station_ids}
    if not devices:
        return out
    t_start, t_end = start.timestamp(), min(end, now).timestamp()
    since: dict[str, float | None] = {dev: (t_start if state.get(dev) else None) for dev in devices}
    intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
    q = select(p.device_id, p.at, p.online).where(p.at >= start, p.at < end)
    if not by_time:
        q = _for_stations(q, p.device_id, list(devices), session, 2 * LONG_IN)
    for device_id, at, online in session.execute(q.order_by(p.device_id, p.at, p.id)).all():
        if device_id not in devices:
            continue
        if online:
            if since[device_id] is None:
                since[device_id] = at.timestamp()
        elif since[device_id] is not None:
            intervals[devices[device_id]].append((cast(float, since[device_id]), at.timestamp()))
            since[device_id] = None
    for device_id, t in since.items():
        if t is not None and t < t_end:
            intervals[devices[device_id]].append((t, t_end))
    for sid, spans in intervals.items():
        spans.sort()
        merged: list[list[float]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out[sid] = [(a, b) for a, b in merged]
    return out


def _online_spans_many(session: Session, station_ids: Sequence[str], start: datetime,
                       end: datetime, now: datetime | None = None) -> dict[str, list[tuple[float, float]]]:
    """Per station, the merged spans (epoch seconds) when a kiosk of it was online, in two queries."""
    devices, state = _device_states(session, station_ids, start)
    return _spans(session, devices, state, station_ids, start, end, now or datetime.now(UTC))


def _count_open_online(spans: Mapping[str, list[tuple[float, float]]], hours_oh: Mapping[str, OpeningHours | None],
                       station_ids: Sequence[str], start: datetime, end: datetime, now_ts: float) -> dict[str, int]:
    """Per station, the hours of [start, end) that were open and online at least half (the rule of
    ``open_online_hours``), from its online spans."""
    hour0 = int(start.timestamp()) // 3600 * 3600
    n_hours = max(0, int((end.timestamp() - hour0) // 3600))
    # Open hours as prefix sums, once per distinct opening-hours setting (most stations share
    # the fleet default), so an online span counts its whole open hours in O(1).
    keys = {sid: (None if hours_oh[sid] is None else cast(OpeningHours, hours_oh[sid]).model_dump_json())
            for sid in station_ids}
    prefix: dict[str | None, list[int]] = {}
    for sid, key in keys.items():
        if key not in prefix:
            acc = [0]
            for i in range(n_hours):
                acc.append(acc[-1] + hour_is_open(hours_oh[sid], datetime.fromtimestamp(hour0 + 3600 * i, UTC)))
            prefix[key] = acc
    result: dict[str, int] = {}
    for sid in station_ids:
        open_sum = prefix[keys[sid]]
        count = 0
        partial: dict[int, float] = defaultdict(float)  # hour index -> online seconds in a part-covered hour
        for a, b in spans.get(sid, []):
            first_full = -(-int(a - hour0) // 3600)  # ceil
            last_full = int(b - hour0) // 3600
            if first_full < last_full:
                lo, hi = max(0, first_full), min(n_hours, last_full)
                if lo < hi:
                    count += open_sum[hi] - open_sum[lo]
                if (a - hour0) % 3600:
                    partial[first_full - 1] += hour0 + 3600 * first_full - a
                if (b - hour0) % 3600:
                    partial[last_full] += b - (hour0 + 3600 * last_full)
            else:  # within one hour, or across one boundary without a whole hour
                i = int(a - hour0) // 3600
                while hour0 + 3600 * i < b:
                    h = hour0 + 3600 * i
                    partial[i] += min(b, h + 3600) - max(a, h)
                    i += 1
        for i, secs in partial.items():
            if 0 <= i < n_hours and _online_enough(hour0 + 3600 * i, secs, now_ts) and open_sum[i + 1] > open_sum[i]:
                count += 1
        result[sid] = count
    return result


SETTLED = timedelta(minutes=5)
"""An hour that ended this long ago has all its presence transitions stored (they are stamped
with the time the server received the status), so its open/online verdict no longer changes."""
_SETTLED_CACHE: WeakKeyDictionary[Any, dict[tuple, int]] = WeakKeyDictionary()
"""Per database (engine): (station, start, settled end, opening hours, devices) -> open/online hours."""
_SETTLED_CACHE_SIZE = 50_000


_STATE_CACHE: WeakKeyDictionary[Any, tuple[datetime, dict[str, bool]]] = WeakKeyDictionary()
"""Per database (engine): a settled hour, and whether each kiosk was online at it."""


def _settled_states(session: Session, station_ids: Sequence[str],
                    settled: datetime) -> tuple[dict[str, str], dict[str, bool]]:
    """``_device_states`` at a settled hour, which no longer changes: kept per process, so a page
    asks only for the devices (and the state of a kiosk first seen since)."""
    d = Device.__table__.c
    wanted = set(station_ids)
    devices = {device_id: sid for device_id, sid in session.execute(
        _for_stations(select(d.id, d.station_id), d.station_id, station_ids)).all() if sid in wanted}
    bind = session.get_bind()
    cached = _STATE_CACHE.get(bind)
    state = cached[1] if cached is not None and cached[0] == settled else {}
    if any(device_id not in state for device_id in devices):
        _devices, fresh = _device_states(session, station_ids, settled)
        state = {**state, **fresh}
        _STATE_CACHE[bind] = (settled, state)
    return devices, {device_id: state.get(device_id, False) for device_id in devices}


def open_online_hours_many(session: Session, station_ids: Sequence[str], start: datetime, end: datetime,
                           now: datetime | None = None) -> dict[str, int]:
    """``open_online_hours`` for many stations at once, in a constant number of queries.

    The settled hours of the period (those that ended ``SETTLED`` ago) are counted once per
    station, period start, settled end, opening hours and set of kiosks, and kept per
    process; a page then reads only the transitions since the settled end (the last hour
    or so) and each kiosk's state at it. The count is exact: hours are counted one by
    one, so [start, end) is [start, settled) plus [settled, end).
    """
    now = now or datetime.now(UTC)
    now_ts = now.timestamp()
    ids = list(station_ids)
    hours_oh = opening_hours_many(session, ids)
    settled = min(end, (now - SETTLED).replace(minute=0, second=0, microsecond=0))
    if settled <= start:
        return _count_open_online(_online_spans_many(session, ids, start, end, now), hours_oh, ids, start, end, now_ts)
    devices, state = _settled_states(session, ids, settled)
    by_station: dict[str, list[str]] = defaultdict(list)
    for device_id, sid in devices.items():
        by_station[sid].append(device_id)
    cache = _SETTLED_CACHE.setdefault(session.get_bind(), {})
    keys = {sid: (sid, start, settled, None if hours_oh[sid] is None else cast(OpeningHours, hours_oh[sid])
                  .model_dump_json(), tuple(sorted(by_station.get(sid, ())))) for sid in ids}
    missing = [sid for sid in ids if keys[sid] not in cache]
    if missing:
        if len(cache) > _SETTLED_CACHE_SIZE:
            cache.clear()
        counted = _count_open_online(_online_spans_many(session, missing, start, settled, now), hours_oh, missing,
                                     start, settled, now_ts)
        for sid in missing:
            cache[keys[sid]] = counted[sid]
    result = {sid: cache[keys[sid]] for sid in ids}
    if settled < end:
        live = _count_open_online(_spans(session, devices, state, ids, settled, end, now, by_time=True), hours_oh,
                                  ids, settled, end, now_ts)
        for sid in ids:
            result[sid] += live[sid]
    return result


@dataclass
class Availability:
    """Per UTC hour of a period: open (opening hours) and online (a kiosk up)."""

    hours: list[datetime]
    open: dict[datetime, bool]
    online: dict[datetime, bool]
    opening_hours_known: bool

    @property
    def open_online_hours(self) -> int:
        return sum(1 for h in self.hours if self.open[h] and self.online[h])

    @property
    def open_hours(self) -> int:
        return sum(1 for h in self.hours if self.open[h])

    def status(self, h: datetime) -> str:
        if not self.open.get(h, True):
            return "closed"
        return "online" if self.online.get(h) else "offline"


def availability(session: Session, station_id: str, start: datetime, end: datetime, now: datetime | None = None) -> Availability:
    now = now or datetime.now(UTC)
    hours_oh = opening_hours_for(session, station_id)
    hours = []
    h = start
    while h < end:
        hours.append(h)
        h += timedelta(hours=1)
    secs = _online_by_hour(session, station_id, start, end)
    now_ts = now.timestamp()
    online = {}
    for h in hours:
        ts = int(h.timestamp())
        online[h] = _online_enough(ts, secs.get(ts, 0.0), now_ts)
    return Availability(hours, {h: hour_is_open(hours_oh, h) for h in hours}, online, hours_oh is not None)


# --------------------------------------------------------------------- overview


@dataclass
class OverviewRow:
    station_id: str
    name: str
    dist: dict
    """Counted answers: counts, total, shares, satisfaction (small-count rule applied)."""
    previous: dict
    presses: int | None
    """All presses (counted + repeated + out of hours), hidden below the minimum."""
    open_online_hours: int
    per_hour: float | None
    satisfaction_change: float | None
    total_change: float | None
    counted_raw: dict[int, int] = field(default_factory=dict)
    """The counted answers before the rule, for the group cascade (never shown)."""
    interval: tuple[float, float] | None = None
    """95 % Wilson interval of satisfaction (fleet_server.results.groups), None when hidden."""
    versus: str | None = None
    """lower / higher / similar than the other stations shown, or "not compared"."""
    channels: tuple[str, ...] = ()
    """The channels (kiosk, web, phone, sms) that brought it at least ``minimum`` presses in the period."""


def stations_visible(session: Session, allowed: Iterable[str] | None = None) -> list[Station]:
    """The stations (of ``allowed``, or all), by name; a short ``allowed`` is asked for by id, so a
    group page loads its own stations and not the country's."""
    q = select(Station)
    if allowed is None:
        return i18n.by_name(session.scalars(q))
    keep = set(allowed)
    if not keep:
        return []
    return i18n.by_name(s for s in session.scalars(_for_stations(q, Station.id, sorted(keep), session)) if s.id in keep)


class _Named(Protocol):
    @property
    def id(self) -> str: ...

    def name_in(self, lang: str) -> str: ...


def overview(session: Session, stations: Sequence[_Named], period: Period, minimum: int,
             channel: str | None = None, every_station: bool = False) -> list[OverviewRow]:
    """One row per station; ``channel``: that channel's answers only, hidden where the split
    of the station's figures by channel hides them (``channel_guard``). ``every_station``: the
    stations are all there are (the queries then list none)."""
    ids = [s.id for s in stations]
    now_totals, prev_totals = totals_and_previous(session, ids, period, channel, every_station)
    if channel is not None:
        prev = period.previous()
        now_split = channel_totals(session, ids, period.start, period.end)
        prev_split = channel_totals(session, ids, prev.start, prev.end)
    all_hours = open_online_hours_many(session, ids, period.start, period.end)
    channels = channels_used(session, ids, period.start, period.end, minimum, every_station)
    counted = {sid: now_totals[sid].counted for sid in ids}
    # One call for every station (no sums between them here: the group cascade adds those).
    current = distributions(counted, minimum, forced=[
        sid for sid in ids if channel is not None and channel_guard(now_split[sid], channel, minimum)])
    previous = distributions({sid: prev_totals[sid].counted for sid in ids}, minimum, forced=[
        sid for sid in ids if channel is not None and channel_guard(prev_split[sid], channel, minimum)])
    lang = i18n.lang()
    rows = []
    for s in stations:
        cur, before = current[s.id], previous[s.id]
        presses = now_totals[s.id].presses
        presses_hidden = presses < minimum or breakdown_hides_presses(now_totals[s.id], minimum) or (
            channel is not None and channel_guard(now_split[s.id], channel, minimum, "all"))
        hours = all_hours[s.id]
        per_hour = share(cur["total"], hours, 1) if cur["total"] is not None and hours else None
        sat_change = (
            cur["satisfaction"] - before["satisfaction"]
            if cur["satisfaction"] is not None and before["satisfaction"] is not None
            else None
        )
        total_change = (
            (cur["total"] - before["total"]) / before["total"]
            if cur["total"] is not None and before["total"]
            else None
        )
        rows.append(
            OverviewRow(
                station_id=s.id,
                name=s.name_in(lang),
                dist=cur,
                previous=before,
                presses=None if presses_hidden else presses,
                open_online_hours=hours,
                per_hour=per_hour,
                satisfaction_change=sat_change,
                total_change=total_change,
                counted_raw=counted[s.id],
                channels=channels[s.id],
            )
        )
    return rows


def channel_split(by_channel: Mapping[str, Mapping[datetime, Mapping[str, int]]], minimum: int,
                  hides: Mapping[str | None, frozenset[Hashable]]) -> list[dict]:
    """The station's counted answers side by side by channel (the channels it used in the period), and all.

    Each channel's distribution is one row of a table whose all-channel row is published, so
    the rows are suppressed together (secondary suppression hides a second channel where a
    single one would be hidden: its count would be the total minus the others). ``by_channel``:
    the period's hours by channel (``channel_hours``); ``hides``: what the station's pages hide
    (``_page_hidden``), so a channel's counted answers hidden there are hidden here too.
    Satisfaction carries its 95 % Wilson interval where shown.
    """
    per_channel = {ch: _sum_hours(hours) for ch, hours in by_channel.items()}
    used = [ch for ch in ANSWER_CHANNELS if _kind_total(per_channel.get(ch, {}), "c")]
    rows: dict[str, dict[int, int]] = {ch: by_kind(per_channel[ch], "c") for ch in used}
    rows["all"] = {v: sum(r[v] for r in rows.values()) for v in SMILEYS}
    forced = [ch for ch in (*used, None) if "counted" in hides.get(ch, frozenset())]
    dists = distributions(rows, minimum, all_key="all", forced=["all" if ch is None else ch for ch in forced])
    out = []
    for key in (*used, "all"):
        d = dists[key]
        counts = rows[key]
        out.append({"channel": key, "label": CHANNEL_LABELS.get(key, key), "dist": d,
                    "interval": None if d["hidden"] else wilson(counts[3] + counts[4], sum(counts.values()))})
    return out


SORT_KEYS = {
    "name": lambda r: (r.name.lower(),),
    "total": lambda r: (r.dist["total"] is None, -(r.dist["total"] or 0)),
    "satisfaction": lambda r: (r.dist["satisfaction"] is None, -(r.dist["satisfaction"] or 0)),
    "per_hour": lambda r: (r.per_hour is None, -(r.per_hour or 0)),
    "change": lambda r: (r.satisfaction_change is None, -(r.satisfaction_change or 0)),
}


def sort_rows(rows: list[OverviewRow], key: str, descending: bool) -> list[OverviewRow]:
    """Sort by ``key``; stations with hidden figures always go last."""
    fn = SORT_KEYS.get(key, SORT_KEYS["name"])
    ordered = sorted(rows, key=fn)
    if key != "name" and not descending:
        shown = [r for r in ordered if not fn(r)[0]]
        hidden = [r for r in ordered if fn(r)[0]]
        ordered = list(reversed(shown)) + hidden
    elif key == "name" and descending:
        ordered.reverse()
    return ordered


# --------------------------------------------------------------------- station page


def _bucket_index(buckets: Sequence[tuple[date, date]]) -> dict[date, int]:
    """Local day -> the position of the (first day, last day) bucket that holds it."""
    index = {}
    for i, (first, last) in enumerate(buckets):
        day = first
        while day <= last:
            index[day] = i
            day += timedelta(days=1)
    return index


def period_buckets(period: Period, granularity: str) -> list[tuple[date, date]]:
    out = []
    if granularity == "week":
        d = period.first - timedelta(days=period.first.weekday())
        while d <= period.last:
            out.append((max(d, period.first), min(d + timedelta(days=6), period.last)))
            d += timedelta(days=7)
    else:
        d = period.first
        while d <= period.last:
            out.append((d, d))
            d += timedelta(days=1)
    return out


def _local_day(h: datetime) -> date:
    return h.astimezone(LOCAL_TZ).date()


@dataclass
class StationPage:
    station: Station
    period: Period
    minimum: int
    breakdown: dict
    trend: list[dict] = field(default_factory=list)
    trend_total: dict = field(default_factory=dict)
    granularity: str = "day"
    heatmap: list[dict] = field(default_factory=list)
    heatmap_total: int | None = None
    followups: list[dict] = field(default_factory=list)
    availability: Availability | None = None
    channel: str | None = None
    """The one channel shown (None: all channels)."""
    channels: list[dict] = field(default_factory=list)
    """The counted answers side by side by channel (``channel_split``)."""


def _sum_hours(hours: Mapping[datetime, Mapping[str, int]]) -> dict[str, int]:
    totals = _zero()
    for cols in hours.values():
        for c, n in cols.items():
            totals[c] += n
    return totals


KINDS = (("counted", "c"), ("repeated", "r"), ("out_of_hours", "o"), ("all", "all"))
"""The breakdown's rows and the count columns they sum (``_kind_total``); "all" is the other three."""
BREAKDOWN_SUM = ("all", ("counted", "repeated", "out_of_hours"))
"""The breakdown's published sum. Where it needs one more hidden figure, all presses go before the
counted answers (``prefer``): 3 repeated presses beside 0 out of hours would be all minus counted."""
HEAT_CELLS = tuple(("cell", d, hr) for d in range(7) for hr in range(24))
"""The heatmap's cells: local weekday (0 Monday) and hour of day."""


def _page_figures(hours: Mapping[datetime, Mapping[str, int]], index: Mapping[date, int],
                  n_buckets: int) -> dict[Hashable, int]:
    """The counts a station page publishes from these hours: the trend's buckets (counted answers
    per day or week, by position), the heatmap's cells (``HEAT_CELLS``) and the breakdown (``KINDS``)."""
    out: dict[Hashable, int] = dict.fromkeys(range(n_buckets), 0) | dict.fromkeys(HEAT_CELLS, 0)
    for h, cols in hours.items():
        n = sum(int(cols.get(f"c{v}", 0)) for v in SMILEYS)
        i = index.get(_local_day(h))
        if i is not None:
            out[i] += n
        local = h.astimezone(LOCAL_TZ)
        out[("cell", local.weekday(), local.hour)] += n
    totals = _sum_hours(hours)
    for key, kind in KINDS:
        out[key] = _kind_total(totals, kind)
    return out


def _page_hidden(all_hours: Mapping[datetime, Mapping[str, int]],
                 by_channel: Mapping[str, Mapping[datetime, Mapping[str, int]]],
                 index: Mapping[date, int], n_buckets: int, minimum: int,
                 channel: str | None) -> dict[str | None, frozenset[Hashable]]:
    """What the station page of each channel (None: all channels) hides of ``_page_figures``.

    The page of every channel and the all-channel page publish the same table split by channel,
    so it is suppressed as one (``split_suppress``): the trend, the heatmap and the breakdown
    together, as the counted answers are the sum of the trend's buckets and of the heatmap's cells.
    """
    rows: dict[str | None, dict[Hashable, int]] = {None: _page_figures(all_hours, index, n_buckets)}
    for ch in sorted({*by_channel, *([channel] if channel is not None else [])}):
        rows[ch] = _page_figures(by_channel.get(ch, {}), index, n_buckets)
    sums = [("counted", tuple(range(n_buckets))), ("counted", HEAT_CELLS), BREAKDOWN_SUM]
    return split_suppress(rows, None, minimum, sums, prefer=["all"])


def _page_hours(session: Session, station_id: str, period: Period, channel: str | None) -> tuple[
        dict[datetime, dict[str, int]], dict[str, dict[datetime, dict[str, int]]], Mapping[datetime, Mapping[str, int]]]:
    """The period's hours of every channel, by channel, and of the page's channel (None: every channel)."""
    by_channel = channel_hours(session, station_id, period.start, period.end)
    all_hours = station_hours(session, station_id, period.start, period.end)
    return all_hours, by_channel, all_hours if channel is None else by_channel.get(channel, {})


def _trend(hours: Mapping[datetime, Mapping[str, int]], index: Mapping[date, int], n_buckets: int,
           hidden: frozenset[Hashable], minimum: int) -> dict[int | str, dict]:
    """The trend's distributions: counted answers per bucket (by position) and the period ("period"),
    hidden as the page's table hides them (``_page_hidden``)."""
    per_bucket: list[dict[int, int]] = [dict.fromkeys(SMILEYS, 0) for _ in range(n_buckets)]
    for h, cols in hours.items():
        i = index.get(_local_day(h))
        if i is not None:
            for v in SMILEYS:
                per_bucket[i][v] += int(cols.get(f"c{v}", 0))
    rows: dict[int | str, dict[int, int]] = dict(enumerate(per_bucket))
    rows["period"] = {v: sum(c[v] for c in per_bucket) for v in SMILEYS}
    forced = [i for i in range(n_buckets) if i in hidden] + (["period"] if "counted" in hidden else [])
    return distributions(rows, minimum, all_key="period", forced=forced)


def station_page(session: Session, station: Station, period: Period, minimum: int, granularity: str = "day",
                 channel: str | None = None) -> StationPage:
    """The station's figures, of all channels or of one (``channel``); the pages of every channel
    hide what their one table split by channel hides (``_page_hidden``)."""
    all_hours, by_channel, hours = _page_hours(session, station.id, period, channel)
    buckets = period_buckets(period, granularity)
    index = _bucket_index(buckets)
    hides = _page_hidden(all_hours, by_channel, index, len(buckets), minimum, channel)
    hidden = hides[channel]

    totals = _sum_hours(hours)
    breakdown = distributions(
        {
            "counted": by_kind(totals, "c"),
            "repeated": by_kind(totals, "r"),
            "out_of_hours": by_kind(totals, "o"),
            "all": all_presses(totals),
        },
        minimum,
        all_key="all",
        forced=[key for key, _ in KINDS if key in hidden],
    )
    avail = availability(session, station.id, period.start, period.end)

    # Trend: counted answers per local day or ISO week, with open/online hours per bucket.
    dists = _trend(hours, index, len(buckets), hidden, minimum)
    bucket_hours: list[dict[str, int]] = [{"open": 0, "online": 0, "offline": 0, "closed": 0} for _ in buckets]
    for h in avail.hours:
        i = index.get(_local_day(h))
        if i is None:
            continue
        status = avail.status(h)
        bucket_hours[i][status] += 1
        if status != "closed":
            bucket_hours[i]["open"] += 1
    trend = [
        {
            "first": a,
            "last": b,
            "label": i18n.day_month(a) if granularity == "day"
            else i18n.gettext("wk {week} ({day})").format(week=a.isocalendar().week, day=i18n.day_month(a)),
            "dist": dists[i],
            "hours": bucket_hours[i],
        }
        for i, (a, b) in enumerate(buckets)
    ]

    # Heatmap: counted answers by local weekday x hour of day; each cell its own base.
    grid: dict[tuple[int, int], int] = defaultdict(int)
    for h, cols in hours.items():
        local = h.astimezone(LOCAL_TZ)
        grid[(local.weekday(), local.hour)] += sum(cols[f"c{v}"] for v in SMILEYS)
    cell_status: dict[tuple[int, int], dict[str, int]] = defaultdict(lambda: {"online": 0, "offline": 0, "closed": 0})
    for h in avail.hours:
        local = h.astimezone(LOCAL_TZ)
        cell_status[(local.weekday(), local.hour)][avail.status(h)] += 1
    keys = [(d, hr) for d in range(7) for hr in range(24)]
    shown_cells, heat_total = series_table([grid.get(k, 0) for k in keys], minimum, forced=[
        *(i for i, cell in enumerate(HEAT_CELLS) if cell in hidden), *(["total"] if "counted" in hidden else [])])
    heatmap = []
    for d in range(7):
        cells = []
        for hr in range(24):
            st = cell_status.get((d, hr), {"online": 0, "offline": 0, "closed": 0})
            open_hours = st["online"] + st["offline"]
            if open_hours == 0:
                state = "closed" if st["closed"] else "none"
            else:
                state = "off" if st["offline"] > st["online"] else "on"
            cells.append({"hour": hr, "n": shown_cells[d * 24 + hr], "state": state, **st})
        heatmap.append({"day": i18n.weekday_names()[d], "cells": cells})

    return StationPage(
        station=station,
        period=period,
        minimum=minimum,
        breakdown=breakdown,
        trend=trend,
        trend_total=dists["period"],
        granularity=granularity,
        heatmap=heatmap,
        heatmap_total=heat_total,
        followups=followup_tables(session, station.id, period, minimum, channel),
        availability=avail,
        channel=channel,
        channels=channel_split(by_channel, minimum, hides),
    )


def followup_labels(session: Session, station_id: str, lang: str = "en") -> dict[str, str]:
    """Texts for follow-up ids: ``question_id`` -> question, ``question_id/option_id`` -> option.

    Answers carry ids only, so the page names them from the surveys that may have
    asked them: the shipped templates first, then the station's current config
    (which wins, so a station's own wording is what coordinators read).
    """
    from fleet_server.fleet.remote_config import ConfigInvalid, build_station_config
    from fleet_server.fleet.survey_templates import TEMPLATES

    surveys = [make() for _title, make in TEMPLATES.values()]
    try:
        surveys.append(build_station_config(session, station_id).survey)
    except (KeyError, ConfigInvalid):
        pass
    labels: dict[str, str] = {}
    for survey in surveys:
        for question in survey.followups:
            labels[question.id] = text_in(question.text, lang) or question.id
            for option in question.options:
                labels[f"{question.id}/{option.id}"] = text_in(option.text, lang) or option.id
    return labels


def followups_by_channel(session: Session, station_id: str, period: Period) -> dict[str, dict[str, dict[int, dict[str, int]]]]:
    """{channel: {question: {smiley: {option: n}}}} from the stored answers (follow-up rollups
    have no channel): each follow-up by its own time, under the smiley it follows (0: not seen)."""
    f, sm = FeedbackEvent, aliased(FeedbackEvent)
    q = (
        select(f.channel, f.question_id, sm.value, f.option_id, func.count())
        .select_from(f)
        .outerjoin(sm, (sm.event_id == f.answer_to) & (sm.kind == "smiley"))
        .where(f.station_id == station_id, f.kind == "followup", f.ts >= period.start, f.ts < period.end)
        .group_by(f.channel, f.question_id, sm.value, f.option_id)
    )
    out: dict[str, dict[str, dict[int, dict[str, int]]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for channel, question_id, smiley, option_id, n in session.execute(q):
        cell = out[channel or "kiosk"][question_id][int(smiley or 0)]
        cell[option_id or ""] = cell.get(option_id or "", 0) + int(n)
    return out


def followup_tables(session: Session, station_id: str, period: Period, minimum: int,
                    channel: str | None = None) -> list[dict]:
    """Per follow-up question: reason counts by the smiley they follow.

    Each smiley's column is one breakdown based on its follow-up answers, shown
    or hidden whole; the question's total is published, so the columns get
    secondary suppression against it. ``channel``: that channel's follow-ups (from the
    stored answers), a column hidden where the split of its base by channel hides it.
    """
    labels = followup_labels(session, station_id, i18n.lang())
    every: dict[str, dict[int, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    f = FollowupHour
    q = (
        select(f.question_id, f.smiley, f.option_id, func.sum(f.n))
        .where(f.station_id == station_id, f.hour >= period.start, f.hour < period.end)
        .group_by(f.question_id, f.smiley, f.option_id)
    )
    for question_id, smiley, option_id, n in session.execute(q):
        every[question_id][smiley][option_id] = int(n)
    split = followups_by_channel(session, station_id, period)
    data = every if channel is None else split.get(channel, {})
    tables = []
    for question_id in sorted(data):
        columns = data[question_id]
        smileys = sorted(columns)
        bases: dict[Any, int] = {v: sum(columns[v].values()) for v in smileys}
        bases["total"] = sum(bases.values())
        # The question's table split by channel, suppressed as one (as the station page's figures).
        sources = [(None, every), *sorted(split.items())]
        every_smiley = sorted({v for _, by_question in sources for v in by_question.get(question_id, {})})
        rows: dict[str | None, dict[Any, int]] = {}
        for ch, by_question in sources:
            cols = by_question.get(question_id, {})
            rows[ch] = {v: sum(cols.get(v, {}).values()) for v in every_smiley}
            rows[ch]["total"] = sum(rows[ch].values())
        hides = split_suppress(rows, None, minimum, [("total", tuple(every_smiley))])
        hidden = suppress(bases, [Group("total", tuple(smileys))], minimum, hides.get(channel, frozenset()))
        shown = masked(bases, hidden)
        options = sorted({o for v in smileys for o in columns[v]})
        tables.append(
            {
                "question_id": question_id,
                "question": labels.get(question_id, question_id),
                "labels": {o: labels.get(f"{question_id}/{o}", o) for o in options},
                "smileys": smileys,
                "options": options,
                "bases": shown,
                "cells": {
                    (o, v): (None if v in hidden else columns[v].get(o, 0)) for o in options for v in smileys
                },
            }
        )
    return tables


# --------------------------------------------------------------------- comparison


def comparison(
    session: Session, stations: Sequence[Station], period: Period, minimum: int, granularity: str = "day",
    channel: str | None = None,
) -> dict:
    """Side by side: the overview row and the satisfaction trend of each chosen station (of one channel or all)."""
    rows = overview(session, stations, period, minimum, channel)
    buckets = period_buckets(period, granularity)
    index = _bucket_index(buckets)
    series = {}
    for s in stations:  # each station's trend as its page shows it
        all_hours, by_channel, hours = _page_hours(session, s.id, period, channel)
        hidden = _page_hidden(all_hours, by_channel, index, len(buckets), minimum, channel)[channel]
        series[s.id] = _trend(hours, index, len(buckets), hidden, minimum)
    labels = [i18n.day_month(a) if granularity == "day"
              else i18n.gettext("wk {week}").format(week=a.isocalendar().week) for a, _ in buckets]
    return {"rows": rows, "labels": labels, "series": series, "buckets": len(buckets)}


# --------------------------------------------------------------------- daily aggregates (exports, API)


def daily_rows(session: Session, station_ids: Sequence[str], period: Period, minimum: int,
               channel: str | None = None) -> Iterable[dict]:
    """One row per station and local day: counted distribution, repeated, out of hours, all.

    Each day's counted / repeated / out-of-hours / all figures are suppressed
    together (all = the other three); the station's period total is not in
    the export, so there is no published sum across days to protect. ``channel``: that
    channel's answers; each day's figures of every channel are suppressed as one table
    (``split_suppress``), so no channel's export gives away what another's hides.
    """
    def by_day(hours: Mapping[datetime, Mapping[str, int]]) -> dict[date, dict[str, int]]:
        days: dict[date, dict[str, int]] = defaultdict(_zero)
        for h, cols in hours.items():
            day = days[_local_day(h)]
            for c, n in cols.items():
                day[c] += n
        return days

    for sid in station_ids:
        every_day = by_day(station_hours(session, sid, period.start, period.end))
        split_by_day: dict[date, dict[str, dict[str, int]]] = defaultdict(dict)
        for ch, hours in channel_hours(session, sid, period.start, period.end).items():
            for day, cols in by_day(hours).items():
                split_by_day[day][ch] = cols
        per_day = every_day if channel is None else {day: split.get(channel, _zero())
                                                      for day, split in split_by_day.items()}
        d = period.first
        while d <= period.last:
            cols = per_day.get(d, _zero())
            # The day split by channel, suppressed as one, so each channel's export hides what the others need.
            day_rows: dict[str | None, dict[str, int]] = {None: {key: _kind_total(every_day.get(d, _zero()), kind)
                                                                 for key, kind in KINDS}}
            for ch, ch_cols in sorted(split_by_day.get(d, {}).items()):
                day_rows[ch] = {key: _kind_total(ch_cols, kind) for key, kind in KINDS}
            hides = split_suppress(day_rows, None, minimum, [BREAKDOWN_SUM], prefer=["all"])
            parts = distributions(
                {
                    "counted": by_kind(cols, "c"),
                    "repeated": by_kind(cols, "r"),
                    "out_of_hours": by_kind(cols, "o"),
                    "all": all_presses(cols),
                },
                minimum,
                all_key="all",
                forced=hides.get(channel, frozenset()),
            )
            yield {
                "station_id": sid,
                "channel": channel or "all",
                "date": d,
                "counted": parts["counted"],
                "repeated": parts["repeated"]["total"],
                "out_of_hours": parts["out_of_hours"]["total"],
                "all_presses": parts["all"]["total"],
            }
            d += timedelta(days=1)
