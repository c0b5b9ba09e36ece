"""Fault-injection soak: real kiosks, broker, server and PostgreSQL, faults at random, every press accounted for.

What runs (all on loopback, on free ports, in a temporary directory):
- a private PostgreSQL cluster made here with initdb and run with pg_ctl (never the
  machine's own), so it can be killed with SIGKILL;
- a private Mosquitto with the project's settings (fleet_server.devtools.local_broker);
- the fleet server, ``python -m fleet_server.cli serve``, on that database and broker,
  with short gap-check timings so that resend requests happen within the run;
- N kiosks, each ``palaute-kiosk --simulate`` (the real kiosk code: mock pins,
  outbox, uplink) in its own process, reaching the broker through a TCP proxy that
  can drop, half-open and flap their link.

The ledger is every press a kiosk acknowledged to its patient: the rows of the
kiosks' outboxes (committed before the thank-you), read again and again during the
run so that rows a kiosk purges later are still counted.

Faults, one at a time in random order, each held for ``--hold`` seconds: kiosk,
server, broker and database kill -9 then restart; broker paused (SIGSTOP); the
kiosk link dropped, half-open (bytes stop, sockets stay) and flapping; a full disk
under one kiosk's outbox (a tmpfs filled to the last byte; needs root, else skipped).
After each fault the soak waits until every press made before the fault ended is
stored, and records that as the time to recover. At the end everything is up, the
soak drains (every press made before the drain is stored, or the drain deadline
passes) and prints a table per fault:

    (broker_kill_draining: the server is down for the hold, then the broker is killed
    as the server starts taking its backlog; broker_kill_holding: the broker is killed
    while it holds the backlog for the absent server, so what it acknowledged since its
    last autosave comes back only by the server's seq-gap resend.)
    sent: presses the kiosks acknowledged during the fault's window (fault start to
          the next fault's start); stored once: of those, in the server's table once;
    lost: acknowledged but not stored; duplicated: a (device, seq) stored twice;
    dead-lettered: dead letters the server wrote in the window; resends: resend requests
    the server sent for seq gaps in the window; recover s: see above.

    python bench/soak.py --kiosks 4 --rate 60 --faults 9 --hold 4          # a few minutes
    python bench/soak.py --kiosks 12 --rate 120 --faults 60 --hold 20      # the long run (about 1 h)

Exit status 0 when nothing was lost or duplicated, 1 otherwise. tests/e2e/test_soak.py
runs a bounded soak (about 2-3 minutes) and requires exactly that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg

from fleet_server.devtools.local_broker import Mosquitto, free_port
from kiosk.outbox import LOW_SPACE_BYTES

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
STATION = "soak"

FAULTS = ("kiosk_kill", "server_kill", "broker_kill", "broker_kill_draining", "broker_kill_holding", "database_kill",
          "broker_pause",
          "link_drop", "link_half_open", "link_flap", "disk_full")


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait(what: str, predicate: Callable[[], object], timeout: float, step: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


def kill_tree(proc: subprocess.Popen | None, sig: int = signal.SIGKILL) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------- PostgreSQL


@dataclass
class PgCluster:
    """A throw-away PostgreSQL cluster in ``workdir``; as root, it runs as the ``postgres`` user."""

    workdir: Path
    port: int = field(default_factory=free_port)
    pid: int | None = None

    @property
    def datadir(self) -> Path:
        return self.workdir / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=3"

    @staticmethod
    def _bindir() -> Path:
        found = shutil.which("pg_ctl")
        if found:
            return Path(found).parent
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        if not versions:
            raise RuntimeError("PostgreSQL's initdb/pg_ctl not found (apt-get install postgresql)")
        return versions[-1]

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self._bindir() / args[0]), *args[1:]]
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> PgCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "--no-sync")
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.workdir}'\n"
                    "fsync = on\nmax_connections = 50\nshared_buffers = 32MB\n")
        return self

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.workdir / "pg.log"), "-w", "-t", "60", "start")
        self.pid = int((self.datadir / "postmaster.pid").read_text().split()[0])

    def kill9(self) -> None:
        """SIGKILL the postmaster, then its backends (as a power cut would leave it)."""
        if self.pid is None:
            return
        children = subprocess.run(["pgrep", "-P", str(self.pid)], check=False, capture_output=True, text=True).stdout.split()
        os.kill(self.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(child), signal.SIGKILL)
        wait("the killed PostgreSQL to be gone", lambda: not _alive(self.pid), 20)
        self.pid = None

    def stop(self) -> None:
        if self.datadir.exists():
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop", check=False)
        self.pid = None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


# ----------------------------------------------------------------- the kiosks' link


class Proxy:
    """A loopback TCP proxy between the kiosks and the broker, with faults.

    up: bytes flow. down: every connection is closed and new ones are accepted and
    closed at once. half_open: connections stay open but no byte moves either way
    (a NAT that forgot the flow, a cable pulled mid-route). flap: down and up
    alternately every ``flap_s``.
    """

    def __init__(self, upstream_port: int, flap_s: float = 0.7) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.mode = "up"
        self.flap_s = flap_s
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True, name="soak-proxy").start()

    def set(self, mode: str) -> None:
        self.mode = mode
        if mode in ("down", "flap"):
            self._close_all()
        if mode == "flap":
            threading.Thread(target=self._flap, daemon=True).start()

    def _flap(self) -> None:
        up = True
        while self.mode == "flap" and not self._stop.is_set():
            time.sleep(self.flap_s)
            up = not up
            if not up:
                self._close_all()

    def _flapping_down(self) -> bool:
        return self.mode == "flap" and int(time.monotonic() / self.flap_s) % 2 == 0

    def _close_all(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, set()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if self.mode == "down" or self._flapping_down():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.2)
        try:
            while not self._stop.is_set():
                if self.mode == "half_open":
                    time.sleep(0.05)  # read nothing, send nothing; the sockets stay open
                    continue
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            with self._lock:
                self._conns.discard(src)
                self._conns.discard(dst)

    def close(self) -> None:
        self._stop.set()
        self._close_all()
        self._listener.close()


# ----------------------------------------------------------------- kiosks and server


@dataclass
class KioskProc:
    index: int
    dir: Path
    proxy_port: int
    rate: float
    disk: Path | None = None  # a tmpfs under the outbox (the full-disk victim)
    proc: subprocess.Popen | None = None

    @property
    def device_id(self) -> str:
        return f"soak-{self.index + 1}"

    @property
    def data_dir(self) -> Path:
        return self.disk if self.disk is not None else self.dir / "data"

    @property
    def outbox(self) -> Path:
        return self.data_dir / "outbox.db"

    def write_config(self) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "kiosk.toml"
        path.write_text(f"""[device]
