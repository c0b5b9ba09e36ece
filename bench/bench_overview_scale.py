"""Overview and group pages at county/country scale: 500 stations, 1,000 kiosks sending.

Seeds a throwaway PostgreSQL database (or a SQLite file with --sqlite) with S stations in
groups (one county, S/25 municipalities), two kiosks per station with a month of
online/offline transitions (on 7-17 every day), and a month of hourly rollups (by station and,
all kiosk answers, by channel). Then, while a
background thread stores what 1,000 kiosks send (event batches and status heartbeats through
the ingest's own ``store_batch``, at --rate messages per second), it times, over --runs
requests each:

- ``GET /?range=7d`` (the overview page: group totals, cascaded small-count rule, intervals),
- ``GET /?range=7d&group=<a municipality>`` (a group page),
- ``GET /api/v1/results/overview?range=7d``,

at rest and while the kiosks send, and prints p50 / p95 / max in ms, the first (cold) request
of each, the SQL statements one page costs, the message rate the kiosks achieved, and for
contrast the single rollup query (every station's counted answers for the period in one
SELECT) measured beside them.

    python bench/bench_overview_scale.py [--stations 500] [--runs 40] [--rate 100] [--sqlite]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, event, insert, text
from sqlalchemy.engine import make_url

from fleet_server.app import create_app
from fleet_server.auth.service import create_token
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import InboundMessage, store_batch
from fleet_server.models import ChannelHour, Device, DevicePresence, Station, StationGroup, StationHour
from fleet_server.results.figures import Period, station_totals, today_local
from palaute_wire import contract as c

DEFAULT_URL = os.environ.get("PALAUTE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def seed(factory, stations: int, days: int) -> None:
    rng = random.Random(11)
    moment = datetime.now(UTC)
    now = moment.replace(minute=0, second=0, microsecond=0)
    with factory() as s:
        s.add(StationGroup(id="county", kind="county", name="Hyvinvointialue"))
        s.flush()
        for m in range(max(1, stations // 25)):
            s.add(StationGroup(id=f"m{m:02d}", parent_id="county", kind="municipality", name=f"Kunta {m}"))
        s.flush()
        s.execute(insert(Station), [{"id": f"s{i:03d}", "name": f"Asema {i}", "group_id": f"m{i // 25:02d}",
                                     "created_at": now} for i in range(stations)])
        s.execute(insert(Device), [{"id": f"s{i:03d}-{k}", "station_id": f"s{i:03d}", "state": "active",
                                    "online": True} for i in range(stations) for k in (1, 2)])
        presence, hours = [], []
        for d in range(days, -1, -1):
            day = now - timedelta(days=d)
            on = day.replace(hour=5)  # 07:00 Finnish time
            for i in range(stations):
                for k in (1, 2):
                    at = on + timedelta(minutes=rng.randrange(30))
                    if at <= moment:  # today's only once it has happened (run before 07:00, none yet)
                        presence.append({"device_id": f"s{i:03d}-{k}", "at": at, "online": True})
                    if d:
                        presence.append({"device_id": f"s{i:03d}-{k}", "at": on + timedelta(hours=10), "online": False})
                for h in range(10):
                    n = rng.randrange(0, 6)
                    if on + timedelta(hours=h) <= moment:  # no answers from hours to come
                        hours.append({"station_id": f"s{i:03d}", "hour": on + timedelta(hours=h),
                                      "c1": n // 5, "c2": n // 4, "c3": n // 2, "c4": n, "r1": 0, "r2": 0, "r3": 0,
                                      "r4": 0, "o1": 0, "o2": 0, "o3": 0, "o4": 0})
        for chunk in range(0, len(presence), 20_000):
            s.execute(insert(DevicePresence), presence[chunk:chunk + 20_000])
        for chunk in range(0, len(hours), 20_000):
            s.execute(insert(StationHour), hours[chunk:chunk + 20_000])
            # The same answers by channel, as the ingest keeps them (channels_used reads these).
            s.execute(insert(ChannelHour), [{**h, "channel": "kiosk"} for h in hours[chunk:chunk + 20_000]])
        s.commit()


class Kiosks(threading.Thread):
    """What 1,000 kiosks send: an event batch or a heartbeat from a random kiosk, ``rate`` a second."""

    def __init__(self, factory, stations: int, rate: float):
        super().__init__(daemon=True)
        self.factory, self.stations, self.rate = factory, stations, rate
        self.stop = threading.Event()
        self.sent = 0
        self.seq: dict[str, int] = {}

    def run(self) -> None:
        rng = random.Random(5)
        while not self.stop.is_set():
            started = time.monotonic()
            messages = []
            for _ in range(max(1, int(self.rate / 10))):
                i, k = rng.randrange(self.stations), rng.choice((1, 2))
                sid, did = f"s{i:03d}", f"s{i:03d}-{k}"
                if rng.random() < 0.7:
                    seq = self.seq[did] = self.seq.get(did, 0) + 1
                    ev = c.FeedbackEvent(event_id=uuid.uuid4(), device_id=did, station_id=sid, kind="smiley",
                                         value=rng.randint(1, 4), question_id="visit", lang="fi",
                                         ts=datetime.now(UTC), seq=seq, clock_synced=True)
                    batch = c.EventBatch(device_id=did, station_id=sid, sent_at=datetime.now(UTC), events=(ev,))
                    messages.append(InboundMessage(c.topic(sid, did, "events"), c.encode(batch)))
                else:
                    status = c.StatusHeartbeat(station_id=sid, device_id=did, online=True, sent_at=datetime.now(UTC))
                    messages.append(InboundMessage(c.topic(sid, did, "status"), c.encode(status)))
            store_batch(self.factory, messages)
            self.sent += len(messages)
            self.stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))


CPU: dict[str, list[float]] = {}
"""Per path, this process's CPU time (ms) per request: at rest, the server's own Python work,
which the machine's other load does not inflate as it does the wall-clock figures."""


