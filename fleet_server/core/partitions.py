"""Monthly partitions of the answers table on PostgreSQL (``feedback_events``).

The table is partitioned by RANGE of ``event_id``: event ids are UUIDv7, whose first
48 bits are the answer's creation time in milliseconds, so a month of answers is one
contiguous range of ids. Partitioning by the id itself keeps the one thing the ingest
depends on: ``event_id`` stays globally unique (a unique index on a partitioned table
must contain the partition key; here it is the key), so ``INSERT ... ON CONFLICT
(event_id) DO NOTHING`` works as before. A ``DEFAULT`` partition takes ids outside
every range (not UUIDv7, or a kiosk clock far off).

``ensure_partitions`` (run by the fleet loop's leader once a day, and by the
migration) creates the partitions from the oldest answer's month to
``MONTHS_AHEAD`` months from now. ``drop_partitions_before`` is what the retention
setting uses: dropping a month is instant and leaves no bloat, unlike DELETE.
SQLite has no partitions: these functions do nothing there.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, text

_LOGGER = logging.getLogger(__name__)

TABLE = "feedback_events"
MONTHS_AHEAD = 3
"""Partitions made in advance: an answer of the coming months never lands in the default one."""


def month_start(year: int, month: int) -> datetime:
    while month > 12:
        year, month = year + 1, month - 12
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=UTC)


def uuid7_floor(at: datetime) -> uuid.UUID:
    """The lowest UUIDv7 made at ``at`` (its 48-bit millisecond prefix, the rest zero)."""
    ms = int(at.timestamp() * 1000)
    return uuid.UUID(int=ms << 80)


def uuid7_time(value: uuid.UUID) -> datetime:
    return datetime.fromtimestamp((value.int >> 80) / 1000, tz=UTC)


def partition_name(start: datetime) -> str:
    return f"{TABLE}_{start:%Y_%m}"


def is_partitioned(conn: Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    return bool(conn.execute(text("SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
                                  "WHERE c.relname = :t AND c.relnamespace = current_schema()::regnamespace"),
                             {"t": TABLE}).scalar())


def existing_partitions(conn: Connection) -> set[str]:
    return set(conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = :t"), {"t": TABLE}).scalars())


def ensure_partitions(conn: Connection, now: datetime, since: datetime | None = None) -> list[str]:
    """Create the monthly partitions missing from ``since``'s month (default: now's) to MONTHS_AHEAD
    months ahead, and the default partition; returns the names created."""
    if not is_partitioned(conn):
        return []
    have = existing_partitions(conn)
    made = []
    if f"{TABLE}_default" not in have:
        conn.execute(text(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT"))
        made.append(f"{TABLE}_default")
    first = since or now
    start = month_start(first.year, first.month)
    last = month_start(now.year, now.month + MONTHS_AHEAD)
    while start <= last:
        end = month_start(start.year, start.month + 1)
        name = partition_name(start)
        if name not in have:
            conn.execute(text(
                f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM ('{uuid7_floor(start)}') "
                f"TO ('{uuid7_floor(end)}')"))
            made.append(name)
        start = end
    if made:
        _LOGGER.info("answers table: created partitions %s", ", ".join(made))
    return made


def drop_partitions_before(conn: Connection, before: datetime) -> list[str]:
    """Drop the monthly partitions that end on or before ``before``; returns their names."""
    if not is_partitioned(conn):
        return []
    dropped = []
    for name in sorted(existing_partitions(conn)):
        if name.endswith("_default"):
            continue
        year, month = (int(p) for p in name.removeprefix(f"{TABLE}_").split("_"))
        if month_start(year, month + 1) <= before:
            conn.execute(text(f"DROP TABLE {name}"))
            dropped.append(name)
    return dropped


def is_partition_name(name: str | None) -> bool:
    import re

    return bool(name) and re.fullmatch(rf"{TABLE}_(\d{{4}}_\d{{2}}|default)", name or "") is not None


def include_name(name: str | None, type_: Any, _parent_names: Any) -> bool:
    """Alembic ``include_name``: the partitions are not tables of the models (autogenerate, checks)."""
    return not (type_ == "table" and is_partition_name(name))
