"""Shared fixtures: a private Mosquitto per test, gpiozero's mock pins, and the databases under test."""

from __future__ import annotations

import os
import uuid as _uuid

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin
from sqlalchemy import create_engine as _create_engine
from sqlalchemy import text as _text
from sqlalchemy.engine import make_url as _make_url

from fleet_server.devtools import local_broker
from fleet_server.devtools.local_broker import Mosquitto
from tests.support.processes import Processes

pytest_plugins = ("tests.support.mail",)  # the `smtp` fixture: a real SMTP sink on loopback


def _worker_ports(pool: range, worker: str, workers: int) -> range:
    """This xdist worker's share of the free-port pool (``gw0`` takes the first share)."""
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    share = len(pool) // max(workers, 1)
    return pool[index * share:(index + 1) * share] if share else pool


# The command lines' texts (palaute-server, the demo's console) in English, whatever the machine's
# locale; a test that reads them in Finnish or Swedish says so.
os.environ["PALAUTE_LANG"] = "en"

# Each worker chooses its free ports from a share of its own: one test can then choose its ports,
# spend minutes installing a release, and still find them free (another worker's test cannot
# have taken them in between).
local_broker.use_ports(_worker_ports(local_broker.port_pool(), os.environ.get("PYTEST_XDIST_WORKER", "gw0"),
                                     int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))

# --------------------------------------------------------------------- scheduling
# bash run.sh test runs the suite on several pytest-xdist workers, which take the tests in the
# collected order, two at first and then one at a time (--maxschedchunk 1). The longest tests
# come first, each followed by one short test, so that every worker starts on a long one and
# none is left with a long one at the end while the others idle.

LONG_FIRST = (
    "tests/e2e/test_arm64_first_boot.py",
    "tests/e2e/test_updates.py",
    "tests/e2e/test_soak.py",
    "tests/e2e/test_multi_process.py",
    "tests/e2e/test_clustered_broker.py",
    "tests/server/test_api_fuzz.py",
)
"""Test files whose tests take a minute or more, longest first."""


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONG_FIRST.index(path) if path in LONG_FIRST else len(LONG_FIRST)

    ordered = sorted(items, key=rank)  # stable: the rest keep their order
    long = [item for item in ordered if rank(item) < len(LONG_FIRST)]
    rest = ordered[len(long):]
    interleaved = []
    for i, item in enumerate(long):
        interleaved += [item, *rest[i:i + 1]]
    items[:] = interleaved + rest[len(long):]


@pytest.fixture
def broker(tmp_path):
    """A fresh private Mosquitto (anonymous allowed) on a free loopback port."""
    with Mosquitto(tmp_path / "broker") as b:
        yield b


@pytest.fixture
def processes():
    """Start processes with ``processes.start(argv, log=path)``; all are stopped after the test, pass or fail."""
    with Processes() as owned:
        yield owned


@pytest.fixture
def mock_pins():
    """gpiozero's MockFactory with PWM pins as the current pin factory, reset afterwards."""
    saved = Device.pin_factory
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    try:
        yield Device.pin_factory
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = saved


# --------------------------------------------------------------------- databases
# One throwaway PostgreSQL database per test session (the shared `test` database is
# only used to CREATE/DROP it); each test that asks for `db_url` gets an empty schema.

PG_TEST_URL = os.environ.get(
    "PALAUTE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def pg_database_url():
    """URL of a PostgreSQL database created for this test session and dropped after it.

    Fails (never skips) when the server is unreachable: the test command provides it.
    """
    admin_url = _make_url(PG_TEST_URL)
    name = f"palaute_test_{os.getpid()}_{_uuid.uuid4().hex[:8]}"
    admin = _create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(_text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure here means "no PostgreSQL"
        admin.dispose()
        pytest.fail(
            f"PostgreSQL at {admin_url.render_as_string(hide_password=True)} is not usable "
            f"({type(exc).__name__}: {exc}). Start it or set PALAUTE_TEST_DATABASE_URL "
            "(bash run.sh test does both).",
            pytrace=False,
        )
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(_text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _reset_pg_schema(url: str) -> None:
    engine = _create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(_text("DROP SCHEMA public CASCADE"))
            conn.execute(_text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    """An empty SQLite file database for one test."""
    return f"sqlite:///{tmp_path / 'palaute.db'}"


@pytest.fixture
def postgres_url(request):
    """An empty PostgreSQL schema for one test (in the session's throwaway database)."""
    url = request.getfixturevalue("pg_database_url")
    _reset_pg_schema(url)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request):
    """An empty database, once on SQLite and once on PostgreSQL (not migrated yet)."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def sessions(db_url):
    """A session factory on a migrated, empty database (both backends, through ``db_url``).

    Test modules that need rows first override it as ``def sessions(sessions)`` and seed.
    """
    from fleet_server.core.db import make_engine, make_session_factory, migrate

    migrate(db_url)
    engine = make_engine(db_url)
    yield make_session_factory(engine)
    engine.dispose()
