"""The Alembic migrations build exactly the schema the ORM models describe, on both backends."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from fleet_server.core.db import alembic_config, make_engine, make_session_factory, migrate
from fleet_server.core.partitions import include_name
from fleet_server.models import Base


def test_migrations_match_the_models(db_url):
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
    finally:
        engine.dispose()


def test_migrate_is_idempotent_and_creates_every_table(db_url):
    migrate(db_url)
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url):
    engine = make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def _store_at_that_revision(engine, answers) -> None:
    """The answers as the ingest of that revision stored them: into the tables as they were then
    (today's store writes columns added later, e.g. channel)."""
    from datetime import UTC, datetime

    from sqlalchemy import MetaData, Table

    from fleet_server.ingest.store import _event_row

    with engine.begin() as conn:
        tables = {n: Table(n, MetaData(), autoload_with=conn) for n in ("stations", "devices", "feedback_events")}
        now = datetime.now(UTC)
        conn.execute(tables["stations"].insert(), [{"id": "kalvia", "name": "kalvia", "created_at": now}])
        conn.execute(tables["devices"].insert(), [{"id": "kalvia-1", "station_id": "kalvia", "state": "active",
                                                  "online": False, "created_at": now}])
        columns = set(tables["feedback_events"].c.keys())
        conn.execute(tables["feedback_events"].insert(),
                     [{k: v for k, v in _event_row(e, now).items() if k in columns} for e in answers])


def test_the_answers_table_is_partitioned_by_month_from_todays_schema_with_data_in_it(postgres_url):
    """Migrate to the revision before partitioning, store answers of three months (and one
    id that is not a UUIDv7), migrate on: every row is there, in its month's partition, and
    the ingest's idempotent insert still refuses a second copy of any of them."""
    import uuid
    from datetime import UTC, datetime

    import uuid6

    from fleet_server.core.partitions import existing_partitions, is_partitioned
    from fleet_server.ingest.store import store_batch
    from tests.support.server_factories import event, events_message

    migrate(postgres_url, "1700_answer_channels")
    engine = make_engine(postgres_url)
    factory = make_session_factory(engine)
    try:
        answers = []
        for month in (9, 10, 11):
            # uuid6.uuid7() stamps "now"; build ids of past months by their 48-bit time prefix.
            at = datetime(2026, month, 15, 12, 0, tzinfo=UTC)
            for _ in range(5):
                raw = uuid6.uuid7().int & ((1 << 80) - 1)
                answers.append(event(seq=len(answers) + 1, ts=at,
                                     event_id=uuid.UUID(int=(int(at.timestamp() * 1000) << 80) | raw)))
        answers.append(event(seq=len(answers) + 1, event_id=uuid.uuid4()))
        _store_at_that_revision(engine, answers)
        with engine.connect() as conn:
            assert not is_partitioned(conn)
            before = conn.execute(text("SELECT max(id) FROM feedback_events")).scalar()

        migrate(postgres_url)
        with engine.connect() as conn:
            assert is_partitioned(conn)
            names = existing_partitions(conn)
            assert {"feedback_events_2026_09", "feedback_events_2026_10", "feedback_events_2026_11",
                    "feedback_events_default"} <= names
            per_month = dict(conn.execute(text(
                "SELECT tableoid::regclass::text, count(*) FROM feedback_events GROUP BY 1")).all())
            assert per_month["feedback_events_2026_09"] == per_month["feedback_events_2026_10"] == 5
            assert sum(per_month.values()) == len(answers)
        again = store_batch(factory, [events_message(answers[:4]), events_message([event(seq=99)])])
        assert (again.inserted, again.duplicates) == (1, 4)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM feedback_events")).scalar() == len(answers) + 1
            assert conn.execute(text("SELECT max(id) FROM feedback_events")).scalar() > before  # same sequence
    finally:
        engine.dispose()
