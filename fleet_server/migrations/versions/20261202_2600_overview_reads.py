"""overview reads: station_daily and channel_daily (the hourly rollups summed by local day, kept by
triggers on PostgreSQL) and device_presence by time

The overview's two periods are whole local (Europe/Helsinki) days: at 500 stations, 14 days of
hourly rows were 70,000 rows to sum for every page (and as many again by channel), a tenth of
that by day. On PostgreSQL statement-level triggers on station_hourly and channel_hourly (insert,
update, delete, with their transition tables) add what a statement changed to the days its hours
fall in, in the same transaction, and a truncate empties the days: no writer of the hourly rows
changes, and a day always equals its hours (today's, a late outbox's day, a clock correction's).
The days are filled from the hours here, with the writers held off (SHARE ROW EXCLUSIVE) until
this commits. SQLite has no time zones in SQL: the tables stay empty there and the pages read
the hours.

device_presence gets an index on ``at``: the overview reads the fleet's transitions since the
last settled hour (a few rows) by time, not by a list of 1,000 devices probed one by one.

Revision ID: 2600_overview_reads
Revises: 2500_token_groups
Create Date: 2026-12-02 26:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2600_overview_reads"
down_revision: str | None = "2500_token_groups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [f"{k}{v}" for k in "cro" for v in (1, 2, 3, 4)]
ZONE = "Europe/Helsinki"
"""palaute_wire.opening_hours.LOCAL_ZONE_NAME, written out: a migration does not follow later code."""
DAY = f"(hour AT TIME ZONE '{ZONE}')::date"


TABLES = {"station_daily": ("station_hourly", ["station_id"]), "channel_daily": ("channel_hourly", ["station_id", "channel"])}
"""Each daily table: the hourly table it sums and its key besides the day."""


def _add(daily: str, select_rows: str) -> str:
    """Add the sums of ``select_rows`` (the hourly key and count columns) to their days."""
    keys = TABLES[daily][1]
    cols, key = ", ".join(COLUMNS), ", ".join(keys)
    groups = ", ".join(str(i + 1) for i in range(len(keys) + 1))
    return (f"INSERT INTO {daily} ({key}, day, {cols}) "
            f"SELECT {key}, {DAY}, {', '.join(f'sum({c})' for c in COLUMNS)} FROM ({select_rows}) AS changed "
            f"GROUP BY {groups} ORDER BY {groups} "  # rows locked in key order, as the ingest locks the hours
            f"ON CONFLICT ({key}, day) DO UPDATE SET "
            + ", ".join(f"{c} = {daily}.{c} + excluded.{c}" for c in COLUMNS))


def _keep(daily: str) -> None:
    """The trigger function and the four triggers that keep ``daily`` from its hourly table."""
    hourly, keys = TABLES[daily]
    rows = ", ".join([*keys, "hour", *COLUMNS])
    negated = ", ".join([*keys, "hour", *(f"-{c} AS {c}" for c in COLUMNS)])
    function = f"{daily}_from_hourly"
    op.execute(f"""
        CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {_add(daily, f"SELECT {rows} FROM new_hours")};
            ELSIF TG_OP = 'UPDATE' THEN
                {_add(daily, f"SELECT {rows} FROM new_hours UNION ALL SELECT {negated} FROM old_hours")};
            ELSIF TG_OP = 'DELETE' THEN
                {_add(daily, f"SELECT {negated} FROM old_hours")};
            ELSE
                DELETE FROM {daily};
            END IF;
            RETURN NULL;
        END $$""")
    for event, referencing in (("insert", "NEW TABLE AS new_hours"), ("update", "OLD TABLE AS old_hours NEW TABLE AS new_hours"),
                               ("delete", "OLD TABLE AS old_hours"), ("truncate", "")):
        op.execute(f"CREATE TRIGGER {daily}_{event} AFTER {event.upper()} ON {hourly} "
                   + (f"REFERENCING {referencing} " if referencing else "")
                   + f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    op.execute(_add(daily, f"SELECT {rows} FROM {hourly}"))


def upgrade() -> None:
    op.create_index(op.f("ix_device_presence_at"), "device_presence", ["at"])
    for daily, (_hourly, keys) in TABLES.items():
        op.create_table(
            daily,
            *(sa.Column(k, sa.String(length=64 if k == "station_id" else 8), nullable=False) for k in keys),
            sa.Column("day", sa.Date(), nullable=False),
            *(sa.Column(c, sa.Integer(), nullable=False) for c in COLUMNS),
            sa.PrimaryKeyConstraint(*keys, "day", name=op.f(f"pk_{daily}")),
        )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("LOCK TABLE station_hourly, channel_hourly IN SHARE ROW EXCLUSIVE MODE")
    for daily in TABLES:
        _keep(daily)
        op.execute(f"ANALYZE {daily}")  # the planner's row counts now, not at autovacuum's next pass


def downgrade() -> None:
    for daily, (hourly, _keys) in TABLES.items():
        if op.get_bind().dialect.name == "postgresql":
            for event in ("insert", "update", "delete", "truncate"):
                op.execute(f"DROP TRIGGER {daily}_{event} ON {hourly}")
            op.execute(f"DROP FUNCTION {daily}_from_hourly()")
        op.drop_table(daily)
    op.drop_index(op.f("ix_device_presence_at"), table_name="device_presence")
