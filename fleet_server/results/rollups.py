"""Hourly per-station rollups, kept up to date by the ingest in the same transaction.

The dashboard never scans ``feedback_events`` for its figures: it reads these
small tables (one row per station and UTC hour; one per station, hour, smiley,
question and option for follow-ups), so the overview over millions of events
answers in milliseconds.

Exactly-once: ``add_events`` is called by ``ingest.handle_batch`` with the rows
its ``INSERT ... ON CONFLICT (event_id) DO NOTHING ... RETURNING`` actually
inserted, inside the same transaction; a redelivered event is not returned, so
it is never added twice, and a rolled-back batch rolls its increments back too.
``rebuild`` recomputes the tables from the events (after an import, or to check).

Columns partition the smiley answers of an hour by value (1..4) and flag:
``c`` counted (in opening hours, not a flagged repeated press), ``r`` flagged
repeated press ("burst") in opening hours, ``o`` out of opening hours (flagged
``out_of_hours`` by the kiosk, repeated or not). ``c + r + o`` is every press.

``channel_hourly`` splits the same cells by channel (kiosk, web, phone, sms), in the same
statement of the same transaction: summed over its channels, each (station, hour) row of it
equals ``station_hourly``'s, exactly (tests/server/test_channel_rollups.py).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, inspect, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet_server.models import ChannelHour, FeedbackEvent, FollowupHour, StationHour

SMILEYS = (1, 2, 3, 4)
KINDS = ("c", "r", "o")
COUNT_COLUMNS = tuple(f"{k}{v}" for k in KINDS for v in SMILEYS)
UNKNOWN_SMILEY = 0
"""Follow-ups whose smiley the server has not seen are rolled up under smiley 0."""


def hour_of(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def flag_kind(burst: bool, out_of_hours: bool) -> str:
    if out_of_hours:
        return "o"
    return "r" if burst else "c"


def _insert(session: Session, table: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def add_events(session: Session, rows: Iterable[Mapping[Any, Any]], sign: int = 1, *, channels: bool = True) -> None:
    """Add freshly inserted event rows (dicts with the feedback_events columns) to the rollups.

    ``sign=-1`` takes stored rows out again: an event whose time is corrected moves from
    its old hour to its new one (fleet_server.fleet.clock_corrections). ``channels=False``: not
    ``channel_hourly`` (``rebuild`` run by a migration older than that table)."""
    smiley_cells: dict[tuple[str, datetime], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNT_COLUMNS, 0))
    channel_cells: dict[tuple[str, datetime, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(COUNT_COLUMNS, 0))
    followups: list[Mapping[str, Any]] = []
    smiley_of: dict[uuid.UUID, int] = {}
    for row in rows:
        if row["kind"] == "smiley":
            key = (row["station_id"], hour_of(row["ts"]))
            column = f"{flag_kind(row['burst'], row['out_of_hours'])}{row['value']}"
            smiley_cells[key][column] += sign
            channel_cells[(*key, row.get("channel") or "kiosk")][column] += sign  # rows read before channels: kiosk
            smiley_of[row["event_id"]] = row["value"]
        else:
            followups.append(row)
    if smiley_cells:
        table = StationHour.__table__
        stmt = _insert(session, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["station_id", "hour"],
            set_={col: table.c[col] + stmt.excluded[col] for col in COUNT_COLUMNS},
        )
        session.execute(
            stmt, [{"station_id": s, "hour": h, **counts} for (s, h), counts in sorted(smiley_cells.items())]
        )
        if channels:
            table = ChannelHour.__table__
            stmt = _insert(session, table)
            stmt = stmt.on_conflict_do_update(
                index_elements=["station_id", "hour", "channel"],
                set_={col: table.c[col] + stmt.excluded[col] for col in COUNT_COLUMNS},
            )
            session.execute(stmt, [{"station_id": s, "hour": h, "channel": ch, **counts}
                                   for (s, h, ch), counts in sorted(channel_cells.items())])
    if followups:
        missing = {r["answer_to"] for r in followups if r.get("answer_to") and r["answer_to"] not in smiley_of}
        if missing:
            e = FeedbackEvent
            for event_id, value in session.execute(
                select(e.event_id, e.value).where(e.event_id.in_(list(missing)), e.kind == "smiley")
            ):
                if value is not None:  # a smiley always has one
                    smiley_of[event_id] = value
        cells: dict[tuple, int] = defaultdict(int)
        for r in followups:
            answer_to = r.get("answer_to")
            smiley = smiley_of.get(answer_to, UNKNOWN_SMILEY) if answer_to else UNKNOWN_SMILEY
            cells[(r["station_id"], hour_of(r["ts"]), smiley, r["question_id"], r["option_id"])] += sign
        table = FollowupHour.__table__
        stmt = _insert(session, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["station_id", "hour", "smiley", "question_id", "option_id"],
            set_={"n": table.c.n + stmt.excluded.n},
        )
        session.execute(
            stmt,
            [
                {"station_id": s, "hour": h, "smiley": v, "question_id": q, "option_id": o, "n": n}
                for (s, h, v, q, o), n in sorted(cells.items())
            ],
        )


def rebuild(session: Session, batch_size: int = 50_000) -> int:
    """Recompute both rollup tables from ``feedback_events``; returns the events read."""
    session.execute(delete(StationHour.__table__))
    session.execute(delete(FollowupHour.__table__))
    # An old migration (0300_rollups) runs this before channels existed: then without them.
    channels = inspect(session.connection()).has_table(ChannelHour.__tablename__)
    e = FeedbackEvent.__table__
    columns = [e.c.event_id, e.c.station_id, e.c.kind, e.c.value, e.c.option_id, e.c.question_id,
               e.c.ts, e.c.answer_to, e.c.burst, e.c.out_of_hours]
    if channels:
        session.execute(delete(ChannelHour.__table__))
        columns.append(e.c.channel)
    seen = 0
    # Smileys first, so every follow-up finds its smiley in the table.
    for kind in ("smiley", "followup"):
        result = session.execute(
            select(*columns).where(e.c.kind == kind).order_by(e.c.id).execution_options(yield_per=batch_size)
        )
        for chunk in result.mappings().partitions(batch_size):
            add_events(session, chunk, channels=channels)
            seen += len(chunk)
    return seen


def hour_bucket_sql(session: Session, column: Any) -> Any:
    """SQL for the start of ``column``'s UTC hour (used by checks and the benchmark)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc("hour", column)
    return func.strftime("%Y-%m-%d %H:00:00", column)


def range_hours(start: datetime, end: datetime) -> list[datetime]:
    hours, h = [], hour_of(start)
    while h < end:
        hours.append(h)
        h += timedelta(hours=1)
    return hours


__all__ = ["COUNT_COLUMNS", "ChannelHour", "FollowupHour", "StationHour", "add_events", "literal_column", "rebuild"]
