"""Dashboard benchmark: overview and station-page query times over 10 million events.

Seeds a throwaway PostgreSQL database with N events (default 10,000,000) spread
over a year at S stations (COPY, with a progress bar), device presence
transitions (kiosks on 7-17 every day), and the hourly rollups built from the
events in SQL (the same figures the ingest maintains row by row; tests/
test_rollups.py proves the two agree). Then it times, median of several runs:

- the overview (every station: counted answers, satisfaction, change against the
  previous period, open/online hours) for 7, 30 and 365 days;
- a station page (breakdown, daily trend, hour x weekday heatmap, follow-ups,
  offline shading) for 30 and 365 days;
- for contrast, the same per-station counts straight from ``feedback_events``
  (what the overview would cost without rollups).

    python bench/bench_dashboard.py [--events 10000000] [--stations 8] [--days 365]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--keep]

The URL names an existing database used only to CREATE and DROP the benchmark's
own (``palaute_bench_<pid>``); it defaults to PALAUTE_TEST_DATABASE_URL.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.models import FeedbackEvent
from fleet_server.results.figures import Period, overview, station_page, stations_visible, today_local
from fleet_server.results.rollups import COUNT_COLUMNS

DEFAULT_URL = os.environ.get("PALAUTE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
STATIONS = ("kokkola", "koivuhaka", "kalvia", "lohtaja", "ullava", "kruunupyy", "alaveteli", "teerijarvi")
OPTIONS = ("waiting-time", "staff-attitude", "information", "premises", "something-else")
COPY_COLUMNS = ("event_id", "station_id", "device_id", "kind", "value", "option_id", "question_id", "lang", "ts",
                "received_at", "seq", "clock_synced", "survey_version", "answer_to", "burst", "out_of_hours")


def station_ids(n: int) -> list[str]:
    return [STATIONS[i] if i < len(STATIONS) else f"station-{i}" for i in range(n)]


def seed(url: str, events: int, stations: int, days: int, seed_value: int = 7) -> None:
    rng = random.Random(seed_value)
    engine = make_engine(url)
    migrate(engine)
    ids = station_ids(stations)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO stations (id, name, created_at) VALUES (:id, :name, :at)"),
                     [{"id": s, "name": s.title(), "at": start} for s in ids])
        conn.execute(text("INSERT INTO devices (id, station_id, name, state, created_at, online) "
                          "VALUES (:id, :s, :id, 'active', :at, false)"),
                     [{"id": f"{s}-1", "s": s, "at": start} for s in ids])
        # Kiosks online 7-17 UTC+2 every day: two presence transitions a day each.
        presence = []
        day = start.replace(hour=5)
        while day < end:
            for s in ids:
                presence.append({"d": f"{s}-1", "at": day, "online": True})
                presence.append({"d": f"{s}-1", "at": day + timedelta(hours=10), "online": False})
            day += timedelta(days=1)
        conn.execute(text("INSERT INTO device_presence (device_id, at, online) VALUES (:d, :at, :online)"), presence)
    mixes = [rng.choice([(5, 10, 40, 45), (10, 15, 40, 35), (15, 20, 35, 30), (5, 8, 37, 50)]) for _ in ids]
    span_s = int((end - start).total_seconds())
    raw = engine.raw_connection()
    seqs = dict.fromkeys(ids, 0)
    try:
        cur = raw.cursor()
        with Progress(TextColumn("seeding events"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,}"),
                      TimeRemainingColumn()) as progress:
            task = progress.add_task("events", total=events)
            made = 0
            with cur.copy(f"COPY feedback_events ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
                lines: list[str] = []
                while made < events:
                    i = rng.randrange(stations)
                    sid = ids[i]
                    ts = start + timedelta(seconds=rng.randrange(span_s))
                    value = rng.choices((1, 2, 3, 4), weights=mixes[i])[0]
                    burst = "t" if rng.random() < 0.02 else "f"
                    ooh = "t" if rng.random() < 0.03 else "f"
                    eid = uuid.uuid4()
                    seqs[sid] += 1
                    tss = ts.isoformat()
                    lines.append(f"{eid}\t{sid}\t{sid}-1\tsmiley\t{value}\t\\N\tvisit\tfi\t{tss}\t{tss}\t"
                                 f"{seqs[sid]}\tt\t1\t\\N\t{burst}\t{ooh}\n")
                    made += 1
                    if made < events and rng.random() < 0.3:
                        seqs[sid] += 1
                        fts = (ts + timedelta(seconds=5)).isoformat()
                        q = "what-went-wrong" if value <= 2 else "what-went-well"
                        lines.append(f"{uuid.uuid4()}\t{sid}\t{sid}-1\tfollowup\t\\N\t{rng.choice(OPTIONS)}\t{q}\tfi\t"
                                     f"{fts}\t{fts}\t{seqs[sid]}\tt\t1\t{eid}\tf\t{ooh}\n")
                        made += 1
                    if len(lines) >= 20_000:
                        copy.write("".join(lines))
                        progress.advance(task, len(lines))
                        lines.clear()
                if lines:
                    copy.write("".join(lines))
                    progress.advance(task, len(lines))
        raw.commit()
    finally:
        raw.close()
    t = time.perf_counter()
    build_rollups(engine)
    print(f"rollups built from the events in {time.perf_counter() - t:.1f} s")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()


def build_rollups(engine) -> None:
    """The ingest's rollups, computed in SQL for a bulk load (same partition: c/r/o by value)."""
    kind = "CASE WHEN out_of_hours THEN 'o' WHEN burst THEN 'r' ELSE 'c' END"
    sums = ", ".join(
        f"count(*) FILTER (WHERE {kind} = '{c[0]}' AND value = {c[1]})" for c in COUNT_COLUMNS
    )
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM station_hourly"))
        conn.execute(text("DELETE FROM followup_hourly"))
        conn.execute(text(
            f"INSERT INTO station_hourly (station_id, hour, {', '.join(COUNT_COLUMNS)}) "
            f"SELECT station_id, date_trunc('hour', ts), {sums} FROM feedback_events "
            "WHERE kind = 'smiley' GROUP BY 1, 2"
        ))
        conn.execute(text(
            "INSERT INTO followup_hourly (station_id, hour, smiley, question_id, option_id, n) "
            "SELECT f.station_id, date_trunc('hour', f.ts), coalesce(s.value, 0), f.question_id, f.option_id, count(*) "
            "FROM feedback_events f LEFT JOIN feedback_events s ON s.event_id = f.answer_to AND s.kind = 'smiley' "
            "WHERE f.kind = 'followup' GROUP BY 1, 2, 3, 4, 5"
        ))


