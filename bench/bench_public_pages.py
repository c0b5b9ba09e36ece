"""Public results pages under load: a real ``palaute-server serve`` process on loopback, requests at a
fixed rate (open loop, 100/s by default), p50 / p95 / p99 / max latency printed. Goal: p95 < 100 ms.

Seeds a throwaway SQLite file (or --database-url) with the demo's 8 stations and 3 groups (or
--stations N generated ones, 25 to a municipality), all with their public page on, a year of
hourly rollups (answers 8-16 every day) and a few "you said, we did" notes. Then starts
``palaute-server serve --no-ingest`` and sends GETs spread over the station and group pages in
fi/sv/en, the embed variant and the open-data JSON, at --rate per second for --seconds, from
--workers threads with keep-alive connections. A request's latency counts from when it was *due*
(the schedule), not from when a worker got to it, so a server that falls behind shows it
(no coordinated omission).

Phases: the normal server (PALAUTE_PUBLIC_CACHE_S=60), warmed up first with one request per URL
(the first builds the figures: printed apart, as a cold start's cost), then timed, then the same
rate at a small static file of the same server (the floor: what the HTTP stack alone costs); then for contrast the same load for a shorter time with the cache off
(PALAUTE_PUBLIC_CACHE_S=0: every request rebuilds the figures of every public page).

The load generator runs on the same 2 cores as the server; wrk and oha are not in Debian 12
or on PyPI as wheels here, so it is Python (http.client). The server's own CPU per request and
the machine's load average are printed beside the latencies: on a shared machine the load says
how far the latencies can be trusted, the CPU per request does not depend on it.

    python bench/bench_public_pages.py [--rate 100] [--seconds 30] [--workers 16] [--stations 8]
        [--cache-s 60] [--uncached-seconds 10] [--floor-seconds 10] [--database-url URL]
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.devtools.demo import SAMPLE_GROUPS, SAMPLE_NAMES, SAMPLE_STATIONS
from fleet_server.devtools.local_broker import free_port
from fleet_server.models import Station, StationGroup, StationHour, StationNote
from fleet_server.results.figures import today_local
from fleet_server.results.rollups import COUNT_COLUMNS

SECRET = "bench-public-pages-" + "z" * 32
MIXES = ((0.05, 0.10, 0.40, 0.45), (0.10, 0.15, 0.40, 0.35), (0.20, 0.25, 0.30, 0.25))


def seed(url: str, stations: int, days: int) -> tuple[list[str], list[str]]:
    """The public station and group ids."""
    engine = make_engine(url)
    migrate(engine)
    factory = make_session_factory(engine)
    rng = random.Random(7)
    with factory() as s:
        if stations <= len(SAMPLE_STATIONS):
            for gid, parent, kind, fi, sv, en in SAMPLE_GROUPS:
                s.add(StationGroup(id=gid, parent_id=parent, kind=kind, name=fi, name_fi=fi, name_sv=sv, name_en=en,
                                   public_page=True))
                s.flush()
            for sid, en in SAMPLE_STATIONS[:stations]:
                fi, sv, gid = SAMPLE_NAMES[sid]
                s.add(Station(id=sid, name=en, name_fi=fi, name_sv=sv, name_en=en, group_id=gid, public_page=True))
        else:
            s.add(StationGroup(id="county", kind="county", name="Hyvinvointialue", public_page=True))
            s.flush()
            for m in range((stations + 24) // 25):
                s.add(StationGroup(id=f"m{m}", parent_id="county", kind="municipality", name=f"Kunta {m}",
                                   public_page=True))
            s.flush()
            for i in range(stations):
                s.add(Station(id=f"s{i}", name=f"Terveysasema {i}", group_id=f"m{i // 25}", public_page=True))
        s.flush()
        station_ids = list(s.scalars(Station.__table__.select().with_only_columns(Station.id)))
        group_ids = list(s.scalars(StationGroup.__table__.select().with_only_columns(StationGroup.id)))
        today = today_local()
        for sid in station_ids:
            for k in range(3):
                s.add(StationNote(station_id=sid, text_fi=f"Muutos {k}: lisää aikoja aamuun.",
                                  text_sv=f"Ändring {k}: fler tider på morgonen.", starts=today - timedelta(days=30 * k),
                                  created_by="bench", updated_by="bench"))
        s.commit()
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=days)
    rows = []
    for n, sid in enumerate(station_ids):
        mix = MIXES[n % len(MIXES)]
        per_hour = 0.5 + 3 * rng.random()
        for day in range(days):
            for hour in range(6, 14):  # UTC: 8-16 local
                row = dict.fromkeys(COUNT_COLUMNS, 0)
                row.update(station_id=sid, hour=start + timedelta(days=day, hours=hour))
                for _ in range(int(rng.expovariate(1 / per_hour))):
                    row[f"c{rng.choices((1, 2, 3, 4), mix)[0]}"] += 1
                rows.append(row)
    with engine.begin() as conn:
        for i in range(0, len(rows), 5000):
            conn.execute(insert(StationHour), rows[i:i + 5000])
    engine.dispose()
    print(f"seeded {len(station_ids)} stations, {len(group_ids)} groups, {len(rows)} rollup hours, "
          f"{3 * len(station_ids)} notes")
    return station_ids, group_ids


def paths(station_ids: list[str], group_ids: list[str]) -> list[str]:
    out = []
    for sid in station_ids:
        out += [f"/public/stations/{sid}?lang={lang}" for lang in ("fi", "sv", "en")]
        out += [f"/public/stations/{sid}/embed?lang=fi", f"/public/stations/{sid}/data.json"]
    for gid in group_ids:
        out += [f"/public/groups/{gid}?lang=fi", f"/public/groups/{gid}/data.json"]
    return out


def start_server(url: str, port: int, cache_s: float, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAUTE_")}
    env.update(PALAUTE_DATABASE_URL=url, PALAUTE_HTTP_PORT=str(port), PALAUTE_SESSION_SECRET=SECRET,
               PALAUTE_LOG_LEVEL="warning", PALAUTE_PUBLIC_CACHE_S=str(cache_s))
    proc = subprocess.Popen([sys.executable, "-m", "fleet_server.cli", "serve", "--no-ingest"], env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited: {log.read_text()[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start in 60 s")


def load(port: int, urls: list[str], rate: float, seconds: float, workers: int) -> dict:
    """Open-loop GETs at ``rate``/s; latency from each request's due time."""
    total = int(rate * seconds)
    due: queue.Queue[tuple[float, str] | None] = queue.Queue()
    latencies: list[float] = []
    service: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    rng = random.Random(3)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while (item := due.get()) is not None:
            when, path = item
            wait = when - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Accept-Language": "fi-FI,fi;q=0.9"})
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException) as exc:
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                response = None
                errors.append(f"{path}: {exc}")
            done = time.perf_counter()
            with lock:
                latencies.append(done - when)
                service.append(done - sent)
                if not ok and response is not None:
                    errors.append(f"{path}: HTTP {response.status}")
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    t0 = time.perf_counter() + 0.2
    for i in range(total):
        due.put((t0 + i / rate, rng.choice(urls)))
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join(seconds + 120)
    elapsed = time.perf_counter() - t0
    return {"latencies": latencies, "service": service, "errors": errors, "elapsed": elapsed, "total": total}


