"""channel rollups: channel_hourly, station_hourly's counts split by channel, filled from the answers

Revision ID: 1900_channel_rollups
Revises: 1800_partition_answers
Create Date: 2026-12-01 17:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1900_channel_rollups"
down_revision: str | None = "1800_partition_answers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [f"{k}{v}" for k in "cro" for v in (1, 2, 3, 4)]


def _cell(column: str) -> str:
    kind, value = column[0], column[1]
    flag = {"c": "NOT out_of_hours AND NOT burst", "r": "NOT out_of_hours AND burst", "o": "out_of_hours"}[kind]
    return f"SUM(CASE WHEN value = {value} AND {flag} THEN 1 ELSE 0 END)"


def upgrade() -> None:
    op.create_table(
        "channel_hourly",
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        *(sa.Column(c, sa.Integer(), nullable=False) for c in COLUMNS),
        sa.PrimaryKeyConstraint("station_id", "hour", "channel", name=op.f("pk_channel_hourly")),
    )
    if op.get_bind().dialect.name == "postgresql":
        hour = "date_trunc('hour', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    else:  # SQLAlchemy's SQLite DATETIME text, as the rollups write it
        hour = "strftime('%Y-%m-%d %H:00:00.000000', ts)"
    op.execute(
        f"INSERT INTO channel_hourly (station_id, hour, channel, {', '.join(COLUMNS)}) "
        f"SELECT station_id, {hour}, channel, {', '.join(_cell(c) for c in COLUMNS)} "
        f"FROM feedback_events WHERE kind = 'smiley' GROUP BY station_id, {hour}, channel"
    )


def downgrade() -> None:
    op.drop_table("channel_hourly")
