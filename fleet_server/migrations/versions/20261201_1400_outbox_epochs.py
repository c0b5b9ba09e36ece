"""outbox epochs: seq counts within (device, epoch) -- a replaced SD card is a new sequence

Revision ID: 1400_outbox_epochs
Revises: 1300_station_groups
Create Date: 2026-12-01 16:30:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1400_outbox_epochs"
down_revision: str | None = "1300_station_groups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # NULL everywhere: every event and gap stored so far belongs to the legacy sequence.
    for table in ("feedback_events", "devices", "seq_gaps"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("epoch", sa.Uuid(), nullable=True))


def downgrade() -> None:
    for table in ("seq_gaps", "devices", "feedback_events"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("epoch")