station_id = "{STATION}"
device_id = "{self.device_id}"
[broker]
url = "mqtt://127.0.0.1:{self.proxy_port}"
keepalive_s = 5
heartbeat_s = 2
reconnect_min_s = 0.2
reconnect_max_s = 2
[outbox]
path = "{self.outbox}"
[state]
dir = "{self.data_dir / 'state'}"
[hardware]
confirm_s = 0.2
[simulate]
clock_synced = true
followup_share = 0.3
""")
        return path

    def start(self) -> None:
        config = self.write_config()
        logf = (self.dir / "kiosk.log").open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "palaute-kiosk"), "--config", str(config), "--simulate", "--rate", str(self.rate),
             "--seed", str(self.index * 7919 + int(time.time()))],
            stdout=logf, stderr=logf, env={**os.environ, "GPIOZERO_PIN_FACTORY": "mock"},
        )

    def kill9(self) -> None:
        kill_tree(self.proc)

    def stop(self) -> None:
        kill_tree(self.proc, signal.SIGTERM)


@dataclass
class Server:
    dir: Path
    database_url: str
    broker_url: str
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "PALAUTE_DATABASE_URL": self.database_url, "PALAUTE_MQTT_URL": self.broker_url,
               "PALAUTE_HTTP_PORT": str(self.port), "PALAUTE_MQTT_CLIENT_ID": "soak-ingest",
               "PALAUTE_MODE": "development", "PALAUTE_LOG_LEVEL": "warning",
               "PALAUTE_GAP_GRACE_S": "4", "PALAUTE_GAP_RESEND_INTERVAL_S": "6",
               "PALAUTE_GAP_CHECK_SOON_S": "2", "PALAUTE_GAP_CHECK_INTERVAL_S": "10",
               "PALAUTE_ALERT_CHECK_INTERVAL_S": "2", "PALAUTE_ALERT_HEARTBEAT_TIMEOUT_S": "15",
               "PALAUTE_MQTT_RECONNECT_MAX_S": "2", "PALAUTE_LEADER_POLL_S": "1"}
        env.pop("PALAUTE_CONFIG_FILE", None)
        logf = (self.dir / "server.log").open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "fleet_server.cli", "serve"], env=env, cwd=self.dir,
                                     stdout=logf, stderr=logf)

    def healthz(self) -> dict:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return json.loads(r.read())
        except Exception as exc:  # noqa: BLE001 - 503 bodies included
            body = getattr(exc, "read", None)
            try:
                return json.loads(body()) if body else {}
            except Exception:  # noqa: BLE001
                return {}

    def wait_ready(self, timeout: float = 60) -> None:
        wait("the server to serve and connect to MQTT",
             lambda: self.healthz().get("mqtt") == "connected" or self._died(), timeout, 0.2)
        self._died()

    def _died(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the server exited ({self.proc.returncode}); see {self.dir / 'server.log'}")
        return False

    def kill9(self) -> None:
        kill_tree(self.proc)

    def stop(self) -> None:
        kill_tree(self.proc, signal.SIGTERM)


# ----------------------------------------------------------------- the ledger and the books


@dataclass
class Press:
    device_id: str
    seq: int
    created_at: float


class Ledger:
    """Every press the kiosks acknowledged (event_id -> Press), gathered from their outboxes."""

    def __init__(self, kiosks: list[KioskProc]) -> None:
        self.kiosks = kiosks
        self.presses: dict[str, Press] = {}

    def read(self) -> dict[str, Press]:
        for k in self.kiosks:
            if not k.outbox.exists():
                continue
            try:
                db = sqlite3.connect(f"file:{k.outbox}?mode=ro", uri=True, timeout=5)
                try:
                    rows = db.execute("SELECT event_id, seq, created_at FROM events").fetchall()
                finally:
                    db.close()
            except sqlite3.Error:
                continue  # being written; read again next time
            for event_id, seq, created_at in rows:
                self.presses.setdefault(event_id, Press(k.device_id, seq, created_at))
        return self.presses


class Books:
    """What the server stored, read straight from its PostgreSQL."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def stored(self) -> dict[str, int] | None:
        """event_id -> times stored, or None while the database is down."""
        try:
            with psycopg.connect(self.dsn) as conn:
                rows = conn.execute("SELECT event_id::text FROM feedback_events").fetchall()
        except psycopg.Error:
            return None
        out: dict[str, int] = {}
        for (event_id,) in rows:
            out[event_id] = out.get(event_id, 0) + 1
        return out

    def duplicated_seqs(self) -> dict[tuple[str, int], int] | None:
        try:
            with psycopg.connect(self.dsn) as conn:
                rows = conn.execute("SELECT device_id, seq, count(*) FROM feedback_events "
                                    "GROUP BY device_id, seq HAVING count(*) > 1").fetchall()
        except psycopg.Error:
            return None
        return {(d, s): n for d, s, n in rows}

    def resends(self) -> list[float]:
        """When the fleet loop asked a kiosk to resend (a gap it found)."""
        try:
            with psycopg.connect(self.dsn) as conn:
                rows = conn.execute("SELECT extract(epoch FROM issued_at) FROM device_commands "
                                    "WHERE name = 'resend'").fetchall()
        except psycopg.Error:
            return []
        return [float(t) for (t,) in rows]

    def dead_letters(self) -> list[tuple[float, str]]:
        try:
            with psycopg.connect(self.dsn) as conn:
                rows = conn.execute("SELECT extract(epoch FROM received_at), reason FROM dead_letters").fetchall()
        except psycopg.Error:
            return []
        return [(float(t), r) for t, r in rows]