def timed(fn, runs: int) -> tuple[float, float]:
    fn()  # warm-up (plans, caches)
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples), max(samples)


def measure(url: str, runs: int, minimum: int = 5) -> None:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    today = today_local()
    with factory() as s:
        n_events = s.scalar(select(func.count()).select_from(FeedbackEvent))
        n_hours = s.scalar(text("SELECT count(*) FROM station_hourly"))
        stations = stations_visible(s)
    print(f"\n{n_events:,} events, {len(stations)} stations, {n_hours:,} station-hour rollup rows\n")
    print(f"{'query':58s} {'median':>9s} {'max':>9s}")

    def report(name: str, fn) -> None:
        med, worst = timed(fn, runs)
        print(f"{name:58s} {med * 1000:8.1f}ms {worst * 1000:8.1f}ms")

    for days in (7, 30, 365):
        period = Period(today - timedelta(days=days - 1), today)

        def run_overview(period=period):
            with factory() as s:
                overview(s, stations, period, minimum)

        report(f"overview, all stations, {days} days (rollups)", run_overview)
    for days in (30, 365):
        period = Period(today - timedelta(days=days - 1), today)

        def run_station(period=period):
            with factory() as s:
                station_page(s, stations[0], period, minimum, "day")

        report(f"station page ({stations[0].id}), {days} days, daily trend", run_station)
    period = Period(today - timedelta(days=364), today)

    def raw_counts():
        with factory() as s:
            e = FeedbackEvent
            s.execute(select(e.station_id, e.value, func.count()).where(
                e.kind == "smiley", e.ts >= period.start, e.ts < period.end).group_by(e.station_id, e.value)).all()

    report("contrast: the same counts from raw events, 365 days", raw_counts)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--stations", type=int, default=8)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database-url", default=DEFAULT_URL,
                        help="an existing PostgreSQL database used to create and drop the benchmark's own")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database (its URL is printed)")
    args = parser.parse_args()
    admin_url = make_url(args.database_url)
    if admin_url.get_backend_name() != "postgresql":
        sys.exit("bench_dashboard needs PostgreSQL (COPY); pass --database-url postgresql+psycopg://...")
    name = f"palaute_bench_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        t = time.perf_counter()
        seed(url, args.events, args.stations, args.days)
        print(f"seeded in {time.perf_counter() - t:.0f} s")
        measure(url, args.runs)
    finally:
        if args.keep:
            print(f"kept: {url}")
        else:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
