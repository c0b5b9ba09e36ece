"""Ingest benchmark: events/s from N simulated kiosks through Mosquitto into the database.

Three figures from one run, on the same events, so the machine's noise cancels:
1. broker: the same batch payloads published QoS 1 by N paho clients to one
   QoS 1 subscriber through the same private Mosquitto (the transport's ceiling);
2. database: the ingest's own ``store_batch`` on those messages with no MQTT
   (the storage ceiling);
3. end to end: N real kiosks (outbox + uplink, the code that runs on the Pi)
   draining pre-filled outboxes to the fleet server's Ingestor, timed until the
   last event is committed in the database and every outbox is empty.
End to end is then reported as a share of each ceiling.

    python bench/bench_ingest.py [--kiosks 8] [--events 20000] [--db sqlite|postgres|URL]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.devtools.local_broker import Mosquitto
from fleet_server.ingest.consumer import InboundMessage, Ingestor, store_batch
from fleet_server.models import FeedbackEvent as FeedbackEventRow
from kiosk.app import Kiosk
from kiosk.config import parse_config
from palaute_wire import contract

BATCH_EVENTS = 100  # what the kiosk uplink sends per message (UplinkTunables.batch_events)


def _kiosk(workdir: Path, broker_url: str, n: int) -> Kiosk:
    station = f"station-{n % 8}"
    config = parse_config(
        {
            "device": {"station_id": station, "device_id": f"{station}-k{n}"},
            "broker": {"url": broker_url, "heartbeat_s": 30},
            "outbox": {"path": str(workdir / f"k{n}" / "outbox.db"), "retention_days": 0},
            "state": {"dir": str(workdir / f"k{n}" / "state")},
        }
    )
    return Kiosk(config, clock_synced_override=True)


def _fill(kiosks: list[Kiosk], total: int) -> float:
    per = total // len(kiosks)
    started = time.perf_counter()
    for k in kiosks:
        for i in range(per):
            k.press_smiley(1 + i % 4)
    return per * len(kiosks) / (time.perf_counter() - started)


def _payloads(kiosks: list[Kiosk]) -> list[tuple[str, list[bytes]]]:
    out = []
    for k in kiosks:
        rows = k.outbox.pending(10**9)
        batches = [
            contract.batch_payload(k.station_id, k.device_id, [r.payload for r in rows[i : i + BATCH_EVENTS]])
            for i in range(0, len(rows), BATCH_EVENTS)
        ]
        out.append((contract.topic(k.station_id, k.device_id, "events"), batches))
    return out


def bench_broker(broker: Mosquitto, payloads: list[tuple[str, list[bytes]]], total_events: int) -> float:
    """QoS 1 publishers -> Mosquitto -> one QoS 1 subscriber; events/s."""
    expected = sum(len(b) for _, b in payloads)
    got = {"n": 0}
    done = threading.Event()

    def on_message(_c, _u, _m):
        got["n"] += 1
        if got["n"] == expected:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=MQTTProtocolVersion.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(contract.subscription("events"), qos=1)
    sub.loop_start()
    time.sleep(0.5)

    def publish(topic: str, batches: list[bytes], idx: int) -> None:
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{idx}", protocol=MQTTProtocolVersion.MQTTv5)
        pub.max_inflight_messages_set(10)  # the kiosk uplink's window
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        infos = [pub.publish(topic, b, qos=1) for b in batches]
        for info in infos:
            info.wait_for_publish(60)
        pub.loop_stop()
        pub.disconnect()

    started = time.perf_counter()
    threads = [threading.Thread(target=publish, args=(t, b, i)) for i, (t, b) in enumerate(payloads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not done.wait(120):
        raise RuntimeError(f"subscriber got {got['n']} of {expected} messages")
    elapsed = time.perf_counter() - started
    sub.loop_stop()
    sub.disconnect()
    return total_events / elapsed


def bench_database(url: str, payloads: list[tuple[str, list[bytes]]], total_events: int, batch: int) -> float:
    """The ingest's store_batch on the same messages, no MQTT; events/s."""
    migrate(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    messages = [InboundMessage(topic, p) for topic, batches in payloads for p in batches]
    started = time.perf_counter()
    for i in range(0, len(messages), batch):
        store_batch(factory, messages[i : i + batch])
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(FeedbackEventRow)).scalar_one()
    engine.dispose()
    if stored != total_events:
        raise RuntimeError(f"database has {stored} events, expected {total_events}")
    return total_events / elapsed