@dataclass
class FaultRun:
    name: str
    started: float
    restored: float = 0.0
    recovered_s: float | None = None
    note: str = ""


# ----------------------------------------------------------------- the soak


class Soak:
    def __init__(self, workdir: Path, kiosks: int, rate: float, hold_s: float, recover_timeout_s: float,
                 seed: int) -> None:
        self.workdir = workdir
        self.hold_s = hold_s
        self.recover_timeout_s = recover_timeout_s
        self.rng = random.Random(seed)
        # Its own directory under /tmp: as root the cluster runs as `postgres`, which must reach it.
        self.pg = PgCluster(Path(tempfile.mkdtemp(prefix="palaute-soak-pg-")))
        self.broker = Mosquitto(workdir / "broker")
        self.proxy: Proxy | None = None
        self.server: Server | None = None
        self.kiosks: list[KioskProc] = []
        self.n_kiosks, self.rate = kiosks, rate
        self.ledger: Ledger | None = None
        self.books = Books(self.pg.dsn)
        self.runs: list[FaultRun] = []
        self._mounted: list[Path] = []

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        log(f"PostgreSQL cluster in {self.pg.workdir} on port {self.pg.port}")
        self.pg.init().start()
        self.broker.start()
        self.proxy = Proxy(self.broker.port)
        self.server = Server(self.workdir, self.pg.url, self.broker.url)
        self.server.start()
        self.server.wait_ready()
        disk = self._small_disk(self.workdir / "kiosk-1-disk")
        for i in range(self.n_kiosks):
            k = KioskProc(i, self.workdir / f"kiosk-{i + 1}", self.proxy.port, self.rate,
                          disk=disk if i == 0 else None)
            k.start()
            self.kiosks.append(k)
        self.ledger = Ledger(self.kiosks)
        log(f"{self.n_kiosks} kiosks at {self.rate:g} presses/min each; broker {self.broker.port}, "
            f"proxy {self.proxy.port}, server {self.server.port}")

    def _small_disk(self, path: Path) -> Path | None:
        """A small tmpfs for kiosk 1's outbox, so the disk can really fill (root only).

        Twice the outbox's low-space mark: below that mark a kiosk gives up the acknowledged rows it
        keeps for resends at every press, so on a smaller disk (it was 16 MB, under the 32 MB mark)
        this kiosk kept none, and a broker kill lost what the broker had taken since its last
        autosave: the server's seq-gap resend found them gone (the soak failed now and then)."""
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return None
        size = f"size={2 * LOW_SPACE_BYTES // 2**20}m"
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", size, "soak-kiosk", str(path)],
                              check=False, capture_output=True, text=True)
        if done.returncode != 0:
            log(f"no tmpfs for the full-disk fault ({done.stderr.strip()}); it is skipped")
            return None
        self._mounted.append(path)
        vfs = os.statvfs(path)
        if vfs.f_bavail * vfs.f_frsize <= LOW_SPACE_BYTES:
            raise RuntimeError(f"the full-disk victim's tmpfs ({size}) is under the outbox's low-space mark")
        return path

    def close(self) -> None:
        """Stop every part, each on its own (one failing must not leave the others running)."""
        steps: list[Callable[[], object]] = [k.stop for k in self.kiosks]
        if self.server is not None:
            steps.append(self.server.stop)
        if self.proxy is not None:
            steps.append(self.proxy.close)
        if self.broker.proc is not None:
            steps.append(lambda: self.broker.proc.send_signal(signal.SIGCONT))
        steps += [self.broker.stop, self.pg.stop, lambda: shutil.rmtree(self.pg.workdir, ignore_errors=True)]
        steps += [lambda p=p: subprocess.run(["umount", "-l", str(p)], check=False) for p in self._mounted]
        for step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - go on stopping the rest
                log(f"cleanup step failed: {exc}")

    # -- faults -----------------------------------------------------------

    @contextlib.contextmanager
    def fault(self, name: str) -> Iterator[FaultRun]:
        run = FaultRun(name, time.time())
        self.runs.append(run)
        log(f"fault: {name}")
        yield run
        run.restored = run.restored or time.time()
        run.recovered_s = self.wait_recovered(run.restored)
        log(f"  recovered in {run.recovered_s:.1f} s" if run.recovered_s is not None
            else f"  NOT recovered within {self.recover_timeout_s:.0f} s")

    def inject(self, name: str) -> None:
        hold = self.hold_s
        assert self.server is not None and self.proxy is not None
        with self.fault(name) as run:
            if name == "kiosk_kill":
                victim = self.rng.choice(self.kiosks)
                run.note = victim.device_id
                victim.kill9()
                time.sleep(min(hold, 2))
                victim.start()
            elif name == "server_kill":
                self.server.kill9()
                time.sleep(hold)
                self.server.start()
                run.restored = time.time()
                self.server.wait_ready()
            elif name == "broker_kill":
                self.broker.proc.send_signal(signal.SIGKILL)
                self.broker.proc.wait()
                self.broker.proc = None
                time.sleep(hold)
                self.broker.start()
            elif name == "broker_kill_draining":
                # The broker holds a backlog for the server, and dies while handing it over:
                # what it had acknowledged since its last autosave comes back by seq-gap resend.
                self.server.kill9()
                time.sleep(hold)
                self.server.start()
                wait("the server's ingest to start draining",
                     lambda: self.server.healthz().get("mqtt") == "connected", 60, 0.05)
                self.broker.proc.send_signal(signal.SIGKILL)
                self.broker.proc.wait()
                self.broker.proc = None
                self.broker.start()
            elif name == "broker_kill_holding":
                # The server is away, the broker holds what the kiosks sent (acknowledged: the kiosks
                # keep it only for resends), and is killed: what arrived since its last autosave is
                # gone from the broker, and comes back only through the server's seq-gap resend.
                self.server.kill9()
                time.sleep(hold)
                self.broker.proc.send_signal(signal.SIGKILL)
                self.broker.proc.wait()
                self.broker.proc = None
                self.broker.start()
                self.server.start()
                run.restored = time.time()
                self.server.wait_ready()
            elif name == "database_kill":
                self.pg.kill9()
                time.sleep(hold)
                self.pg.start()
            elif name == "broker_pause":
                self.broker.proc.send_signal(signal.SIGSTOP)
                time.sleep(hold)
                self.broker.proc.send_signal(signal.SIGCONT)
            elif name in ("link_drop", "link_half_open", "link_flap"):
                self.proxy.set({"link_drop": "down", "link_half_open": "half_open", "link_flap": "flap"}[name])
                time.sleep(hold if name != "link_half_open" else max(hold, 8))  # past the keepalive
                self.proxy.set("up")
            elif name == "disk_full":
                victim = self.kiosks[0]
                if victim.disk is None:
                    run.note = "skipped (no tmpfs)"
                    return
                filler = victim.disk / "filler"
                with contextlib.suppress(OSError), filler.open("wb") as f:
                    chunk = b"\0" * 65536
                    while True:
                        f.write(chunk)
                        f.flush()
                with contextlib.suppress(OSError), filler.open("ab") as f:  # the last bytes
                    while True:
                        f.write(b"\0")
                        f.flush()
                run.note = f"{victim.device_id}, {os.statvfs(victim.disk).f_bavail} blocks left"
                time.sleep(hold)
                filler.unlink()
            else:
                raise ValueError(f"unknown fault {name!r}")

    def wait_recovered(self, before: float) -> float | None:
        """Seconds from ``before`` (the restart) until every press made before it is stored
        (None: not within the timeout)."""
        t0 = time.monotonic()
        assert self.ledger is not None
        while time.monotonic() - t0 < self.recover_timeout_s:
            presses = self.ledger.read()
            stored = self.books.stored()
            if stored is not None and all(e in stored for e, p in presses.items() if p.created_at < before):
                return max(0.0, time.time() - before)
            time.sleep(0.25)
        return None

    # -- the run and the books --------------------------------------------------

    def run(self, faults: list[str], settle_s: float, drain_timeout_s: float) -> tuple[list[dict], dict]:
        time.sleep(settle_s)
        self.runs.append(FaultRun("(warm-up)", 0.0))
        for name in faults:
            self.inject(name)
            time.sleep(settle_s)
        drain = FaultRun("(drain)", time.time())
        self.runs.append(drain)
        log("draining: every press made so far must be stored")
        drain.recovered_s = self.wait_recovered_for(drain.started, drain_timeout_s)
        return self.account(drain.started)

    def wait_recovered_for(self, before: float, timeout: float) -> float | None:
        saved, self.recover_timeout_s = self.recover_timeout_s, timeout
        try:
            return self.wait_recovered(before)
        finally:
            self.recover_timeout_s = saved

    def account(self, until: float) -> tuple[list[dict], dict]:
        assert self.ledger is not None
        presses = {e: p for e, p in self.ledger.read().items() if p.created_at < until}
        stored = wait("the database", self.books.stored, 60, 0.5) or {}
        dup_seqs = self.books.duplicated_seqs() or {}
        dead = self.books.dead_letters()
        resends = self.books.resends()
        windows = [r for r in self.runs if r.name != "(drain)"]
        rows: list[dict] = []
        for i, r in enumerate(windows):
            end = windows[i + 1].started if i + 1 < len(windows) else until
            mine = [(e, p) for e, p in presses.items() if r.started <= p.created_at < end]
            rows.append({
                "fault": r.name + (f" ({r.note})" if r.note else ""),
                "sent": len(mine),
                "stored_once": sum(1 for e, _ in mine if stored.get(e) == 1),
                "lost": sum(1 for e, _ in mine if e not in stored),
                "duplicated": sum(1 for _, p in mine if (p.device_id, p.seq) in dup_seqs)
                + sum(1 for e, _ in mine if stored.get(e, 0) > 1),
                "dead_lettered": sum(1 for t, _ in dead if r.started <= t < end),
                "resends": sum(1 for t in resends if r.started <= t < end),
                "recover_s": r.recovered_s,
            })
        totals = {k: sum(row[k] for row in rows)
                  for k in ("sent", "stored_once", "lost", "duplicated", "dead_lettered", "resends")}
        totals["drain_s"] = self.runs[-1].recovered_s
        return rows, totals


