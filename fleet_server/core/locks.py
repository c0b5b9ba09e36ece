"""Deployment-wide locks: PostgreSQL advisory locks, and what stands in for them on SQLite.

Several ``palaute-server serve`` processes may share one database (docs/operations.md
"Several server processes"). PostgreSQL is their coordinator:

- ``migration_lock``: a transaction-level advisory lock around ``alembic upgrade``, so
  processes started at the same instant on an empty database migrate one after the
  other (the later ones find the schema at head and do nothing).
- ``Leadership``: a session-level advisory lock held on a dedicated connection by the
  one process that runs the fleet loop. PostgreSQL releases it the moment that
  connection ends -- the process exited, was killed with -9, or its host vanished
  (TCP keepalives below) -- and the next standby's ``try_acquire`` takes over.

On SQLite (one machine, the zero-setup default) an exclusive ``flock`` on a file next
to the database plays both parts: the kernel drops it when the process dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.pool import NullPool

_LOGGER = logging.getLogger(__name__)

# Advisory lock keys (one bigint namespace per database); "PALU" in the high bytes.
MIGRATIONS_LOCK = 0x50414C55_00000001
FLEET_LOOP_LOCK = 0x50414C55_00000002

LEADER_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 3, "keepalives_count": 3}
"""libpq TCP keepalives on the leader's connection: a leader whose host vanished loses the lock
on the server side within about 20 s instead of the kernel's two hours."""


def _sqlite_lock_path(engine: Engine, suffix: str) -> Path | None:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(f"{database}.{suffix}.lock")


def _flock(path: Path, *, block: bool) -> int | None:
    """An exclusive flock on ``path``: the open descriptor, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


@contextmanager
def migration_lock(engine: Engine, connection: Connection) -> Iterator[None]:
    """Hold the deployment's migration lock while the body runs in ``connection``'s transaction."""
    if engine.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATIONS_LOCK})
        yield  # released by the COMMIT (or ROLLBACK) that ends the transaction
        return
    path = _sqlite_lock_path(engine, "migrate")
    fd = _flock(path, block=True) if path is not None else None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


class Leadership:
    """Whether this process is the deployment's one leader for ``key``; ask with ``try_acquire``.

    Call ``try_acquire()`` before each round of leader-only work: it takes the lock when free,
    and for a process that already holds it, checks that the holding connection is still alive
    (the lock lives exactly as long as that session). ``release()`` gives it up (at shutdown).
    """

    def __init__(self, engine: Engine, key: int = FLEET_LOOP_LOCK, name: str = "fleet loop") -> None:
        self.key = key
        self.name = name
        self._dialect = engine.dialect.name
        self._url = engine.url
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._fd: int | None = None
        self._sqlite_path = _sqlite_lock_path(engine, "leader") if self._dialect == "sqlite" else None
        self.held = False

    def try_acquire(self) -> bool:
        was = self.held
        try:
            self.held = self._postgres() if self._dialect == "postgresql" else self._sqlite()
        except Exception as exc:  # noqa: BLE001 - no database, no leadership; asked again next round
            _LOGGER.warning("%s leadership unknown (%s); standing by", self.name, exc)
            self._drop_connection()
            self.held = False
        if self.held and not was:
            _LOGGER.info("this process now runs the %s (pid %d)", self.name, os.getpid())
        elif was and not self.held:
            _LOGGER.warning("this process no longer runs the %s", self.name)
        return self.held

    def _postgres(self) -> bool:
        if self._conn is None:
            if self._engine is None:  # what core.db.make_engine makes for PostgreSQL (core.db imports this module)
                self._engine = create_engine(self._url, poolclass=NullPool, pool_pre_ping=True,
                                             connect_args=_keepalives(self._url))
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if self.held:
            self._conn.execute(text("SELECT 1"))  # the session (and with it the lock) still exists
            return True
        return bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}).scalar())

    def _sqlite(self) -> bool:
        if self._sqlite_path is None:
            return True  # an in-memory database belongs to this process alone
        if self._fd is None:
            self._fd = _flock(self._sqlite_path, block=False)
        return self._fd is not None

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception as exc:  # noqa: BLE001 - already broken
                _LOGGER.debug("closing the %s connection: %s", self.name, exc)
            self._conn = None

    def release(self) -> None:
        if self._conn is not None and self.held:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            except Exception as exc:  # noqa: BLE001 - closing the session releases it anyway
                _LOGGER.debug("releasing the %s lock: %s", self.name, exc)
        self._drop_connection()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.held = False


def _keepalives(url: Any) -> dict[str, Any]:
    host = url.query.get("host") if hasattr(url, "query") else None
    if url.host is None and host and str(host).startswith("/"):
        return {}  # a Unix socket: no TCP, no keepalives
    return dict(LEADER_KEEPALIVES)
