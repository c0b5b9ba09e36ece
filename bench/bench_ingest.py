"""Ingest benchmark: events/s from N simulated kiosks through Mosquitto into the database.

Every figure comes from the same run, on the same events, so the machine's noise
cancels; each round measures all of them and the medians of 3 rounds are printed:
1. broker: the same batch payloads published QoS 1 by N paho clients (the kiosk
   uplink's window of 10) to one QoS 1 subscriber through a private Mosquitto,
   timed from the first publish until the last message arrives;
2. the database's own rate on the same schema (a freshly migrated database, the
   rows prepared beforehand), with plain drivers and no project code:
   PostgreSQL: binary COPY into a temp table then INSERT ... SELECT ... ON CONFLICT
   (event_id) DO NOTHING, and executemany of INSERT ... ON CONFLICT DO NOTHING
   (transactions of 500 rows); SQLite: executemany of INSERT OR IGNORE, WAL,
   synchronous=FULL, transactions of 500 rows;
3. database only: the ingest's ``store_batch`` on those messages, no MQTT, in the
   transactions the consumer would make (events, rollups, device rows), as many in
   flight as the consumer keeps (``ingest_writers`` on PostgreSQL, one on SQLite);
4. end to end: N real kiosks (outbox + uplink, the code that runs on the Pi), each in
   its own child process as on its own Pi, draining pre-filled outboxes to the fleet
   server's Ingestor, timed until the last event is committed. (All 8 in one process
   spent CPU on their shared GIL: 18-21 µs per event against 15-20.)
End to end is then reported as a share of each ceiling. The CPU per event counts every process,
the ingest's decoding process on SQLite (fleet_server/ingest/decoder.py) as its own part.

    python bench/bench_ingest.py [--kiosks 8] [--events 40000] [--db sqlite|postgres|URL] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Connection, make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.devtools.local_broker import Mosquitto
from fleet_server.ingest import sqlite_events, store
from fleet_server.ingest.consumer import Ingestor
from fleet_server.ingest.store import InboundMessage, store_batch
from fleet_server.models import FeedbackEvent as FeedbackEventRow
from kiosk.app import Kiosk
from kiosk.config import parse_config
from palaute_wire import contract

BATCH_EVENTS = 100  # what the kiosk uplink sends per message (UplinkTunables.batch_events)
CEILING_TX_ROWS = 500  # rows per transaction of the plain-driver executemany ceilings
COPY_TX_ROWS = getattr(store, "TX_MAX_EVENTS", 5000)  # rows per transaction of the COPY ceiling
EVENT_COLUMNS = sqlite_events.COLUMNS
"""Every column the ingest stores of a kiosk's event, so the ceilings write the same data."""
PG_TYPES = (
    "uuid", "varchar", "varchar", "varchar", "int4", "varchar", "varchar", "varchar", "timestamptz",
    "timestamptz", "int8", "bool", "int4", "uuid", "bool", "bool", "uuid", "uuid", "float8", "float8", "varchar",
)  # fmt: skip


# --------------------------------------------------------------------- CPU accounting

_TICK = os.sysconf("SC_CLK_TCK")
CPU: dict[str, dict[str, float]] = {}
"""Per phase of the current round: CPU seconds per component (this process, the kiosks, the broker,
the database's backends). Wall rates swing with the machine's load; CPU per event much less."""
STARTUP: list[float] = []
"""Seconds from the kiosks' start until the server had their first message (connecting), per round:
left out of the end-to-end time, which runs from that first message to the last commit."""
TRANSACTIONS: list[int] = []
"""Transactions the end-to-end ingest committed, per round (their size is what the flow let them be)."""
DECODED_APART: list[int] = []
"""SQLite: transactions the ingest's decoding process decoded, per round (ingest/decoder.py)."""


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


_BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"


