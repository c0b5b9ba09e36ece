"""station groups: wellbeing county -> municipality or service area -> station; staff of a group

Revision ID: 1300_station_groups
Revises: 1200_status_order
Create Date: 2026-12-01 18:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1300_station_groups"
down_revision: str | None = "1200_status_order"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "station_groups",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_fi", sa.String(length=200), nullable=True),
        sa.Column("name_sv", sa.String(length=200), nullable=True),
        sa.Column("name_en", sa.String(length=200), nullable=True),
        sa.CheckConstraint("kind IN ('county', 'municipality', 'area')", name=op.f("ck_station_groups_kind")),
        sa.ForeignKeyConstraint(["parent_id"], ["station_groups.id"], name=op.f("fk_station_groups_parent_id_station_groups")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_station_groups")),
    )
    with op.batch_alter_table("stations") as batch:
        batch.add_column(sa.Column("group_id", sa.String(length=64), nullable=True))
        batch.create_foreign_key(op.f("fk_stations_group_id_station_groups"), "station_groups", ["group_id"], ["id"])
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("group_id", sa.String(length=64), nullable=True))
        batch.create_foreign_key(op.f("fk_users_group_id_station_groups"), "station_groups", ["group_id"], ["id"])
        batch.drop_constraint(op.f("ck_users_staff_station"), type_="check")
        batch.create_check_constraint(
            op.f("ck_users_staff_station"), "role != 'staff' OR station_id IS NOT NULL OR group_id IS NOT NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("ck_users_staff_station"), type_="check")
        batch.create_check_constraint(op.f("ck_users_staff_station"), "role != 'staff' OR station_id IS NOT NULL")
        batch.drop_constraint(op.f("fk_users_group_id_station_groups"), type_="foreignkey")
        batch.drop_column("group_id")
    with op.batch_alter_table("stations") as batch:
        batch.drop_constraint(op.f("fk_stations_group_id_station_groups"), type_="foreignkey")
        batch.drop_column("group_id")
    op.drop_table("station_groups")