def bench_end_to_end(url: str, broker: Mosquitto, kiosks: list[Kiosk], total_events: int) -> float:
    settings = load_settings(None, database_url=url, mqtt_url=broker.url, mqtt_client_id="bench-ingest")
    migrate(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with Ingestor(settings, factory).start() as ingestor:
        if not ingestor.wait_subscribed(20):
            raise RuntimeError("ingest did not subscribe")
        started = time.perf_counter()
        for k in kiosks:
            k.start(buttons=False)
        deadline = time.monotonic() + 600
        while True:
            with engine.connect() as conn:
                stored = conn.execute(select(func.count()).select_from(FeedbackEventRow)).scalar_one()
            if stored >= total_events:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {stored} of {total_events} events arrived")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        while any(k.outbox.stats().queue_depth for k in kiosks) and time.monotonic() < deadline:
            time.sleep(0.02)
    for k in kiosks:
        k.close()
    engine.dispose()
    if stored != total_events:
        raise RuntimeError(f"database has {stored} events, expected {total_events} (duplicates?)")
    return total_events / elapsed


class _Database:
    """A fresh database per phase: a SQLite file, or a throwaway PostgreSQL database."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind, self.workdir, self.created = kind, workdir, []

    def fresh(self, label: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.workdir / (label + '.db')}"
        admin_url = make_url(
            self.kind
            if "://" in self.kind
            else os.environ.get("PALAUTE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
        )
        name = f"palaute_bench_{label}_{uuid.uuid4().hex[:6]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.created.append((admin_url, name))
        return admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        for admin_url, name in self.created:
            admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kiosks", type=int, default=8)
    parser.add_argument("--events", type=int, default=20_000, help="total events over all kiosks")
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres, or a SQLAlchemy URL")
    parser.add_argument("--ingest-batch", type=int, default=None, help="messages per ingest transaction")
    args = parser.parse_args()
    if args.db == "postgres":
        args.db = os.environ.get("PALAUTE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

    with tempfile.TemporaryDirectory(prefix="palaute-bench-") as tmp:
        workdir = Path(tmp)
        db = _Database(args.db, workdir)
        with Mosquitto(workdir / "broker", persistence=False) as broker:
            kiosks = [_kiosk(workdir, broker.url, n) for n in range(args.kiosks)]
            fill_rate = _fill(kiosks, args.events)
            total = sum(k.outbox.stats().queue_depth for k in kiosks)
            payloads = _payloads(kiosks)
            messages = sum(len(b) for _, b in payloads)
            settings = load_settings(None)
            batch = args.ingest_batch or settings.ingest_batch_size

            broker_rate = bench_broker(broker, payloads, total)
            db_rate = bench_database(db.fresh("db"), payloads, total, batch)
            try:
                e2e_rate = bench_end_to_end(db.fresh("e2e"), broker, kiosks, total)
            finally:
                db.drop_all()

    kind = "sqlite" if args.db == "sqlite" else make_url(args.db).get_backend_name()
    print(f"ingest benchmark: {args.kiosks} kiosks, {total} events in {messages} batches of <= {BATCH_EVENTS}, "
          f"database {kind}, ingest batch {batch} messages")
    print(f"  kiosk outbox appends (durable, synchronous=FULL): {fill_rate:10,.0f} events/s")
    print(f"  broker only (QoS 1 pub -> Mosquitto -> QoS 1 sub): {broker_rate:10,.0f} events/s")
    print(f"  database only (ingest store_batch, no MQTT):       {db_rate:10,.0f} events/s")
    print(f"  end to end (kiosk outboxes -> broker -> ingest -> db): {e2e_rate:10,.0f} events/s")
    print(f"  end to end / broker only:   {e2e_rate / broker_rate:6.2f}")
    print(f"  end to end / database only: {e2e_rate / db_rate:6.2f}")


if __name__ == "__main__":
    main()