def _pg_backends_cpu(conn) -> float:
    """CPU seconds of every PostgreSQL backend connected to ``conn``'s database (read before they close);
    ``conn`` a psycopg or a SQLAlchemy connection."""
    query = text(_BACKENDS) if isinstance(conn, Connection) else _BACKENDS
    return sum(_proc_cpu(row[0]) for row in conn.execute(query).fetchall())


# --------------------------------------------------------------------- kiosks and payloads


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


def _fill(kiosks: list[Kiosk], total: int) -> None:
    """Press on every kiosk; the outboxes skip fsync while filling (only the bench's setup, not timed)."""
    per = total // len(kiosks)
    for k in kiosks:
        k.outbox._db.execute("PRAGMA synchronous=OFF")
        for i in range(per):
            k.press_smiley(1 + i % 4)


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


def _rows(payloads: list[tuple[str, list[bytes]]]) -> tuple[list[tuple], set[tuple[str, str]]]:
    """The feedback_events rows of the payloads, as plain tuples (prepared before any timing)."""
    now = datetime.now(UTC)
    rows, senders = [], set()
    for _topic, batches in payloads:
        for payload in batches:
            for e in json.loads(payload)["events"]:
                smiley = e["kind"] == "smiley"
                senders.add((e["station_id"], e["device_id"]))
                rows.append(
                    (
                        uuid.UUID(e["event_id"]), e["station_id"], e["device_id"], e["kind"],
                        e["value"] if smiley else None, None if smiley else e["value"], e["question_id"],
                        e["lang"], datetime.fromisoformat(e["ts"]), now, e["seq"], e["clock_synced"],
                        e.get("survey_version", 0), e.get("answer_to") and uuid.UUID(e["answer_to"]), "burst" in e.get("flags", ()),
                        "out_of_hours" in e.get("flags", ()), e.get("epoch") and uuid.UUID(e["epoch"]),
                        e.get("boot_id") and uuid.UUID(e["boot_id"]), e.get("mono_s"), e.get("ts_offset_s"),
                        e.get("channel", "kiosk"),
                    )
                )
    return rows, senders


# --------------------------------------------------------------------- broker


def bench_broker(broker: Mosquitto, payloads: list[tuple[str, list[bytes]]], total_events: int) -> float:
    """QoS 1 publishers -> Mosquitto -> one QoS 1 subscriber; events/s until the last message arrived."""
    expected = sum(len(b) for _, b in payloads)
    got = {"n": 0, "last": 0.0}
    done = threading.Event()

    def on_message(_c, _u, _m):
        got["n"] += 1
        if got["n"] == expected:
            got["last"] = time.perf_counter()
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-sub", protocol=MQTTProtocolVersion.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(contract.subscription("events"), qos=1)
    sub.loop_start()
    pubs = []
    for i in range(len(payloads)):
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{i}", protocol=MQTTProtocolVersion.MQTTv5)
        pub.max_inflight_messages_set(10)  # the kiosk uplink's window
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        pubs.append(pub)
    time.sleep(0.5)  # every client connected and subscribed before the clock starts
    go = threading.Event()

    def publish(pub: mqtt.Client, topic: str, batches: list[bytes]) -> None:
        go.wait()
        for b in batches:
            pub.publish(topic, b, qos=1)

    threads = [threading.Thread(target=publish, args=(p, t, b)) for p, (t, b) in zip(pubs, payloads, strict=True)]
    for t in threads:
        t.start()
    started = time.perf_counter()
    go.set()
    if not done.wait(120):
        raise RuntimeError(f"subscriber got {got['n']} of {expected} messages")
    elapsed = got["last"] - started
    for t in threads:
        t.join()
    for pub in pubs:
        pub.disconnect()
        pub.loop_stop()
    sub.disconnect()
    sub.loop_stop()
    return total_events / elapsed


# --------------------------------------------------------------------- the databases' own rates


