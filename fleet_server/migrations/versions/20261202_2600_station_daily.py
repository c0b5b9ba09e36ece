"""station daily: station_hourly summed by local day, kept by triggers on PostgreSQL, for the overview

The overview's two periods are whole local (Europe/Helsinki) days: at 500 stations, 14 days of
hourly rows were 70,000 rows to sum for every page, a tenth of that by day. On PostgreSQL three
statement-level triggers on station_hourly (insert, update, delete; their transition tables)
add what a statement changed to the days its hours fall in, in the same transaction, and a
truncate empties the days: no writer of the hourly rows changes, and a day always equals its
hours (today's, a late outbox's day, a clock correction's). The table is filled from the hourly
rows here, with the writers held off (SHARE ROW EXCLUSIVE) until this commits. SQLite has no time
zones in SQL: the table stays empty there and the pages read station_hourly.

Revision ID: 2600_station_daily
Revises: 2500_token_groups
Create Date: 2026-12-02 26:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2600_station_daily"
down_revision: str | None = "2500_token_groups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [f"{k}{v}" for k in "cro" for v in (1, 2, 3, 4)]
ZONE = "Europe/Helsinki"
"""palaute_wire.opening_hours.LOCAL_ZONE_NAME, written out: a migration does not follow later code."""
DAY = f"(hour AT TIME ZONE '{ZONE}')::date"


def _add(select_rows: str) -> str:
    """Add the sums of ``select_rows`` (station_id, hour, the count columns) to their days."""
    cols = ", ".join(COLUMNS)
    return (f"INSERT INTO station_daily (station_id, day, {cols}) "
            f"SELECT station_id, {DAY}, {', '.join(f'sum({c})' for c in COLUMNS)} FROM ({select_rows}) AS changed "
            f"GROUP BY 1, 2 ORDER BY 1, 2 "  # rows locked in key order, as the ingest locks the hours
            f"ON CONFLICT (station_id, day) DO UPDATE SET "
            + ", ".join(f"{c} = station_daily.{c} + excluded.{c}" for c in COLUMNS))


def upgrade() -> None:
    op.create_table(
        "station_daily",
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in COLUMNS),
        sa.PrimaryKeyConstraint("station_id", "day", name=op.f("pk_station_daily")),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    cols = ", ".join(COLUMNS)
    negated = ", ".join(f"-{c} AS {c}" for c in COLUMNS)
    op.execute("LOCK TABLE station_hourly IN SHARE ROW EXCLUSIVE MODE")
    op.execute(f"""
        CREATE FUNCTION station_daily_from_hourly() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {_add(f"SELECT station_id, hour, {cols} FROM new_hours")};
            ELSIF TG_OP = 'UPDATE' THEN
                {_add(f"SELECT station_id, hour, {cols} FROM new_hours "
                      f"UNION ALL SELECT station_id, hour, {negated} FROM old_hours")};
            ELSIF TG_OP = 'DELETE' THEN
                {_add(f"SELECT station_id, hour, {negated} FROM old_hours")};
            ELSE
                DELETE FROM station_daily;
            END IF;
            RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER station_daily_insert AFTER INSERT ON station_hourly "
               "REFERENCING NEW TABLE AS new_hours FOR EACH STATEMENT EXECUTE FUNCTION station_daily_from_hourly()")
    op.execute("CREATE TRIGGER station_daily_update AFTER UPDATE ON station_hourly "
               "REFERENCING OLD TABLE AS old_hours NEW TABLE AS new_hours "
               "FOR EACH STATEMENT EXECUTE FUNCTION station_daily_from_hourly()")
    op.execute("CREATE TRIGGER station_daily_delete AFTER DELETE ON station_hourly "
               "REFERENCING OLD TABLE AS old_hours FOR EACH STATEMENT EXECUTE FUNCTION station_daily_from_hourly()")
    op.execute("CREATE TRIGGER station_daily_truncate AFTER TRUNCATE ON station_hourly "
               "FOR EACH STATEMENT EXECUTE FUNCTION station_daily_from_hourly()")
    op.execute(_add(f"SELECT station_id, hour, {cols} FROM station_hourly"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ("insert", "update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER station_daily_{name} ON station_hourly")
        op.execute("DROP FUNCTION station_daily_from_hourly()")
    op.drop_table("station_daily")
