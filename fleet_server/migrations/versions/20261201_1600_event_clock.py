"""event clock: boot id, seconds since boot and the correction applied after NTP sync

Revision ID: 1600_event_clock
Revises: 1500_login_failures
Create Date: 2026-12-01 16:45:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1600_event_clock"
down_revision: str | None = "1500_login_failures"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("feedback_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("boot_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("mono_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("ts_offset_s", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("feedback_events", schema=None) as batch_op:
        batch_op.drop_column("ts_offset_s")
        batch_op.drop_column("mono_s")
        batch_op.drop_column("boot_id")
