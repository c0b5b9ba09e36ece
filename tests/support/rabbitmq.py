"""A private RabbitMQ cluster (Debian's rabbitmq-server 3.10) with the MQTT plugin, for the clustered-broker test.

Every node is started from the package's own scripts with everything that would reach the
machine's RabbitMQ pointed into the test's folder instead: its node name (with a random part,
as epmd on 4369 is shared), AMQP, distribution and MQTT ports (free ones), data and log
folders, enabled-plugins file, configuration and environment file, and the Erlang cookie (via
HOME). A running system instance (rabbit@localhost on 5672) is neither used nor needed.

The nodes form their cluster at first boot (``classic_config`` peer discovery; the first
node, then the others together: :meth:`RabbitCluster.start` says why) and authenticate every client through ``rabbitmq_auth_backend_http`` at the fleet
server's /broker-auth/rabbitmq routes. ``mqtt.durable_queue_type = quorum``: a persistent MQTT
session is a quorum queue on every node, so it survives the loss of one node of three (a
classic queue lives on the node the client first used, and is gone with it). Why three nodes
and not two: docs/operations.md "RabbitMQ".
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from fleet_server.devtools.local_broker import free_port, wait_for_port
from tests.support.processes import Processes

RABBITMQ_SBIN = Path("/usr/lib/rabbitmq/bin")
"""Debian's package: the scripts here run the node as whoever calls them (/usr/sbin/rabbitmq-server
is a wrapper that switches to the rabbitmq user and the system instance's folders)."""

PLUGINS = "[rabbitmq_mqtt,rabbitmq_auth_backend_http]."


def available() -> str | None:
    """None when the cluster can be started here, else why not."""
    if not (RABBITMQ_SBIN / "rabbitmq-server").exists():
        return "rabbitmq-server is not installed (run.sh test installs it)"
    if shutil.which("erl") is None and not Path("/usr/lib/erlang/bin/erl").exists():
        return "Erlang is not installed"
    return None