def timed(client: TestClient, path: str, runs: int, cpu_key: str | None = None) -> list[float]:
    out = []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        r = client.get(path)
        out.append((time.perf_counter() - t) * 1000)
        if cpu_key is not None:
            CPU.setdefault(cpu_key, []).append((time.process_time() - c) * 1000)
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    return out


def percentiles(ms: list[float]) -> tuple[float, float, float]:
    """p50, p95 (nearest rank) and max."""
    ms = sorted(ms)
    return statistics.median(ms), ms[max(0, math.ceil(0.95 * len(ms)) - 1)], ms[-1]


def report(name: str, ms: list[float]) -> None:
    p50, p95, top = percentiles(ms)
    cpu = CPU.pop(name, None)
    extra = f"   CPU here p50 {statistics.median(cpu):6.1f} ms" if cpu else ""
    print(f"  {name:<46} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms   max {top:7.1f} ms   ({len(ms)} runs){extra}")


def single_query(factory, ids: list[str], period: Period, runs: int) -> list[float]:
    """The contrast: every station's counted answers for the period in one SELECT over the rollups."""
    out = []
    for _ in range(runs):
        with factory() as s:
            t = time.perf_counter()
            station_totals(s, ids, period.start, period.end)
            out.append((time.perf_counter() - t) * 1000)
    return out


def statements_of(app, client: TestClient, path: str) -> int:
    statements: list[str] = []

    def count(*a) -> None:
        statements.append(a[2])

    event.listen(app.state.engine, "before_cursor_execute", count)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(app.state.engine, "before_cursor_execute", count)
    return len(statements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rate", type=float, default=100.0, help="messages a second from the 1,000 kiosks")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args()

    admin = None
    if args.sqlite:
        url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    else:
        admin_url = make_url(args.database_url)
        name = f"palaute_bench_{os.getpid()}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        settings = load_settings(environ={}, database_url=url, mode="development")
        app = create_app(settings, start_ingest=False)
        with TestClient(app) as client:
            factory = app.state.session_factory
            t = time.perf_counter()
            seed(factory, args.stations, args.days)
            print(f"seeded {args.stations} stations, {2 * args.stations} kiosks, {args.days} days "
                  f"in {time.perf_counter() - t:.1f} s ({'SQLite' if args.sqlite else 'PostgreSQL'})")
            if admin is not None:
                with app.state.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.execute(text("VACUUM ANALYZE"))  # as autovacuum would have by now
                    conn.execute(text("CHECKPOINT"))  # the seed's pages written out before the timing, not during it
            with factory() as s:
                token = create_token(s, "bench", "coordinator").token
                s.commit()
            client.headers["Authorization"] = f"Bearer {token}"
            period = Period(today_local() - timedelta(days=6), today_local())
            ids = [f"s{i:03d}" for i in range(args.stations)]
            pages = [
                (f"GET /?range=7d (overview, {args.stations} stations)", "/?range=7d"),
                ("GET /?range=7d&group=m03 (one municipality)", "/?range=7d&group=m03"),
                ("GET /api/v1/results/overview?range=7d", "/api/v1/results/overview?range=7d"),
            ]
            print(f"load average before: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
                  f"({os.cpu_count()} cores; other work on the machine inflates every figure alike)")
            print("first requests (cold: the settled open/online hours are counted and kept):")
            for label, path in pages:
                t = time.perf_counter()
                n = statements_of(app, client, path)
                print(f"  {label:<46} {(time.perf_counter() - t) * 1000:7.1f} ms, {n} SQL statements")
            print("SQL statements of a warm request (a constant, whatever the number of stations):")
            for label, path in pages[:2]:
                print(f"  {label:<46} {statements_of(app, client, path)}")

            print("at rest:")
            for label, path in pages:
                report(label, timed(client, path, args.runs, cpu_key=label))
            report("the single rollup query (station_totals)", single_query(factory, ids, period, args.runs))

            kiosks = Kiosks(factory, args.stations, args.rate)
            kiosks.start()
            time.sleep(2.0)
            started, sent0 = time.monotonic(), kiosks.sent
            print(f"while 1,000 kiosks send (asked for {args.rate:.0f} messages/s into the database, "
                  f"the ingest's own store_batch in this process, as `palaute-server serve` runs it):")
            for label, path in pages:
                report(label, timed(client, path, args.runs))
            report("the single rollup query (station_totals)", single_query(factory, ids, period, args.runs))
            elapsed, sent = time.monotonic() - started, kiosks.sent - sent0
            kiosks.stop.set()
            kiosks.join(10)
            print(f"  ({sent} kiosk messages stored meanwhile: {sent / elapsed:.0f} messages/s achieved; "
                  f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())})")
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
