"""languages: the dashboard language a user picked; a station's name in Finnish, Swedish and English

Revision ID: 1100_languages
Revises: 1000_alert_deliveries
Create Date: 2026-12-01 17:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1100_languages"
down_revision: str | None = "1000_alert_deliveries"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(length=5), nullable=True))
    with op.batch_alter_table("stations") as batch:
        batch.add_column(sa.Column("name_fi", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("name_sv", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("name_en", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("stations") as batch:
        batch.drop_column("name_en")
        batch.drop_column("name_sv")
        batch.drop_column("name_fi")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
