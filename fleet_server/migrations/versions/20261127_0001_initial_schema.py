"""initial schema: stations, devices, presence, feedback events, dead letters

Revision ID: 0001
Revises:
Create Date: 2026-11-27 09:54:36.122675
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dead_letters',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('topic', sa.Text(), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters'))
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letters_reason'), ['reason'], unique=False)
        batch_op.create_index(batch_op.f('ix_dead_letters_received_at'), ['received_at'], unique=False)

    op.create_table('stations',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stations'))
    )
    op.create_table('devices',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('station_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status_sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status_received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status', sa.JSON(), nullable=True),
    sa.Column('software_version', sa.String(length=64), nullable=True),
    sa.Column('uptime_s', sa.Float(), nullable=True),
    sa.Column('queue_depth', sa.Integer(), nullable=True),
    sa.Column('oldest_queued_age_s', sa.Float(), nullable=True),
    sa.Column('shed_count', sa.Integer(), nullable=True),
    sa.Column('last_seq', sa.BigInteger(), nullable=True),
    sa.Column('clock_synced', sa.Boolean(), nullable=True),
    sa.Column('config_version', sa.Integer(), nullable=True),
    sa.Column('cpu_temp_c', sa.Float(), nullable=True),
    sa.Column('disk_free_mb', sa.Float(), nullable=True),
    sa.Column('ip', sa.String(length=64), nullable=True),
    sa.CheckConstraint("state IN ('provisioned', 'active', 'retired')", name=op.f('ck_devices_state')),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_devices_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_devices'))
    )
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_devices_station_id'), ['station_id'], unique=False)

    op.create_table('device_presence',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('online', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_device_presence_device_id_devices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_device_presence'))
    )
    with op.batch_alter_table('device_presence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_presence_device_id_at'), ['device_id', 'at'], unique=False)

    op.create_table('feedback_events',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('station_id', sa.String(length=64), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.Integer(), nullable=True),
    sa.Column('option_id', sa.String(length=64), nullable=True),
    sa.Column('question_id', sa.String(length=64), nullable=False),
    sa.Column('lang', sa.String(length=8), nullable=False),
    sa.Column('ts', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('clock_synced', sa.Boolean(), nullable=False),
    sa.Column('survey_version', sa.Integer(), nullable=False),
    sa.Column('answer_to', sa.Uuid(), nullable=True),
    sa.Column('burst', sa.Boolean(), nullable=False),
    sa.Column('out_of_hours', sa.Boolean(), nullable=False),
    sa.CheckConstraint("kind IN ('smiley', 'followup')", name=op.f('ck_feedback_events_kind')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_feedback_events_device_id_devices')),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_feedback_events_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_feedback_events_event_id'))
    )
    with op.batch_alter_table('feedback_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feedback_events_device_id_seq'), ['device_id', 'seq'], unique=False)
        batch_op.create_index(batch_op.f('ix_feedback_events_station_id_ts'), ['station_id', 'ts'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('feedback_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_feedback_events_station_id_ts'))
        batch_op.drop_index(batch_op.f('ix_feedback_events_device_id_seq'))

    op.drop_table('feedback_events')
    with op.batch_alter_table('device_presence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_presence_device_id_at'))

    op.drop_table('device_presence')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_devices_station_id'))

    op.drop_table('devices')
    op.drop_table('stations')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letters_received_at'))
        batch_op.drop_index(batch_op.f('ix_dead_letters_reason'))

    op.drop_table('dead_letters')
