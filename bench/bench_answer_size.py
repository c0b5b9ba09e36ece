"""Answers table size: bytes per million answers on PostgreSQL (monthly partitions) and SQLite.

Seeds N answers (default 500,000) spread over the last 12 months, with UUIDv7 event ids
(so they land in their months' partitions), through the migrated schema, then prints
the table's size with and without its indexes, per million answers, and the number of
partitions. Rollups are not counted (they are kept whatever the retention).

    python bench/bench_answer_size.py [--answers 500000] [--backend postgres|sqlite|both]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

The PostgreSQL URL names an existing database used only to CREATE and DROP the
benchmark's own (``palaute_sizebench_<pid>``); it defaults to PALAUTE_TEST_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from fleet_server.core.db import make_engine, migrate
from fleet_server.core.partitions import ensure_partitions, month_start

DEFAULT_URL = os.environ.get("PALAUTE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DEVICES = 50


def seed(engine, answers: int) -> float:
    started = time.perf_counter()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        ensure_partitions(conn, now, since=month_start(now.year, now.month - 12))
        conn.execute(text("INSERT INTO stations (id, name, created_at) VALUES ('bench', 'Bench', CURRENT_TIMESTAMP)"))
        for d in range(DEVICES):
            conn.execute(text("INSERT INTO devices (id, station_id, state, created_at, online) "
                              "VALUES (:d, 'bench', 'active', CURRENT_TIMESTAMP, false)"), {"d": f"bench-{d}"})
        per = answers // DEVICES
        for d in range(DEVICES):
            if engine.dialect.name == "postgresql":
                conn.execute(text(
                    "INSERT INTO feedback_events (event_id, station_id, device_id, kind, value, question_id, lang, "
                    "ts, received_at, seq, clock_synced, survey_version, burst, out_of_hours) "
                    "SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' "
                    "|| substr(md5(random()::text), 1, 3) || '8' || substr(md5(random()::text), 1, 15))::uuid, "
                    "'bench', :d, 'smiley', 1 + n % 4, 'visit', 'fi', t, t, n, true, 1, false, false "
                    "FROM (SELECT n, now() - make_interval(secs => (:per - n) * 31536000.0 / :per) AS t "
                    "FROM generate_series(1, :per) AS n) AS g"), {"d": f"bench-{d}", "per": per})
            else:
                conn.execute(text(
                    "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :per) "
                    "INSERT INTO feedback_events (event_id, station_id, device_id, kind, value, question_id, lang, "
                    "ts, received_at, seq, clock_synced, survey_version, burst, out_of_hours) "
                    "SELECT lower(hex(randomblob(16))), 'bench', :d, 'smiley', 1 + n % 4, 'visit', 'fi', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, n, 1, 1, 0, 0 FROM s"), {"d": f"bench-{d}", "per": per})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE") if engine.dialect.name == "sqlite" else text("VACUUM ANALYZE feedback_events"))
    return time.perf_counter() - started


def report_postgres(engine, answers: int, seconds: float) -> None:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT count(*) FILTER (WHERE isleaf), sum(pg_relation_size(relid)) FILTER (WHERE isleaf), "
            "sum(pg_indexes_size(relid)) FILTER (WHERE isleaf), sum(pg_total_relation_size(relid)) "
            "FILTER (WHERE isleaf) FROM pg_partition_tree('feedback_events')")).one()
        count = conn.execute(text("SELECT count(*) FROM feedback_events")).scalar()
        used = conn.execute(text("SELECT count(*) FROM (SELECT DISTINCT tableoid FROM feedback_events) AS t")).scalar()
    partitions, heap, indexes, total = (int(v) for v in rows)
    per_million = 1e6 / count
    print(f"PostgreSQL: {count:,} answers seeded in {seconds:.1f} s over {used} of {partitions} partitions")
    print(f"  total {total / 2**20:.0f} MB = {total * per_million / 2**20:.0f} MB per million answers "
          f"(table {heap * per_million / 2**20:.0f} MB, indexes {indexes * per_million / 2**20:.0f} MB = "
          f"{100 * indexes / total:.0f} %)")


def report_sqlite(path: Path, engine, seconds: float) -> None:
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM feedback_events")).scalar()
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    size = path.stat().st_size
    print(f"SQLite: {count:,} answers seeded in {seconds:.1f} s; the whole file {size / 2**20:.0f} MB = "
          f"{size * 1e6 / count / 2**20:.0f} MB per million answers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=500_000)
    parser.add_argument("--backend", choices=("postgres", "sqlite", "both"), default="both")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    if args.backend in ("postgres", "both"):
        admin_url = make_url(args.database_url)
        name = f"palaute_sizebench_{os.getpid()}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = admin_url.set(database=name)
            migrate(url)
            engine = make_engine(url)
            report_postgres(engine, args.answers, seed(engine, args.answers))
            engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "size.db"
            migrate(f"sqlite:///{path}")
            engine = make_engine(f"sqlite:///{path}")
            report_sqlite(path, engine, seed(engine, args.answers))
            engine.dispose()


if __name__ == "__main__":
    main()
