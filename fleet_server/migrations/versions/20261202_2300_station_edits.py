"""station_edits: who changed a station's names or group, when, from what to what

Revision ID: 2300_station_edits
Revises: 2000_report_subscriptions
Create Date: 2026-12-02 23:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2300_station_edits"
down_revision: str | None = "2000_report_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "station_edits",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=64), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name=op.f("fk_station_edits_station_id_stations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station_edits")),
    )
    op.create_index(op.f("ix_station_edits_station_id_id"), "station_edits", ["station_id", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_station_edits_station_id_id"), table_name="station_edits")
    op.drop_table("station_edits")