def warm(port: int, urls: list[str]) -> None:
    """One request per URL before the timed load; prints the first (cold) one and the rest."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for path in urls:
        t = time.perf_counter()
        conn.request("GET", path)
        conn.getresponse().read()
        times.append((time.perf_counter() - t) * 1000)
    conn.close()
    print(f"  warm-up: first request (builds the figures) {times[0]:.0f} ms; each other page's first render "
          f"p50 {statistics.median(times[1:]):.1f} ms, max {max(times[1:]):.1f} ms")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc, Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


def report(name: str, result: dict, rate: float) -> None:
    lat, svc = result["latencies"], result["service"]
    done = len(lat)
    print(f"\n{name}: {done} requests in {result['elapsed']:.1f} s ({done / result['elapsed']:.1f}/s achieved, "
          f"{rate:g}/s asked), {len(result['errors'])} errors")
    if lat:
        print(f"  latency from due time: p50 {pct(lat, 50):.1f} ms, p95 {pct(lat, 95):.1f} ms, "
              f"p99 {pct(lat, 99):.1f} ms, max {max(lat) * 1000:.1f} ms")
        print(f"  service time (sent to read): p50 {pct(svc, 50):.1f} ms, p95 {pct(svc, 95):.1f} ms, "
              f"mean {statistics.fmean(svc) * 1000:.1f} ms")
    for line in result["errors"][:5]:
        print(f"  error: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--uncached-seconds", type=float, default=10, help="0: skip the phase without the cache")
    parser.add_argument("--floor-seconds", type=float, default=10, help="0: skip the static-file floor")
    parser.add_argument("--cache-s", type=float, default=60,
                        help="PALAUTE_PUBLIC_CACHE_S of the cached phase (e.g. 5: rebuilds under load)")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--stations", type=int, default=len(SAMPLE_STATIONS))
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--database-url", default=None, help="an empty database (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-public-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'palaute.db'}"
        station_ids, group_ids = seed(url, args.stations, args.days)
        urls = paths(station_ids, group_ids)
        print(f"{len(urls)} distinct URLs; load: {args.rate:g} requests/s from {args.workers} threads")
        phases = [(f"cached (PALAUTE_PUBLIC_CACHE_S={args.cache_s:g})", args.cache_s, args.seconds)]
        if args.uncached_seconds > 0:
            phases.append(("no cache (PALAUTE_PUBLIC_CACHE_S=0)", 0.0, args.uncached_seconds))
        for name, cache_s, seconds in phases:
            port = free_port()
            proc = start_server(url, port, cache_s, Path(tmp) / f"server-{cache_s:g}.log")
            try:
                print(f"\n{name}")
                if cache_s > 0:
                    warm(port, urls)
                before, load_before = cpu_s(proc.pid), os.getloadavg()[0]
                result = load(port, urls, args.rate, seconds, args.workers)
                used = cpu_s(proc.pid) - before
                report(name, result, args.rate)
                print(f"  server CPU: {used * 1000 / max(1, len(result['latencies'])):.2f} ms per request "
                      f"({used / result['elapsed'] * 100:.0f} % of one core); machine load average "
                      f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
                if cache_s > 0 and args.floor_seconds > 0:  # the same server sending a small static file
                    before = cpu_s(proc.pid)
                    floor = load(port, ["/static/public.css"], args.rate, args.floor_seconds, args.workers)
                    used = cpu_s(proc.pid) - before
                    report("floor: GET /static/public.css, same server, same rate", floor, args.rate)
                    print(f"  server CPU: {used * 1000 / max(1, len(floor['latencies'])):.2f} ms per request")
            finally:
                proc.terminate()
                proc.wait(10)
        print("\ngoal: p95 < 100 ms at 100 requests/s (the cached phase)")


if __name__ == "__main__":
    main()