def print_table(rows: list[dict], totals: dict) -> None:
    head = (f"{'fault':34} {'sent':>6} {'stored once':>11} {'lost':>5} {'duplicated':>10} {'dead-lettered':>13} "
            f"{'resends':>7} {'recover s':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        rec = "—" if r["recover_s"] is None and r["fault"].startswith("(") else (
            "NOT" if r["recover_s"] is None else f"{r['recover_s']:.1f}")
        print(f"{r['fault'][:34]:34} {r['sent']:6d} {r['stored_once']:11d} {r['lost']:5d} {r['duplicated']:10d} "
              f"{r['dead_lettered']:13d} {r['resends']:7d} {rec:>9}")
    print("-" * len(head))
    drain = "NOT" if totals["drain_s"] is None else f"{totals['drain_s']:.1f}"
    print(f"{'total (drain ' + drain + ' s)':34} {totals['sent']:6d} {totals['stored_once']:11d} {totals['lost']:5d} "
          f"{totals['duplicated']:10d} {totals['dead_lettered']:13d} {totals['resends']:7d}")


def choose_faults(rng: random.Random, count: int) -> list[str]:
    """Every kind once (shuffled) before any repeats, then at random."""
    out: list[str] = []
    while len(out) < count:
        batch = list(FAULTS)
        rng.shuffle(batch)
        out += batch
    return out[:count]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiosks", type=int, default=4)
    ap.add_argument("--rate", type=float, default=60, help="presses per minute per kiosk")
    ap.add_argument("--faults", type=int, default=len(FAULTS), help="how many faults (every kind once first)")
    ap.add_argument("--hold", type=float, default=4, help="seconds each fault lasts")
    ap.add_argument("--settle", type=float, default=2, help="seconds of calm after each recovery")
    ap.add_argument("--recover-timeout", type=float, default=90)
    ap.add_argument("--drain-timeout", type=float, default=120)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the working directory (logs) afterwards")
    ap.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    # SIGTERM (a test's timeout, Ctrl-C's cousin) still stops every part and unmounts the tmpfs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    workdir = Path(tempfile.mkdtemp(prefix="palaute-soak-"))
    log(f"seed {seed}; working directory {workdir}")
    soak = Soak(workdir, args.kiosks, args.rate, args.hold, args.recover_timeout, seed)
    try:
        soak.start()
        faults = choose_faults(soak.rng, args.faults)
        rows, totals = soak.run(faults, args.settle, args.drain_timeout)
    finally:
        soak.close()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print_table(rows, totals)
    broker = [r["recover_s"] for r in rows if r["fault"].startswith("broker_kill") and r["recover_s"] is not None]
    if broker:
        print(f"\nrecovery after a broker kill -9: {', '.join(f'{s:.1f} s' for s in broker)}")
    if args.json:
        args.json.write_text(json.dumps({"seed": seed, "rows": rows, "totals": totals}, indent=2))
    ok = totals["lost"] == 0 and totals["duplicated"] == 0 and totals["drain_s"] is not None
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
