"""Live press latency: from a kiosk's publish until the event is committed, under load.

Two scenarios through a private Mosquitto into the fleet server's Ingestor:
1. backlog: other kiosks drain 100,000 queued answers (100 events a message, the
   uplink's window of 10) while one kiosk sends a press every 50 ms;
2. heartbeats: 1,000 kiosks each send a status every 3 s (333 a second) while
   one kiosk sends a press every 50 ms, measured once every kiosk's first status
   (the one that registers it) has been applied: steady heartbeats, not a fleet's
   first registration.
The live kiosk is registered (one status) before its first press. The load runs in a child process (so it does not share the ingest's GIL); the
press time is taken at publish, the commit time by a poller that looks for the
press's event id every few milliseconds on its own connection. Goals: p99 < 1 s
under the backlog, p99 < 250 ms under the heartbeats.

    python bench/bench_ingest_latency.py [--db sqlite|postgres|URL] [--backlog 100000] [--kiosks 1000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import uuid6
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.devtools.local_broker import Mosquitto
from fleet_server.ingest.consumer import Ingestor
from palaute_wire import contract

PRESS_INTERVAL_S = 0.05
POLL_S = 0.005
BACKLOG_KIOSKS = 10
STATUS_PERIOD_S = 3.0


def _client(port: int, name: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=MQTTProtocolVersion.MQTTv5)
    client.max_inflight_messages_set(10)  # the kiosk uplink's window
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _event(station: str, device: str, seq: int) -> bytes:
    return contract.encode(
        contract.FeedbackEvent(
            event_id=uuid6.uuid7(), station_id=station, device_id=device, kind="smiley", value=1 + seq % 4,
            question_id="visit", lang="fi", ts=datetime.now(UTC), seq=seq, clock_synced=True,
        )
    )


# --------------------------------------------------------------------- load (child process)


def _backlog_load(port: int, events: int, ready, go, done) -> None:
    per = events // BACKLOG_KIOSKS
    work = []
    for k in range(BACKLOG_KIOSKS):
        station, device = f"backlog-{k}", f"backlog-{k}-k1"
        rows = [_event(station, device, seq) for seq in range(1, per + 1)]
        batches = [contract.batch_payload(station, device, rows[i : i + 100]) for i in range(0, per, 100)]
        work.append((contract.topic(station, device, "events"), batches, _client(port, f"load-{k}")))
    ready.set()
    go.wait()

    def drain(topic: str, batches: list[bytes], client: mqtt.Client) -> None:
        infos = [client.publish(topic, b, qos=1) for b in batches]
        for info in infos:
            info.wait_for_publish(300)

    threads = [threading.Thread(target=drain, args=w) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.wait()
    for _, _, client in work:
        client.disconnect()
        client.loop_stop()


def _status_load(port: int, kiosks: int, ready, go, done) -> None:
    clients = [_client(port, f"status-{i}") for i in range(4)]
    statuses = []
    for i in range(kiosks):
        station, device = f"hb-{i // 4:04d}", f"hb-{i // 4:04d}-k{i % 4}"
        payload = contract.encode(
            contract.StatusHeartbeat(
                station_id=station, device_id=device, online=True, sent_at=datetime.now(UTC), uptime_s=3600,
                queue_depth=0, clock_synced=True, config_version=1, cpu_temp_c=45.0, disk_free_mb=9000,
            )
        )
        statuses.append((contract.topic(station, device, "status"), payload))
    ready.set()
    step = STATUS_PERIOD_S / kiosks
    started = time.monotonic()
    n = 0
    while not done.is_set():
        topic_name, payload = statuses[n % kiosks]
        clients[n % 4].publish(topic_name, payload, qos=1, retain=True)
        n += 1
        pause = started + n * step - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if n == kiosks:
            go.set()  # every kiosk registered once: measure from here
    for client in clients:
        client.disconnect()
        client.loop_stop()


# --------------------------------------------------------------------- measuring (this process)


class _Presses:
    """One live kiosk: a press every PRESS_INTERVAL_S; a poller notes when each is committed."""

    def __init__(self, port: int, url: str) -> None:
        self.client = _client(port, "live-kiosk")
        self.engine = make_engine(url)
        self.sent: list[float] = []
        self.latency: list[float] = []
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._seq = 0
        self._threads = [threading.Thread(target=self._press, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]

    def start(self) -> _Presses:
        """Register the live kiosk first (its status), so the presses measure a kiosk the server knows."""
        station, device = "live", "live-k1"
        self.client.publish(contract.topic(station, device, "status"), contract.encode(contract.StatusHeartbeat(
            station_id=station, device_id=device, online=True, sent_at=datetime.now(UTC))), qos=1, retain=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self.engine.connect() as conn:
                if conn.execute(text("SELECT 1 FROM devices WHERE id = :d"), {"d": device}).first():
                    break
            time.sleep(0.05)
        for t in self._threads:
            t.start()
        return self

    def _press(self) -> None:
        station, device = "live", "live-k1"
        topic_name = contract.topic(station, device, "events")
        while not self._stop.wait(PRESS_INTERVAL_S):
            self._seq += 1
            event = _event(station, device, self._seq)
            event_id = contract.FeedbackEvent.model_validate_json(event).event_id.hex
            payload = contract.batch_payload(station, device, [event])
            with self._lock:
                self._pending[event_id] = time.perf_counter()
            self.client.publish(topic_name, payload, qos=1)

    def _poll(self) -> None:
        dialect = self.engine.dialect.name
        while not self._stop.is_set() or self._pending:
            with self._lock:
                pending = dict(self._pending)
            if pending:
                ids = list(pending) if dialect == "sqlite" else [str(uuid.UUID(h)) for h in pending]
                marks = ", ".join(f":p{i}" for i in range(len(ids)))
                with self.engine.connect() as conn:
                    found = conn.execute(
                        text(f"SELECT event_id FROM feedback_events WHERE event_id IN ({marks})"),
                        {f"p{i}": v for i, v in enumerate(ids)},
                    ).scalars().all()
                now = time.perf_counter()
                with self._lock:
                    for value in found:
                        key = value.hex if isinstance(value, uuid.UUID) else str(value).replace("-", "")
                        if key in self._pending:
                            sent = self._pending.pop(key)
                            self.latency.append(now - sent)
                            self.sent.append(sent)
            if self._stop.is_set() and time.perf_counter() > self._deadline:
                break
            time.sleep(POLL_S)

    def stop(self, drain_s: float = 30) -> None:
        self._deadline = time.perf_counter() + drain_s
        self._stop.set()
        for t in self._threads:
            t.join(drain_s + 5)
        self.client.disconnect()
        self.client.loop_stop()
        self.engine.dispose()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _scenario(name: str, url: str, workdir: Path, load, load_args: tuple, until) -> dict[str, float]:
    migrate(url)
    with Mosquitto(workdir / f"broker-{name}", persistence=False) as broker:
        settings = load_settings(None, database_url=url, mqtt_url=broker.url, mqtt_client_id=f"bench-{name}")
        factory = make_session_factory(make_engine(url))
        ctx = mp.get_context("spawn")
        ready, go, done = ctx.Event(), ctx.Event(), ctx.Event()
        with Ingestor(settings, factory) as ingestor:
            if not ingestor.wait_subscribed(20):
                raise RuntimeError("ingest did not subscribe")
            child = ctx.Process(target=load, args=(broker.port, *load_args, ready, go, done))
            child.start()
            if not ready.wait(600):
                raise RuntimeError("load generator did not start")
            if load is _backlog_load:
                go.set()
            go.wait(60)
            if load is _status_load:  # steady heartbeats: the first one of each kiosk (registering it) applied
                deadline = time.monotonic() + 120
                while ingestor.counters.statuses < load_args[0] and time.monotonic() < deadline:
                    time.sleep(0.05)
            presses = _Presses(broker.port, url).start()
            started = time.perf_counter()
            until(ingestor, started)
            elapsed = time.perf_counter() - started
            presses.stop()
            inserted = ingestor.counters.inserted
            done.set()
            child.join(60)
    if not presses.latency:
        raise RuntimeError(f"{name}: no press was committed")
    lat = presses.latency
    worst = sorted(zip(lat, presses.sent, strict=True), reverse=True)[:5]
    print(f"  {name}: slowest presses (latency ms @ seconds after the start): "
          + ", ".join(f"{w * 1000:.0f} @ {t - started:.1f}" for w, t in worst), flush=True)
    return {"presses": len(lat), "lost": len(presses._pending), "p50": statistics.median(lat),
            "p99": _percentile(lat, 0.99), "max": max(lat), "seconds": elapsed, "inserted": inserted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres, or a SQLAlchemy URL")
    parser.add_argument("--backlog", type=int, default=100_000, help="queued answers draining from other kiosks")
    parser.add_argument("--kiosks", type=int, default=1000, help="kiosks sending a status every 3 s")
    parser.add_argument("--status-seconds", type=float, default=20, help="how long the heartbeat scenario runs")
    parser.add_argument("--only", choices=("backlog", "status"), help="run one scenario")
    args = parser.parse_args()
    if args.db == "postgres":
        args.db = os.environ.get("PALAUTE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    created: list[str] = []

    def fresh(label: str) -> str:
        if args.db == "sqlite":
            return f"sqlite:///{workdir / (label + '.db')}"
        name = f"palaute_bench_lat_{label}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(make_url(args.db), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        created.append(name)
        return make_url(args.db).set(database=name).render_as_string(hide_password=False)

    def backlog_drained(ingestor: Ingestor, _started: float) -> None:
        deadline = time.monotonic() + 900
        while ingestor.counters.inserted < args.backlog and time.monotonic() < deadline:
            time.sleep(0.05)

    def status_window(_ingestor: Ingestor, started: float) -> None:
        time.sleep(max(0.0, started + args.status_seconds - time.perf_counter()))

    with tempfile.TemporaryDirectory(prefix="palaute-bench-lat-") as tmp:
        workdir = Path(tmp)
        try:
            backlog = beats = None
            if args.only != "status":
                backlog = _scenario("backlog", fresh("backlog"), workdir, _backlog_load, (args.backlog,), backlog_drained)
            if args.only != "backlog":
                beats = _scenario("status", fresh("status"), workdir, _status_load, (args.kiosks,), status_window)
        finally:
            for name in created:
                admin = create_engine(make_url(args.db), isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    kind = "sqlite" if args.db == "sqlite" else "postgresql"
    print(f"live press -> committed, database {kind}, a press every {PRESS_INTERVAL_S * 1000:.0f} ms")
    for label, r, goal in (
        (f"while {args.backlog:,} queued answers drain", backlog, 1.0),
        (f"while {args.kiosks:,} kiosks send a status every {STATUS_PERIOD_S:.0f} s", beats, 0.25),
    ):
        if r is None:
            continue
        print(f"  {label}: {r['presses']} presses, p50 {r['p50'] * 1000:.0f} ms, p99 {r['p99'] * 1000:.0f} ms, "
              f"max {r['max'] * 1000:.0f} ms (goal p99 < {goal * 1000:.0f} ms); not committed: {r['lost']}")
    if backlog is not None:
        print(f"  backlog drained in {backlog['seconds']:.1f} s ({backlog['inserted'] / backlog['seconds']:,.0f} events/s "
              "with the presses)")


if __name__ == "__main__":
    main()
