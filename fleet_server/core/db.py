"""Engines, sessions and migrations for the fleet server's database.

``make_engine`` gives SQLite the pragmas this design depends on (WAL so the API
reads while the ingest writes, foreign keys on, synchronous=FULL because the
ingest acknowledges the broker right after a commit and a commit must survive
power loss). ``migrate`` is ``alembic upgrade head`` driven from code, so a
deployed server needs no alembic.ini; ``serve`` runs it at start, under a lock
so that several processes starting together do not collide.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

_LOGGER = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parents[1] / "migrations"

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for another's lock before failing (several processes may share a file)."""


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_engine(database_url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``database_url``; a SQLite file's folder is created when missing."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _on_sqlite_connect)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (handy for API responses)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(connection: Any | None = None, database_url: str | URL | None = None) -> Any:
    """An Alembic Config pointing at our migrations, without an ini file.

    The connection (or URL) travels in ``config.attributes`` rather than the ini
    option, so passwords with ``%`` need no escaping.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str | URL | Engine, revision: str = "head") -> None:
    """Apply pending migrations (``alembic upgrade head``); safe to run at every start, and
    in several processes at once: they take turns under the migration lock (core.locks)."""
    from alembic import command

    from fleet_server.core.locks import migration_lock

    engine = database_url if isinstance(database_url, Engine) else make_engine(database_url)
    try:
        with engine.connect() as connection:
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:
                # Batch mode rebuilds a table as copy, drop, rename: with foreign keys on, dropping
                # a table other rows refer to (stations, devices) fails. Off for the migration only
                # (a PRAGMA outside any transaction), and checked afterwards.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            with connection.begin(), migration_lock(engine, connection):
                command.upgrade(alembic_config(connection), revision)
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
                if broken:
                    raise RuntimeError(f"migration left rows whose foreign keys point nowhere: {broken[:5]}")
        _LOGGER.info("database at %s is at migration %s", engine.url.render_as_string(hide_password=True), revision)
    finally:
        if engine is not database_url:
            engine.dispose()
