"""Free loopback ports for private brokers and servers (fleet_server/devtools/local_broker.py).

A port is chosen before the process that binds it starts, sometimes minutes before (the arm64
first-boot test installs a release in between). These hold the choice to ports nobody else takes
in that time: not the kernel's ephemeral ones, not another test worker's, not one given before.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fleet_server.devtools import local_broker
from fleet_server.devtools.local_broker import free_port, use_ports
from tests.conftest import _worker_ports


@pytest.fixture
def pool():
    before = local_broker.port_pool()
    yield before
    use_ports(before)


def _ephemeral() -> range:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


def test_free_ports_lie_below_the_range_outgoing_connections_take_theirs_from(pool):
    ephemeral = _ephemeral()
    ports = [free_port() for _ in range(50)]
    assert all(p not in ephemeral and p in pool for p in ports), ports
    # An outgoing connection's local port comes from the ephemeral range, never from the pool.
    server = socket.create_server(("127.0.0.1", free_port()))
    with server, socket.create_connection(server.getsockname()) as client:
        assert client.getsockname()[1] in ephemeral


def test_a_port_is_given_once_and_never_one_that_something_listens_on(pool):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        start = next(p for p in range(pool.start, pool.stop - 3) if _bindable(p) and _bindable(p + 2))
        with socket.create_server(("127.0.0.1", start + 1)) as listening:
            use_ports(range(start, start + 3))
            assert sorted(free_port() for _ in range(2)) == [start, start + 2]
            assert listening.getsockname()[1] == start + 1
            # The pool used up, the kernel chooses; still a free port.
            last = free_port()
            assert last not in range(start, start + 3)
            assert last != taken.getsockname()[1] and _bindable(last)


def test_test_workers_choose_from_shares_that_do_not_meet(pool):
    shares = [_worker_ports(pool, f"gw{i}", 4) for i in range(4)]
    assert all(len(s) == len(pool) // 4 for s in shares)
    assert sum(len(set(a) & set(b)) for i, a in enumerate(shares) for b in shares[i + 1:]) == 0
    assert _worker_ports(pool, "master", 1) == pool  # not under xdist: the whole pool
    # This worker chooses from its own share.
    use_ports(shares[2])
    assert all(free_port() in shares[2] for _ in range(20))


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
