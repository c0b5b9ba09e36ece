"""One fleet loop in the whole deployment, and migrations that take turns.

Real processes on the real databases: the leader is whoever holds the fleet-loop
lock (a PostgreSQL session-level advisory lock; a flock next to a SQLite file),
and killing it with -9 hands the lock to a standby.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from alembic.script import ScriptDirectory
from sqlalchemy import text

from fleet_server.core.db import alembic_config, make_engine, make_session_factory, migrate
from fleet_server.core.locks import Leadership
from fleet_server.core.settings import load_settings
from fleet_server.fleet.loop import FleetLoop

CHILD = """
import sys, time
from fleet_server.core.db import make_engine
from fleet_server.core.locks import Leadership
lead = Leadership(make_engine(sys.argv[1]))
while True:
    if lead.try_acquire():
        print("leader", flush=True)
        while lead.try_acquire():
            time.sleep(0.05)
    time.sleep(0.05)
"""


def _start_candidates(url: str, n: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", CHILD, url], stdout=subprocess.PIPE, text=True)
            for _ in range(n)]


def _first_leader(procs: list[subprocess.Popen], timeout: float = 30.0) -> subprocess.Popen | None:
    """The first candidate that says it leads within ``timeout`` (None: none did)."""
    import selectors

    sel = selectors.DefaultSelector()
    for p in procs:
        sel.register(p.stdout, selectors.EVENT_READ, p)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.5):
                line = key.fileobj.readline()
                if line.strip() == "leader":
                    return key.data
        return None
    finally:
        sel.close()


def test_one_process_leads_and_a_standby_takes_over_when_it_is_killed(db_url):
    migrate(db_url)
    procs = _start_candidates(db_url, 3)
    try:
        leader = _first_leader(procs)
        assert leader is not None, "no candidate took the lead"
        others = [p for p in procs if p is not leader]
        assert _first_leader(others, timeout=1.5) is None, "two leaders at once"
        leader.send_signal(signal.SIGKILL)
        leader.wait(10)
        successor = _first_leader(others)
        assert successor is not None and successor.poll() is None
        assert _first_leader([p for p in others if p is not successor], timeout=1.5) is None
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
            p.stdout.close()


def test_only_the_lock_holder_runs_fleet_passes_and_the_other_takes_over_after_release(db_url):
    migrate(db_url)
    engines = [make_engine(db_url), make_engine(db_url)]
    settings = load_settings(environ={}, database_url=db_url, mode="development", alert_check_interval_s=0.05,
                             leader_poll_s=0.05)

    class NoPublisher:
        def publish(self, *a, **k):
            raise OSError("no broker in this test")

        def close(self):
            pass

    loops = [FleetLoop(settings, make_session_factory(e), NoPublisher(), Leadership(e)) for e in engines]
    try:
        for loop in loops:
            loop.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(loop.passes >= 3 for loop in loops):
            time.sleep(0.05)
        leader = next(loop for loop in loops if loop.passes >= 3)
        standby = next(loop for loop in loops if loop is not leader)
        assert standby.passes == 0 and not standby.leading
        leader.stop()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and standby.passes == 0:
            time.sleep(0.05)
        assert standby.passes > 0 and standby.leading
    finally:
        for loop in loops:
            loop.stop()
        for e in engines:
            e.dispose()


MIGRATE = "import sys; from fleet_server.core.db import migrate; migrate(sys.argv[1])"


def test_several_processes_migrating_an_empty_database_at_once_all_succeed(db_url):
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE, db_url], stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    failures = []
    for p in procs:
        _, err = p.communicate(timeout=120)
        if p.returncode != 0:
            failures.append(err.strip().splitlines()[-1] if err.strip() else f"exit {p.returncode}")
    assert failures == []
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            head = ScriptDirectory.from_config(alembic_config()).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
    finally:
        engine.dispose()
