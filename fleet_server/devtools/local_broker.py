"""A private Mosquitto on a loopback port, with a config this module writes.

Used by ``palaute-server demo`` and by the tests, which start, stop and restart
it to prove behaviour across broker outages and write ACL / password / TLS
settings into its config. A machine's own broker (e.g. on 1883) is never touched.
Production brokers are configured from deploy/mosquitto/ instead.
"""

from __future__ import annotations

import ctypes
import getpass
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child between fork and exec (``preexec_fn``): get ``sig`` when the parent dies.

    A demo or a test run killed outright then leaves no broker behind holding its port (Linux;
    a no-op elsewhere). The signal comes when the thread that started the child ends, so start
    long-lived children from the main thread.
    """
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def _below_ephemeral() -> range:
    """Ports the kernel never hands out on its own: from 20000 up to its ephemeral range (Linux).

    A port from ``bind(0)`` lies in the ephemeral range, where every outgoing connection also
    takes its local port: a port chosen minutes before its broker binds it (a test that installs
    a release first) could by then be a database or MQTT client's, and the broker fails with
    "Address already in use". Below that range only listeners bind, and :func:`free_port` checks those.
    """
    try:
        floor = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return range(0)
    return range(20000, floor) if floor - 20000 >= 1000 else range(0)


class _Ports:
    """The ports :func:`free_port` chooses from, and those it has given this process already."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pool = _below_ephemeral()
        self.given: set[int] = set()


_PORTS = _Ports()


def use_ports(pool: range) -> None:
    """Choose free ports from ``pool`` only: test workers running side by side each take a share of
    the range, so that no two can choose the same port between choosing it and binding it."""
    with _PORTS.lock:
        _PORTS.pool, _PORTS.given = pool, set()


def port_pool() -> range:
    return _PORTS.pool


def free_port() -> int:
    """A loopback port that nothing listens on and this process has not given out before.

    From below the kernel's ephemeral range where it has one (see :func:`_below_ephemeral`),
    starting at a random place so that processes sharing a pool rarely meet; else the kernel's choice.
    """
    with _PORTS.lock:
        pool = _PORTS.pool
        start = random.randrange(len(pool)) if pool else 0
        for i in range(len(pool)):
            port = pool[(start + i) % len(pool)]
            if port in _PORTS.given:
                continue
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    continue
            _PORTS.given.add(port)
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclass
class Mosquitto:
    workdir: Path
    port: int = field(default_factory=free_port)
    extra_config: str = ""
    """Lines appended to the listener block (acl_file, password_file, TLS...)."""
    allow_anonymous: bool = True
    persistence: bool = True
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        lines = [
            "per_listener_settings false",
            # Started as root, Mosquitto would drop to the `mosquitto` user, which cannot write
            # this (root-owned) workdir: persistence would silently fail and a restart lose
            # sessions. Run it as whoever runs us instead (a no-op for non-root users).
            *([] if "\nuser " in "\n" + self.extra_config else [f"user {getpass.getuser()}"]),
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            # As deploy/mosquitto/palaute.conf: a snapshot every second, so a kill -9 loses
            # at most about a second of acknowledged messages (the default is 30 minutes).
            "autosave_interval 1",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            # Deliberate queue limits (see shared FACTS: the default of 1000 drops bursts).
            "max_queued_messages 0",
            "max_inflight_messages 4000",  # the ingest's Receive Maximum (ingest/consumer.INFLIGHT_MESSAGES)
            "max_packet_size 263168",  # MAX_PAYLOAD_BYTES plus 1 KiB for topic and headers
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"listener {self.port} 127.0.0.1",
            self.extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n")

    def start(self) -> Self:
        self.write_config()
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - started before any thread of ours needs the fork
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start:\n{self.log()}") from None
        return self

    def stop(self) -> None:
        """Graceful stop (SIGTERM), so persistence is written as in a real restart."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads password and ACL files."""
        assert self.proc is not None
        self.write_config()
        self.proc.send_signal(1)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
