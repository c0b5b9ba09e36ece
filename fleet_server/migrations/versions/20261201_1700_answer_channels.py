"""answer channels: feedback_events.channel (kiosk | web | phone | sms), no device or seq outside
the kiosk channel, the import role for API tokens, and the web survey's abuse limits

Revision ID: 1700_answer_channels
Revises: 1600_event_clock
Create Date: 2026-12-01 17:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1700_answer_channels"
down_revision: str | None = "1600_event_clock"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_TOKEN_ROLES = "role IN ('coordinator', 'staff', 'it', 'admin')"
NEW_TOKEN_ROLES = "role IN ('coordinator', 'staff', 'it', 'admin', 'import')"


def upgrade() -> None:
    with op.batch_alter_table("feedback_events") as batch:
        batch.add_column(sa.Column("channel", sa.String(length=8), server_default="kiosk", nullable=False))
        batch.alter_column("device_id", existing_type=sa.String(length=64), nullable=True)
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=True)
        batch.create_check_constraint(op.f("ck_feedback_events_channel"), "channel IN ('kiosk', 'web', 'phone', 'sms')")
        batch.create_check_constraint(
            op.f("ck_feedback_events_kiosk_device"), "channel != 'kiosk' OR (device_id IS NOT NULL AND seq IS NOT NULL)"
        )
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("ck_api_tokens_role"), type_="check")
        batch.create_check_constraint(op.f("ck_api_tokens_role"), NEW_TOKEN_ROLES)
    op.create_table(
        "web_answer_limits",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", "window_start", name=op.f("pk_web_answer_limits")),
    )
    op.create_index(op.f("ix_web_answer_limits_window_start"), "web_answer_limits", ["window_start"])


def downgrade() -> None:
    op.drop_index(op.f("ix_web_answer_limits_window_start"), table_name="web_answer_limits")
    op.drop_table("web_answer_limits")
    op.execute("DELETE FROM api_tokens WHERE role = 'import'")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("ck_api_tokens_role"), type_="check")
        batch.create_check_constraint(op.f("ck_api_tokens_role"), OLD_TOKEN_ROLES)
    op.execute("DELETE FROM feedback_events WHERE channel != 'kiosk'")
    with op.batch_alter_table("feedback_events") as batch:
        batch.drop_constraint(op.f("ck_feedback_events_kiosk_device"), type_="check")
        batch.drop_constraint(op.f("ck_feedback_events_channel"), type_="check")
        batch.alter_column("seq", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("device_id", existing_type=sa.String(length=64), nullable=False)
        batch.drop_column("channel")
