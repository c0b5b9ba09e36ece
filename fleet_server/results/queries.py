"""Read-side queries: per-station results, devices, dead letters.

Plain functions over a Session, shared by the API, the pages and the CLI, so a
figure means the same thing everywhere. The satisfaction definition lives here
and in docs/api.md:

    satisfaction = (answers 3 + answers 4) / all smiley answers

i.e. the share of the two happy faces among smiley presses in the range, or
None when there are none. Follow-up answers are not smiley answers and are
not counted in ``total`` or ``counts``.

Time ranges are half-open, ``from <= ts < to``, on the kiosk's answer time
(``ts``, UTC), so consecutive ranges never count an answer twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from fleet_server.core import i18n
from fleet_server.models import DeadLetter, Device, FeedbackEvent, Station
from fleet_server.results.small_counts import satisfaction
from palaute_wire.contract import SMILEY_VALUES


def empty_counts() -> dict[str, int]:
    return {str(v): 0 for v in SMILEY_VALUES}


def iso_utc(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _smiley_counts(
    session: Session, start: datetime | None, end: datetime | None, station_id: str | None = None
) -> dict[str, dict[str, int]]:
    """{station_id: {"1": n, ..., "4": n}} for smiley answers with start <= ts < end."""
    e = FeedbackEvent
    query = select(e.station_id, e.value, func.count()).where(e.kind == "smiley")
    if station_id is not None:
        query = query.where(e.station_id == station_id)
    if start is not None:
        query = query.where(e.ts >= start)
    if end is not None:
        query = query.where(e.ts < end)
    result: dict[str, dict[str, int]] = {}
    for sid, value, n in session.execute(query.group_by(e.station_id, e.value)):
        result.setdefault(sid, empty_counts())[str(value)] = n
    return result


@dataclass
class StationRow:
    """One line of the station list."""

    station_id: str
    name: str
    created_at: datetime
    total: int = 0
    counts: dict[str, int] = field(default_factory=empty_counts)
    satisfaction: float | None = None
    followups: int = 0
    devices: int = 0
    devices_online: int = 0
    last_event_at: datetime | None = None


def list_stations(session: Session, start: datetime | None = None, end: datetime | None = None) -> list[StationRow]:
    """Every station with its smiley counts (all time unless a range is given) and device health; its name
    in the reader's language (``Named.name_in``), in that name's order."""
    lang = i18n.lang()
    named = [StationRow(station_id=s.id, name=s.name_in(lang), created_at=s.created_at)
             for s in session.scalars(select(Station))]
    rows = {r.station_id: r for r in sorted(named, key=lambda r: (i18n.sort_key(r.name), r.station_id))}
    for sid, counts in _smiley_counts(session, start, end).items():
        if sid in rows:
            rows[sid].counts = counts
            rows[sid].total = sum(counts.values())
            score = satisfaction({int(v): n for v, n in counts.items()})
            rows[sid].satisfaction = None if score is None else round(score, 4)
    e = FeedbackEvent
    followups = select(e.station_id, func.count()).where(e.kind == "followup")
    if start is not None:
        followups = followups.where(e.ts >= start)
    if end is not None:
        followups = followups.where(e.ts < end)
    for sid, n in session.execute(followups.group_by(e.station_id)):
        if sid in rows:
            rows[sid].followups = n
    d = Device
    device_query = select(
        d.station_id, func.count(), func.sum(case((d.online, 1), else_=0)), func.max(d.last_event_at)
    ).where(d.state != "retired")
    for sid, n, online, last_event in session.execute(device_query.group_by(d.station_id)):
        if sid in rows:
            rows[sid].devices = n
            rows[sid].devices_online = int(online or 0)
            rows[sid].last_event_at = last_event
    return list(rows.values())


def list_devices(session: Session, station_id: str | None = None) -> Sequence[Device]:
    query = select(Device).order_by(Device.station_id, Device.id)
    if station_id is not None:
        query = query.where(Device.station_id == station_id)
    return session.scalars(query).all()


def list_dead_letters(
    session: Session, *, limit: int = 50, offset: int = 0, reason: str | None = None
) -> tuple[int, Sequence[DeadLetter]]:
    """(total matching, one page newest first)."""
    query = select(DeadLetter)
    count = select(func.count()).select_from(DeadLetter)
    if reason is not None:
        query = query.where(DeadLetter.reason == reason)
        count = count.where(DeadLetter.reason == reason)
    total = session.scalar(count) or 0
    page = session.scalars(query.order_by(DeadLetter.id.desc()).limit(limit).offset(offset)).all()
    return total, page
