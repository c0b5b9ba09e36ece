"""Alembic environment for the fleet server, driven from fleet_server.core.db.

The caller hands over an open connection (``config.attributes["connection"]``)
or a URL; nothing here reads alembic.ini or the environment. Batch mode is on
for SQLite so later migrations can alter tables there.
"""

from __future__ import annotations

from alembic import context

from fleet_server.core.db import make_engine
from fleet_server.core.partitions import include_name
from fleet_server.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,  # the answers table's monthly partitions (core.partitions)
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass database_url or set sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
