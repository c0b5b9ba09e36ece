"""Run deploy/mosquitto/palaute.conf as shipped, with only paths and ports swapped.

Kiosks connect over TLS (``kiosk_port``, a CA made in the test), the fleet server
over the loopback listener (``server_port``); the password and ACL files are the
ones the server writes from its registry. ``pid_file`` lets the server reload it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from fleet_server.devtools.local_broker import MOSQUITTO, free_port, wait_for_port
from tests.support.tls import TlsFiles, make_tls

DEPLOY_CONF = Path(__file__).parents[2] / "deploy/mosquitto/palaute.conf"


@dataclass
class DeployBroker:
    workdir: Path
    password_file: Path
    acl_file: Path
    tls: TlsFiles | None = None
    kiosk_port: int = 0
    server_port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def pid_file(self) -> Path:
        return self.workdir / "mosquitto.pid"

    @property
    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text() if path.exists() else ""

    def start(self) -> DeployBroker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.tls is None:
            self.tls = make_tls(self.workdir / "tls")
        self.kiosk_port = self.kiosk_port or free_port()
        self.server_port = self.server_port or free_port()
        shipped = DEPLOY_CONF.read_text()
        swaps = {
            "listener 8883\n": f"listener {self.kiosk_port} 127.0.0.1\n",
            "listener 1883 127.0.0.1\n": f"listener {self.server_port} 127.0.0.1\n",
            "/etc/mosquitto/certs/palaute-ca.crt": str(self.tls.ca_cert),
            "/etc/mosquitto/certs/broker.crt": str(self.tls.server_cert),
            "/etc/mosquitto/certs/broker.key": str(self.tls.server_key),
            "/etc/mosquitto/palaute/passwd": str(self.password_file),
            "/etc/mosquitto/palaute/acl": str(self.acl_file),
        }
        for old, new in swaps.items():
            if old not in shipped:
                raise AssertionError(f"deploy config no longer contains {old!r}")
            shipped = shipped.replace(old, new)
        conf = self.workdir / "mosquitto.conf"
        # What Debian's main mosquitto.conf provides, plus staying the invoking user in a test.
        conf.write_text(
            f"persistence_location {self.workdir}/\nlog_dest file {self.workdir}/mosquitto.log\n"
            f"pid_file {self.pid_file}\nuser root\n" + shipped
        )
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.PIPE)
        try:
            wait_for_port(self.kiosk_port)
            wait_for_port(self.server_port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"mosquitto did not start:\n{self.log}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
