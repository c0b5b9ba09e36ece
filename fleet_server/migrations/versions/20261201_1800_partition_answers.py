"""answers: feedback_events partitioned by month on PostgreSQL (RANGE of the UUIDv7 event_id)

The existing table is renamed, a partitioned one with the same columns, defaults,
checks, foreign keys and indexes takes its name, monthly partitions are made from
the oldest answer's month to three months ahead (plus a default partition), the rows
are copied and the old table dropped; the id sequence is kept. The primary key
becomes (id, event_id) (a partitioned table's unique keys must contain the partition
key); event_id stays unique on its own. SQLite: nothing changes.

Revision ID: 1800_partition_answers
Revises: 1700_answer_channels
Create Date: 2026-12-01 16:20:00
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from alembic import op
from sqlalchemy import text

from fleet_server.core.partitions import ensure_partitions, uuid7_time

revision: str = "1800_partition_answers"
down_revision: str | None = "1700_answer_channels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "feedback_events_unpartitioned"


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    q = conn.execute
    indexes = q(text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'feedback_events' "
                     "AND schemaname = current_schema()")).all()
    constraints = q(text("SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
                         "WHERE conrelid = 'feedback_events'::regclass AND contype IN ('f', 'u', 'p')")).all()
    sequence = q(text("SELECT pg_get_serial_sequence('feedback_events', 'id')")).scalar()
    q(text(f"ALTER TABLE feedback_events RENAME TO {OLD}"))
    for name, _kind, _definition in constraints:
        q(text(f'ALTER TABLE {OLD} RENAME CONSTRAINT "{name}" TO "{name}_old"'))
    constraint_names = {c[0] for c in constraints}
    for name, _definition in indexes:
        if name not in constraint_names:
            q(text(f'ALTER INDEX "{name}" RENAME TO "{name}_old"'))
    q(text(f"CREATE TABLE feedback_events (LIKE {OLD} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
           "PARTITION BY RANGE (event_id)"))
    if sequence:
        q(text(f"ALTER SEQUENCE {sequence} OWNED BY feedback_events.id"))
    for name, kind, definition in constraints:
        if kind == "p":
            definition = "PRIMARY KEY (id, event_id)"
        q(text(f'ALTER TABLE feedback_events ADD CONSTRAINT "{name}" {definition}'))
    for name, definition in indexes:
        if name not in constraint_names:
            q(text(definition))  # as it was: the old index has given its name up
    oldest = q(text(f"SELECT event_id FROM {OLD} WHERE substring(event_id::text, 15, 1) = '7' "
                    "ORDER BY event_id LIMIT 1")).scalar()
    now = datetime.now(UTC)
    # A kiosk clock set decades back must not make hundreds of partitions: older ids go to the default one.
    since = max(min(uuid7_time(oldest), now), now - timedelta(days=5 * 366)) if oldest is not None else now
    ensure_partitions(conn, now, since)
    q(text(f"INSERT INTO feedback_events SELECT * FROM {OLD}"))
    q(text(f"DROP TABLE {OLD}"))


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name != "postgresql":
        return
    raise NotImplementedError("going back to an unpartitioned answers table: restore the backup taken before")
