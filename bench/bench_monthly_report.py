"""Monthly reports at county scale: the cost of making one (figures, then WeasyPrint's PDF), which
decides how many the fleet loop makes per pass (fleet_server.fleet.report_mail.MAX_PER_PASS).

Seeds a SQLite file with S stations in one county and S/25 municipalities and a month of hourly
rollups (08-16 local, every day), then times, over --runs each: building a station's report and
a municipality's and the county's, rendering each as a PDF, and prints p50 / max in ms and the
PDF's size.

    python bench/bench_monthly_report.py [--stations 500] [--runs 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet_server.core import i18n
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.models import Station, StationGroup, StationHour
from fleet_server.results import monthly_report as reports
from fleet_server.results.figures import LOCAL_TZ
from fleet_server.web import report_render

MONTH = date(2026, 11, 1)


def seed(factory, stations: int) -> None:
    rng = random.Random(7)
    with factory() as s:
        s.add(StationGroup(id="county", kind="county", name="County"))
        s.flush()
        for m in range(max(1, stations // 25)):
            s.add(StationGroup(id=f"m{m}", parent_id="county", kind="municipality", name=f"Municipality {m}"))
        s.flush()
        for i in range(stations):
            s.add(Station(id=f"s{i:04d}", name=f"Station {i}", group_id=f"m{i % max(1, stations // 25)}"))
        s.flush()
        rows = []
        for i in range(stations):
            busy = rng.choice((0.2, 1, 3))  # some stations are small
            for day in range(30):
                for hour in range(8, 17):
                    at = datetime.combine(MONTH + timedelta(days=day), dtime(hour), LOCAL_TZ).astimezone(UTC)
                    n = [int(rng.random() * busy * w) for w in (0.3, 0.4, 1.2, 2.0)]
                    if sum(n):
                        rows.append({"station_id": f"s{i:04d}", "hour": at, "c1": n[0], "c2": n[1], "c3": n[2],
                                     "c4": n[3], **{f"{k}{v}": 0 for k in "ro" for v in (1, 2, 3, 4)}})
        s.execute(StationHour.__table__.insert(), rows)
        s.commit()


def timed(runs: int, fn) -> tuple[float, float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        t0 = time.perf_counter()
        seed(factory, args.stations)
        print(f"seeded {args.stations} stations, a month of hourly rollups, in {time.perf_counter() - t0:.1f} s")
        with factory() as s, i18n.using("fi"):
            for label, scope in (("station", reports.station_scope(s, "s0001")),
                                 ("municipality", reports.group_scope(s, "m1")),
                                 ("county", reports.group_scope(s, "county"))):
                assert scope is not None
                build_p50, build_max, report = timed(args.runs, lambda scope=scope: reports.build(s, scope, MONTH, 5))
                pdf_p50, pdf_max, pdf = timed(args.runs, lambda report=report: report_render.report_pdf(report))
                print(f"{label:13s} ({len(scope.station_ids):4d} stations): build p50 {build_p50:6.0f} ms "
                      f"max {build_max:6.0f} ms; PDF p50 {pdf_p50:6.0f} ms max {pdf_max:6.0f} ms, "
                      f"{len(pdf) // 1024} KiB")  # type: ignore[arg-type]
        engine.dispose()


if __name__ == "__main__":
    main()
