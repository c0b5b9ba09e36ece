"""Rollups of answers per station by UTC hour (kept exact by the ingest, see fleet_server.results.rollups) and
by local day (StationDay)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.models.base import SLUG_LEN, Base


class _Counts:
    """The twelve counts of a rollup row: c1..c4 counted answers by smiley, r1..r4 repeated presses
    (a burst), o1..o4 presses outside opening hours (fleet_server.results.rollups.COUNT_COLUMNS)."""

    c1: Mapped[int] = mapped_column(Integer, default=0)
    c2: Mapped[int] = mapped_column(Integer, default=0)
    c3: Mapped[int] = mapped_column(Integer, default=0)
    c4: Mapped[int] = mapped_column(Integer, default=0)
    r1: Mapped[int] = mapped_column(Integer, default=0)
    r2: Mapped[int] = mapped_column(Integer, default=0)
    r3: Mapped[int] = mapped_column(Integer, default=0)
    r4: Mapped[int] = mapped_column(Integer, default=0)
    o1: Mapped[int] = mapped_column(Integer, default=0)
    o2: Mapped[int] = mapped_column(Integer, default=0)
    o3: Mapped[int] = mapped_column(Integer, default=0)
    o4: Mapped[int] = mapped_column(Integer, default=0)


class StationHour(_Counts, Base):
    """Smiley answers of one station in one UTC hour, by value and flag (see module doc)."""

    __tablename__ = "station_hourly"

    station_id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True, doc="start of the UTC hour")


class FollowupHour(Base):
    """Follow-up answers of one station in one UTC hour, by the smiley they follow."""

    __tablename__ = "followup_hourly"

    station_id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    smiley: Mapped[int] = mapped_column(Integer, primary_key=True, doc="1..4; 0 when the smiley is unknown")
    question_id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    option_id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)


class ChannelHour(_Counts, Base):
    """Smiley answers of one station in one UTC hour by the channel they came in (kiosk, web, phone,
    sms), with StationHour's columns: summed over channels, every column equals StationHour's."""

    __tablename__ = "channel_hourly"

    station_id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True, doc="start of the UTC hour")
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)


class StationDay(_Counts, Base):
    """StationHour's counts summed by the station's local (Europe/Helsinki) calendar day, for the
    overview's periods (whole local days: a tenth of the hourly rows).

    On PostgreSQL, triggers on station_hourly keep it (migration 2600_overview_reads): each statement
    that inserts, updates or deletes hourly rows adds the difference to the days they fall in, in
    the same transaction, so a day equals the sum of its hours in every snapshot, today's included,
    whoever wrote them (the ingest, a late kiosk's outbox, a clock correction, a rebuild). SQLite
    has no time zones in SQL: there it stays empty and the pages read station_hourly.
    ``ChannelDay`` is the same for ``ChannelHour``."""

    __tablename__ = "station_daily"

    station_id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True, doc="the local calendar day (Europe/Helsinki)")


class ChannelDay(_Counts, Base):
    """ChannelHour's counts summed by local day, kept as StationDay is (PostgreSQL only)."""

    __tablename__ = "channel_daily"

    station_id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    channel: Mapped[str] = mapped_column(String(8), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True, doc="the local calendar day (Europe/Helsinki)")
