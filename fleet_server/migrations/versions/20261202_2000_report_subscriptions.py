"""monthly report e-mail: report_subscriptions and report_deliveries; alerts say their text in any language

report_subscriptions: an address, its language and one station or one group; report_deliveries: one
row per subscription and month (unique), sent once with its own retry. alerts.text_id and
alerts.params: the message's catalogue text and its values, so e-mails and pages translate it.

Revision ID: 2000_report_subscriptions
Revises: 2400_broker_bridges
Create Date: 2026-12-01 19:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2000_report_subscriptions"
down_revision: str | None = "2400_broker_bridges"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("language", sa.String(length=5), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=True),
        sa.Column("group_id", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("(station_id IS NULL) <> (group_id IS NULL)", name=op.f("ck_report_subscriptions_one_scope")),
        sa.CheckConstraint("language IN ('fi', 'sv', 'en')", name=op.f("ck_report_subscriptions_language")),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name=op.f("fk_report_subscriptions_station_id_stations")),
        sa.ForeignKeyConstraint(["group_id"], ["station_groups.id"],
                                name=op.f("fk_report_subscriptions_group_id_station_groups")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_subscriptions")),
    )
    op.create_index(op.f("ix_report_subscriptions_email"), "report_subscriptions", ["email"], unique=False)
    op.create_table(
        "report_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["subscription_id"], ["report_subscriptions.id"], ondelete="CASCADE",
                                name=op.f("fk_report_deliveries_subscription_id_report_subscriptions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_deliveries")),
        sa.UniqueConstraint("subscription_id", "month", name=op.f("uq_report_deliveries_subscription_id_month")),
    )
    op.create_index("ix_report_deliveries_due", "report_deliveries", ["next_attempt_at"], unique=False,
                    sqlite_where=sa.text("delivered_at IS NULL"), postgresql_where=sa.text("delivered_at IS NULL"))
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_id", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_column("params")
        batch_op.drop_column("text_id")
    op.drop_index("ix_report_deliveries_due", table_name="report_deliveries")
    op.drop_table("report_deliveries")
    op.drop_index(op.f("ix_report_subscriptions_email"), table_name="report_subscriptions")
    op.drop_table("report_subscriptions")
