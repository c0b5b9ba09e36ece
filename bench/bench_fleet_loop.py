"""Fleet loop at rest: CPU per pass and share of a core with N stations and no traffic.

N stations with one kiosk each, every kiosk online (a fresh status, on the current
config version), nothing else happening: what the fleet loop (config drift repair,
retired kiosks, rollouts, the alert pass, the sequence gap check) costs while the
fleet is quiet. Timed with the loop thread's own CPU clock over several passes,
after the first pass (which publishes every config once); the share of a core is
CPU per pass / alert_check_interval_s, plus the gap check's CPU / gap_check_interval_s.

    python bench/bench_fleet_loop.py [--stations 500] [--passes 5] [--db sqlite|postgres|URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet_server.core.clock import utcnow
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.devtools.local_broker import Mosquitto
from fleet_server.fleet.loop import FleetLoop
from fleet_server.fleet.publisher import Publisher
from fleet_server.ingest.store import InboundMessage, store_batch
from palaute_wire import contract


def _seed(factory, stations: int) -> None:
    now = utcnow()
    messages = []
    for i in range(stations):
        station, device = f"station-{i:04d}", f"station-{i:04d}-k1"
        status = contract.StatusHeartbeat(
            station_id=station, device_id=device, online=True, sent_at=now, software_version="0.2.0",
            uptime_s=3600, queue_depth=0, shed_count=0, last_seq=0, clock_synced=True, config_version=1,
            cpu_temp_c=45.0, disk_free_mb=10_000,
        )
        messages.append(InboundMessage(contract.topic(station, device, "status"), contract.encode(status)))
    for i in range(0, len(messages), 500):
        store_batch(factory, messages[i : i + 500])


def _timed(fn) -> float:
    started = time.thread_time()
    fn()
    return time.thread_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stations", type=int, default=500)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres, or a SQLAlchemy URL")
    args = parser.parse_args()
    if args.db == "postgres":
        args.db = os.environ.get("PALAUTE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with tempfile.TemporaryDirectory(prefix="palaute-bench-loop-") as tmp:
        workdir = Path(tmp)
        admin = name = None
        if args.db == "sqlite":
            url = f"sqlite:///{workdir / 'loop.db'}"
        else:
            admin = create_engine(make_url(args.db), isolation_level="AUTOCOMMIT")
            name = f"palaute_bench_loop_{uuid.uuid4().hex[:6]}"
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = make_url(args.db).set(database=name).render_as_string(hide_password=False)
        try:
            with Mosquitto(workdir / "broker", persistence=False) as broker:
                settings = load_settings(None, database_url=url, mqtt_url=broker.url, mqtt_client_id="bench-loop")
                migrate(url)
                engine = make_engine(url)
                factory = make_session_factory(engine)
                _seed(factory, args.stations)
                publisher = Publisher(settings)
                publisher.start()
                loop = FleetLoop(settings, factory, publisher)
                first = _timed(loop.run_pass)  # publishes every config, scans for gaps from scratch
                passes = [_timed(loop.run_pass) for _ in range(args.passes)]
                gaps = [_timed(loop.check_gaps) for _ in range(args.passes)]
                publisher.close()
                engine.dispose()
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    per_pass, per_gap = statistics.median(passes), statistics.median(gaps)
    share = per_pass / settings.alert_check_interval_s + per_gap / max(settings.gap_check_interval_s, 1)
    kind = "sqlite" if args.db == "sqlite" else "postgresql"
    print(f"fleet loop at rest: {args.stations} stations x 1 kiosk, database {kind}, median of {args.passes} passes")
    print(f"  first pass (publishes every config):   {first * 1000:8.1f} ms CPU")
    print(f"  pass at rest (every {settings.alert_check_interval_s:.0f} s):            {per_pass * 1000:8.1f} ms CPU")
    print(f"  gap check at rest (every {settings.gap_check_interval_s:.0f} s):       {per_gap * 1000:8.1f} ms CPU")
    print(f"  share of one core at rest:             {share * 100:8.2f} %   (goal < 1 %)")


if __name__ == "__main__":
    main()