def _seed_senders(url: str, senders: set[tuple[str, str]]) -> None:
    engine = make_engine(url)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for station in sorted({s for s, _ in senders}):
            conn.execute(
                text("INSERT INTO stations (id, name, created_at) VALUES (:s, :s, :now)"), {"s": station, "now": now}
            )
        for station, device in sorted(senders):
            conn.execute(
                text(
                    "INSERT INTO devices (id, station_id, state, online, created_at) "
                    "VALUES (:d, :s, 'active', false, :now)"
                ),
                {"d": device, "s": station, "now": now},
            )
    engine.dispose()


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def ceiling_pg_copy(url: str, rows: list[tuple], senders: set[tuple[str, str]]) -> float:
    """Binary COPY into a temp table, INSERT ... SELECT ... ON CONFLICT DO NOTHING; events/s."""
    import psycopg

    migrate(url)
    _seed_senders(url, senders)
    cols = ", ".join(EVENT_COLUMNS)
    with psycopg.connect(_psycopg_dsn(url)) as conn:
        conn.execute(
            f"CREATE TEMP TABLE bench_in ON COMMIT DELETE ROWS AS SELECT {cols} FROM feedback_events WITH NO DATA"
        )
        conn.commit()
        started, cpu0, pg0 = time.perf_counter(), time.process_time(), _pg_backends_cpu(conn)
        for i in range(0, len(rows), COPY_TX_ROWS):
            with conn.cursor() as cur:
                with cur.copy(f"COPY bench_in ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(PG_TYPES)
                    for row in rows[i : i + COPY_TX_ROWS]:
                        copy.write_row(row)
                cur.execute(
                    f"INSERT INTO feedback_events ({cols}) SELECT {cols} FROM bench_in "
                    "ON CONFLICT (event_id) DO NOTHING"
                )
            conn.commit()
        elapsed = time.perf_counter() - started
        CPU["pg copy"] = {"bench": time.process_time() - cpu0, "postgres": _pg_backends_cpu(conn) - pg0}
        stored = conn.execute("SELECT count(*) FROM feedback_events").fetchone()[0]
    if stored != len(rows):
        raise RuntimeError(f"COPY ceiling stored {stored} of {len(rows)}")
    return len(rows) / elapsed


def ceiling_pg_executemany(url: str, rows: list[tuple], senders: set[tuple[str, str]]) -> float:
    """psycopg executemany of INSERT ... ON CONFLICT (event_id) DO NOTHING, 500 rows a transaction."""
    import psycopg

    migrate(url)
    _seed_senders(url, senders)
    sql = (
        f"INSERT INTO feedback_events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join(['%s'] * len(EVENT_COLUMNS))}) "
        "ON CONFLICT (event_id) DO NOTHING"
    )
    with psycopg.connect(_psycopg_dsn(url)) as conn:
        started = time.perf_counter()
        for i in range(0, len(rows), CEILING_TX_ROWS):
            with conn.cursor() as cur:
                cur.executemany(sql, rows[i : i + CEILING_TX_ROWS])
            conn.commit()
        elapsed = time.perf_counter() - started
    return len(rows) / elapsed


def ceiling_sqlite(url: str, rows: list[tuple], senders: set[tuple[str, str]]) -> float:
    """sqlite3 executemany of INSERT OR IGNORE, WAL, synchronous=FULL, 500 rows a transaction."""
    migrate(url)
    _seed_senders(url, senders)
    # The values as the schema stores them on SQLite (hex uuids, naive UTC text), prepared untimed.
    plain = [
        (r[0].hex, *r[1:8], r[8].astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds"),
         r[9].replace(tzinfo=None).isoformat(" ", "microseconds"), *r[10:13], r[13] and r[13].hex, *r[14:16],
         r[16] and r[16].hex, r[17] and r[17].hex, *r[18:])
        for r in rows
    ]  # fmt: skip
    sql = (
        f"INSERT OR IGNORE INTO feedback_events ({', '.join(EVENT_COLUMNS)}) "
        f"VALUES ({', '.join(['?'] * len(EVENT_COLUMNS))})"
    )
    conn = sqlite3.connect(make_url(url).database, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    started, cpu0 = time.perf_counter(), time.process_time()
    for i in range(0, len(plain), CEILING_TX_ROWS):
        conn.execute("BEGIN")
        conn.executemany(sql, plain[i : i + CEILING_TX_ROWS])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    CPU["sqlite executemany"] = {"bench": time.process_time() - cpu0}
    conn.close()
    return len(rows) / elapsed


# --------------------------------------------------------------------- the project


def _transactions(messages: list[InboundMessage], batch: int) -> list[list[InboundMessage]]:
    """The batches the consumer's writer would commit: at most ``batch`` messages and TX_MAX_EVENTS events."""
    limit = getattr(store, "TX_MAX_EVENTS", None)
    out: list[list[InboundMessage]] = []
    current: list[InboundMessage] = []
    events = 0
    for m in messages:
        n = store.count_events(m.payload) if limit else 0
        if current and (len(current) >= batch or (limit and events + n > limit)):
            out.append(current)
            current, events = [], 0
        current.append(m)
        events += n
    if current:
        out.append(current)
    return out


def bench_database(url: str, payloads: list[tuple[str, list[bytes]]], total_events: int, batch: int,
                   writers: int) -> float:
    """The ingest's store_batch on the same messages, no MQTT, ``writers`` transactions in flight
    (the consumer's ``writer_count``); events/s."""
    migrate(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    messages = [InboundMessage(topic, p) for topic, batches in payloads for p in batches]
    started, cpu0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(lambda chunk: store_batch(factory, chunk), _transactions(messages, batch)))
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        CPU["database only"] = {"ingest": time.process_time() - cpu0}
        if engine.dialect.name == "postgresql":
            CPU["database only"]["postgres"] = _pg_backends_cpu(conn)
        stored = conn.execute(select(func.count()).select_from(FeedbackEventRow)).scalar_one()
    engine.dispose()
    if stored != total_events:
        raise RuntimeError(f"database has {stored} events, expected {total_events}")
    return total_events / elapsed


def _run_kiosks(run_dir: str, broker_url: str, numbers: list[int], ready, go, done) -> None:
    """Child process: kiosks drain their outboxes (on the Pi they never share the server's CPU or GIL)."""
    kiosks = [_kiosk(Path(run_dir), broker_url, n) for n in numbers]
    ready.set()
    go.wait()
    for k in kiosks:
        k.start(buttons=False)
    done.wait()
    deadline = time.monotonic() + 60
    while any(k.outbox.stats().queue_depth for k in kiosks) and time.monotonic() < deadline:
        time.sleep(0.02)
    for k in kiosks:
        k.close()


def bench_end_to_end(url: str, broker: Mosquitto, run_dir: Path, kiosks: int, total_events: int) -> float:
    settings = load_settings(None, database_url=url, mqtt_url=broker.url, mqtt_client_id="bench-ingest")
    migrate(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    ctx = mp.get_context("spawn")
    go, done = ctx.Event(), ctx.Event()
    readies = [ctx.Event() for _ in range(kiosks)]
    children = [ctx.Process(target=_run_kiosks, args=(str(run_dir), broker.url, [n], readies[n], go, done))
                for n in range(kiosks)]  # one process per kiosk, as on the Pis
    for child in children:
        child.start()
    try:
        with Ingestor(settings, factory) as ingestor:
            if not ingestor.wait_subscribed(20) or not all(r.wait(60) for r in readies):
                raise RuntimeError("ingest did not subscribe or the kiosks did not start")
            def kiosks_cpu() -> float:
                return sum(_proc_cpu(c.pid) for c in children)

            def decoder_cpu() -> float:  # SQLite: the ingest's decoding process (ingest/decoder.py)
                pid = ingestor.decoder.pid if ingestor.decoder is not None else None
                return _proc_cpu(pid) if pid is not None else 0.0

            kiosks0 = kiosks_cpu()
            decoder0 = decoder_cpu()
            broker0 = _proc_cpu(broker.proc.pid) if broker.proc else 0.0
            started, cpu0 = time.perf_counter(), time.process_time()
            go.set()
            deadline = time.monotonic() + 600
            first = None
            while ingestor.counters.inserted < total_events:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {ingestor.counters.inserted} of {total_events} events arrived")
                if first is None and ingestor.counters.received:
                    first = time.perf_counter()
                time.sleep(0.005)
            ended = time.perf_counter()
            CPU["end to end"] = {"ingest": time.process_time() - cpu0, "kiosks": kiosks_cpu() - kiosks0,
                                 "broker": (_proc_cpu(broker.proc.pid) if broker.proc else 0.0) - broker0}
            if ingestor.decoder is not None:
                CPU["end to end"]["ingest's decoder"] = decoder_cpu() - decoder0
                DECODED_APART.append(ingestor.decoder.batches)
            if engine.dialect.name == "postgresql":
                with engine.connect() as conn:
                    CPU["end to end"]["postgres"] = _pg_backends_cpu(conn)
            elapsed = ended - (first or started)
            STARTUP.append((first or started) - started)
            TRANSACTIONS.append(ingestor.counters.batches)
            done.set()
            for child in children:
                child.join(90)
    finally:
        done.set()
        go.set()
        for child in children:
            child.join(10)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(FeedbackEventRow)).scalar_one()
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
            return f"sqlite:///{self.workdir / (label + '-' + uuid.uuid4().hex[:6] + '.db')}"
        admin_url = make_url(self.kind)
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
        self.created.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kiosks", type=int, default=8)
    parser.add_argument("--events", type=int, default=40_000, help="total events over all kiosks")
    parser.add_argument("--db", default="sqlite", help="sqlite, postgres, or a SQLAlchemy URL")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every phase; medians are printed")
    parser.add_argument("--ingest-batch", type=int, default=None, help="messages per ingest transaction")
    parser.add_argument("--only", default="broker,ceiling,db,e2e",
                        help="comma-separated phases to run (broker, ceiling, db, e2e); ratios need both sides")
    args = parser.parse_args()
    phases = set(args.only.split(","))
    if args.db == "postgres":
        args.db = os.environ.get("PALAUTE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    sqlite_db = args.db == "sqlite"
    figures: dict[str, list[float]] = {}
    cpu_figures: dict[str, dict[str, list[float]]] = {}

    def note(name: str, value: float) -> float:
        figures.setdefault(name, []).append(value)
        return value

    with tempfile.TemporaryDirectory(prefix="palaute-bench-") as tmp:
        workdir = Path(tmp)
        db = _Database(args.db, workdir)
        template = workdir / "template"
        kiosks = [_kiosk(template, "mqtt://127.0.0.1:1", n) for n in range(args.kiosks)]
        _fill(kiosks, args.events)
        total = sum(k.outbox.stats().queue_depth for k in kiosks)
        payloads = _payloads(kiosks)
        for k in kiosks:
            k.close()
        rows, senders = _rows(payloads)
        messages = sum(len(b) for _, b in payloads)
        defaults = load_settings(None)
        batch = args.ingest_batch or defaults.ingest_batch_size
        writers = 1 if sqlite_db else defaults.ingest_writers
        try:
            for r in range(args.rounds):
                if "broker" in phases:
                    with Mosquitto(workdir / f"broker-{r}", persistence=False) as broker:
                        note("broker", bench_broker(broker, payloads, total))
                if "ceiling" in phases:
                    if sqlite_db:
                        note("sqlite executemany", ceiling_sqlite(db.fresh("ceil"), rows, senders))
                    else:
                        note("pg copy", ceiling_pg_copy(db.fresh("copy"), rows, senders))
                        note("pg executemany", ceiling_pg_executemany(db.fresh("many"), rows, senders))
                if "db" in phases:
                    note("database only", bench_database(db.fresh("db"), payloads, total, batch, writers))
                if "e2e" in phases:
                    run_dir = workdir / f"run-{r}"
                    shutil.copytree(template, run_dir)
                    with Mosquitto(workdir / f"broker-e2e-{r}", persistence=False) as broker:
                        note("end to end", bench_end_to_end(db.fresh("e2e"), broker, run_dir, args.kiosks, total))
                ceiling = "sqlite executemany" if sqlite_db else "pg copy"
                for ratio, (a, b) in {"e2e/broker": ("end to end", "broker"), "e2e/ceiling": ("end to end", ceiling),
                                      "db/ceiling": ("database only", ceiling),
                                      "e2e/db": ("end to end", "database only")}.items():
                    if a in figures and b in figures:
                        note(ratio, figures[a][-1] / figures[b][-1])
                for phase, parts in CPU.items():
                    for part, seconds in {**parts, "total": sum(parts.values())}.items():
                        cpu_figures.setdefault(phase, {}).setdefault(part, []).append(seconds / total * 1e6)
                CPU.clear()
                print(f"  round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.2f}" for k, v in figures.items()), flush=True)
                db.drop_all()
        finally:
            db.drop_all()

    med = {k: statistics.median(v) for k, v in figures.items()}
    kind = "sqlite" if sqlite_db else make_url(args.db).get_backend_name()
    ceiling_name = "sqlite executemany" if sqlite_db else "pg copy"
    print(
        f"ingest benchmark: {args.kiosks} kiosks, {total} events in {messages} batches of <= {BATCH_EVENTS}, "
        f"database {kind}, ingest batch {batch} messages, {writers} transaction(s) in flight, "
        f"median of {args.rounds} rounds"
    )
    lines = [
        ("broker", "broker (QoS 1 pub -> Mosquitto -> QoS 1 sub, to the last):", "events/s"),
        ("sqlite executemany", "SQLite's own executemany (WAL, FULL, 500 rows/tx):      ", "events/s"),
        ("pg copy", "PostgreSQL's own COPY + INSERT..SELECT ON CONFLICT:     ", "events/s"),
        ("pg executemany", "PostgreSQL's own executemany ON CONFLICT (500 rows/tx): ", "events/s"),
        ("database only", "project, database only (store_batch, no MQTT):          ", "events/s"),
        ("end to end", "project, end to end (outboxes -> broker -> ingest -> db):", "events/s"),
    ]
    for key, label, unit in lines:
        if key in med:
            print(f"  {label} {med[key]:10,.0f} {unit}")
    if STARTUP:
        print(f"  (end to end runs from the server's first message to the last commit; the kiosks took "
              f"{statistics.median(STARTUP):.2f} s to connect and send it, not counted)")
        print(f"  (the end-to-end ingest committed {statistics.median(TRANSACTIONS):,.0f} transactions, "
              f"{total / statistics.median(TRANSACTIONS):,.0f} events each on average"
              + (f"; {statistics.median(DECODED_APART):,.0f} decoded by its decoding process)" if DECODED_APART else ")"))
    print("  CPU per event, microseconds (all processes; median of the rounds):")
    for phase, parts in cpu_figures.items():
        print(f"    {phase + ':':20s} " + ", ".join(f"{part} {statistics.median(v):,.0f}" for part, v in parts.items()))
    goal = 0.5 if sqlite_db else 0.75
    for key, label in (("e2e/broker", "end to end / broker:"), ("e2e/ceiling", f"end to end / {ceiling_name}:"),
                       ("db/ceiling", f"database only / {ceiling_name}:"), ("e2e/db", "end to end / database only:")):
        if key in med:
            extra = f"   (goal >= {goal})" if key == "e2e/ceiling" else ""
            print(f"  {label:32s} {med[key]:6.2f}{extra}")

if __name__ == "__main__":
    main()
