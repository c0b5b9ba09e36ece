"""rollups: hourly smiley and follow-up counts per station, filled from existing events

Revision ID: 0300_rollups
Revises: 0200_fleet_ops
Create Date: 2026-11-27 10:10:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0300_rollups"
down_revision: str | None = "0200_fleet_ops"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS = [f"{k}{v}" for k in "cro" for v in (1, 2, 3, 4)]


def upgrade() -> None:
    op.create_table(
        "station_hourly",
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        *[sa.Column(c, sa.Integer(), nullable=False) for c in COUNTS],
        sa.PrimaryKeyConstraint("station_id", "hour", name=op.f("pk_station_hourly")),
    )
    op.create_table(
        "followup_hourly",
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("smiley", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.String(length=64), nullable=False),
        sa.Column("option_id", sa.String(length=64), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "station_id", "hour", "smiley", "question_id", "option_id", name=op.f("pk_followup_hourly")
        ),
    )
    # Events stored before this migration: build their rollups once.
    from sqlalchemy.orm import Session

    from fleet_server.results.rollups import rebuild

    rebuild(Session(bind=op.get_bind()))


def downgrade() -> None:
    op.drop_table("followup_hourly")
    op.drop_table("station_hourly")
