"""Gap query benchmark: fleet_server.fleet.gaps.find_gaps over N events on SQLite and PostgreSQL.

Seeds N events (default 1,000,000) over D kiosks (default 50), seq 1..N/D each,
in SQL, then deletes a few rows per kiosk (every 997th seq: internal gaps) so
the query has something to find. Prints the seeding time, the median of 5 runs
of ``find_gaps`` over the whole fleet (the loop's first pass after a start), one
kiosk, and incremental from each kiosk's highest seq (every later pass), and the
query plan of the window query on each backend.

    python bench/bench_gaps.py [--events 1000000] [--devices 50] [--backend sqlite|postgres|both]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

The PostgreSQL URL names an existing database used only to CREATE and DROP the
benchmark's own (``palaute_gapbench_<pid>``); it defaults to PALAUTE_TEST_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.fleet.gaps import find_gaps
from fleet_server.models import FeedbackEvent

DEFAULT_URL = os.environ.get("PALAUTE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
HOLE_EVERY = 997


def seed(engine, events: int, devices: int) -> float:
    per = events // devices
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO stations (id, name, created_at) VALUES ('bench', 'Bench', CURRENT_TIMESTAMP)"))
        for d in range(devices):
            conn.execute(text("INSERT INTO devices (id, station_id, state, created_at, online) "
                              "VALUES (:d, 'bench', 'active', CURRENT_TIMESTAMP, false)"), {"d": f"bench-{d}"})
        if engine.dialect.name == "sqlite":
            uuid_sql, series = "lower(hex(randomblob(16)))", (
                "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < :per) SELECT n FROM s")
        else:
            uuid_sql, series = "gen_random_uuid()", "SELECT generate_series(1, :per) AS n"
        for d in range(devices):
            conn.execute(text(
                "INSERT INTO feedback_events (event_id, station_id, device_id, kind, value, question_id, lang, ts, "
                "received_at, seq, clock_synced, survey_version, burst, out_of_hours) "
                f"SELECT {uuid_sql}, 'bench', :d, 'smiley', 1 + n % 4, 'visit', 'fi', CURRENT_TIMESTAMP, "
                f"CURRENT_TIMESTAMP, n, true, 0, false, false FROM ({series}) AS g "
                f"WHERE n % {HOLE_EVERY} <> 0"), {"d": f"bench-{d}", "per": per})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE") if engine.dialect.name == "sqlite" else text("VACUUM ANALYZE feedback_events"))
    return time.perf_counter() - started


def median_s(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def plan(engine) -> str:
    ev = FeedbackEvent
    nxt = func.lead(ev.seq).over(partition_by=ev.device_id, order_by=ev.seq)
    sql = str(select(ev.device_id, ev.seq, nxt).compile(engine, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        return "\n".join("    " + " ".join(str(c) for c in row) for row in conn.execute(text(prefix + sql)))


def run(url: str, events: int, devices: int) -> None:
    engine = make_engine(url)
    migrate(engine)
    factory = make_session_factory(engine)
    seeded = seed(engine, events, devices)
    with factory() as session:
        found = find_gaps(session)
        missing = sum(g.missing for g in found.values())
        fleet = median_s(lambda: find_gaps(session))
        one = median_s(lambda: find_gaps(session, ["bench-0"]))
        seen: dict[str, int] = {}
        find_gaps(session, since={f"bench-{d}": 0 for d in range(devices)}, seen=seen)
        steady = median_s(lambda: find_gaps(session, since=seen))
        total = session.scalar(select(func.count()).select_from(FeedbackEvent))
    print(f"{engine.dialect.name}: {total:,} events over {devices} kiosks (seeded in {seeded:.1f} s); "
          f"{missing:,} missing seqs found in {len(found)} kiosks")
    print(f"  find_gaps, whole fleet: {fleet * 1000:.0f} ms (median of 5)")
    print(f"  find_gaps, one kiosk:   {one * 1000:.0f} ms (median of 5)")
    print(f"  find_gaps, incremental from each kiosk's highest seq (the loop's steady state): "
          f"{steady * 1000:.1f} ms (median of 5)")
    print("  plan of the window query:\n" + plan(engine))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            run(f"sqlite:///{tmp}/bench.db", args.events, args.devices)
    if args.backend in ("postgres", "both"):
        admin_url = make_url(args.database_url)
        name = f"palaute_gapbench_{os.getpid()}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            run(admin_url.set(database=name).render_as_string(hide_password=False), args.events, args.devices)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