@dataclass
class Node:
    name: str
    workdir: Path
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    started_in_s: float | None = None
    """Seconds from the start of the node to its MQTT listener accepting connections."""
    ready_in_s: float | None = None
    """Seconds from the start of the node to its first accepted MQTT session (:meth:`RabbitCluster.wait_ready`)."""
    _started_at: float = 0.0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "log" / f"{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RabbitCluster:
    """``size`` RabbitMQ nodes on loopback, clustered, MQTT on each; ``hook`` is the fleet server's base URL."""

    def __init__(self, workdir: Path, hook: str, token: str, size: int = 3, *, prefetch: int = 100) -> None:
        self.workdir = Path(workdir)
        self.hook = hook
        self.token = token
        self.prefetch = prefetch
        tag = secrets.token_hex(3)
        self.nodes = [Node(f"palaute-{tag}-{chr(ord('a') + i)}@localhost", self.workdir / chr(ord("a") + i))
                      for i in range(size)]
        self._processes = Processes()

    # ------------------------------------------------------------------ files

    def _env(self, node: Node) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
            "LANG": "C.UTF-8",
            "HOME": str(self.workdir),  # the shared Erlang cookie: $HOME/.erlang.cookie
            "RABBITMQ_CONF_ENV_FILE": str(self.workdir / "rabbitmq-env.conf"),  # not /etc/rabbitmq's
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_MNESIA_BASE": str(node.workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.workdir / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.workdir / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(node.workdir / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(node.workdir / "advanced.config"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            # The node itself, not the script around it (exec erl): SIGTERM stops it cleanly.
            "RABBITMQ_ALLOW_INPUT": "true",
            "RABBITMQ_SERVER_START_ARGS": "-noinput",
        }

    def _config(self, node: Node) -> str:
        base = self.hook.replace("://", f"://palaute:{self.token}@", 1)  # basic auth: the hook's token
        lines = [
            f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}",
            f"mqtt.listeners.tcp.default = 127.0.0.1:{node.mqtt_port}",
            "mqtt.allow_anonymous = false",
            "mqtt.vhost = /",
            "mqtt.exchange = amq.topic",
            "mqtt.durable_queue_type = quorum",
            f"mqtt.prefetch = {self.prefetch}",
            "mqtt.subscription_ttl = 604800000",  # 7 days, as the kiosk's retention (RabbitMQ's default: 1 day)
            "cluster_formation.peer_discovery_backend = classic_config",
            *(f"cluster_formation.classic_config.nodes.{i + 1} = {n.name}" for i, n in enumerate(self.nodes)),
            "auth_backends.1 = http",
            "auth_http.http_method = post",
            f"auth_http.user_path = {base}/broker-auth/rabbitmq/user",
            f"auth_http.vhost_path = {base}/broker-auth/rabbitmq/vhost",
            f"auth_http.resource_path = {base}/broker-auth/rabbitmq/resource",
            f"auth_http.topic_path = {base}/broker-auth/rabbitmq/topic",
            "log.file.level = info",
            "log.console = false",
        ]
        return "\n".join(lines) + "\n"

    def write_files(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cookie = self.workdir / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(secrets.token_hex(16).upper())
            cookie.chmod(0o400)
        (self.workdir / "enabled_plugins").write_text(PLUGINS + "\n")
        (self.workdir / "rabbitmq-env.conf").write_text("# empty: the test sets everything in the environment\n")
        for node in self.nodes:
            node.workdir.mkdir(parents=True, exist_ok=True)
            (node.workdir / "rabbitmq.conf").write_text(self._config(node))

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 120.0) -> Self:
        """Start the first node, then the others together; return when each MQTT listener accepts connections.

        Why not all at once: nodes booting together do form one cluster, but in about one start of
        three here the MQTT plugin's Raft client-id tracker then never elected a leader on one node
        (its log: "mqtt_node: leader call - leader not known" for minutes, every CONNECT refused
        with "client ID registration timed out"). Joining a running first node avoids that race.
        """
        self.write_files()
        first, *others = self.nodes
        self._start(first)
        self._wait(first, timeout)
        for node in others:
            self._start(node)
        for node in others:
            self._wait(node, timeout)
        return self

    def _start(self, node: Node) -> None:
        node.started_in_s = None
        node.proc = self._processes.start(
            [str(RABBITMQ_SBIN / "rabbitmq-server")], env=self._env(node), cwd=node.workdir,
            stdin=subprocess.DEVNULL, log=node.workdir / "stdout.log")
        node._started_at = time.monotonic()

    def _wait(self, node: Node, timeout: float) -> None:
        assert node.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {node.name} exited with {node.proc.returncode}:\n"
                                   f"{(node.workdir / 'stdout.log').read_text(errors='replace')[-3000:]}")
            try:
                wait_for_port(node.mqtt_port, timeout=0.5)
                node.started_in_s = time.monotonic() - node._started_at
                return
            except TimeoutError:
                continue
        raise RuntimeError(f"RabbitMQ node {node.name}: no MQTT listener after {timeout:.0f}s:\n{node.log()[-3000:]}")

    def wait_ready(self, username: str, password: str, timeout: float = 90.0) -> None:
        """Until every node accepts an MQTT session (of the given account, through the HTTP hook).

        A listener that accepts TCP is not yet a node that accepts MQTT: right after the cluster
        formed, RabbitMQ 3.10 refuses connections with "client ID registration timed out" while
        its Raft client-id tracker elects a leader.
        """
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            last = "no answer"
            while True:
                last = _try_session(node, username, password) or ""
                if not last:
                    node.ready_in_s = time.monotonic() - node._started_at
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"RabbitMQ node {node.name} accepts no MQTT session after {timeout:.0f}s "
                                       f"({last}):\n{node.log()[-3000:]}")
                time.sleep(0.5)

    def stop_node(self, node: Node) -> float:
        """SIGTERM (a clean shutdown); returns the seconds it took."""
        started = time.monotonic()
        if node.proc is not None:
            self._processes.stop(node.proc, timeout=60)  # SIGTERM, then SIGKILL
        node.proc = None
        return time.monotonic() - started

    def close(self) -> None:
        for node in self.nodes:
            self.stop_node(node)
        self._processes.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _try_session(node: Node, username: str, password: str) -> str | None:
    """None when ``node`` accepted an MQTT 3.1.1 session, else what went wrong."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    answer: list[str] = []
    done = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ready-probe-{secrets.token_hex(4)}",
                         protocol=mqtt.MQTTv311, clean_session=True)
    client.username_pw_set(username, password)
    client.on_connect = lambda _c, _u, _f, rc, _p: (answer.append("" if not rc.is_failure else str(rc)), done.set())
    client.on_disconnect = lambda *_a: done.set()
    try:
        client.connect("127.0.0.1", node.mqtt_port, keepalive=10)
    except OSError as exc:
        return str(exc)
    client.loop_start()
    try:
        done.wait(15)
    finally:
        client.disconnect()
        client.loop_stop()
    if not answer:
        return "connection closed without CONNACK"
    return answer[0] or None
