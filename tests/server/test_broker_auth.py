"""Per-device broker credentials and ACLs, enforced by a real Mosquitto over TLS."""

from __future__ import annotations

import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet_server.devtools.local_broker import Mosquitto
from fleet_server.fleet.broker_accounts import (
    DeviceAccount,
    ServerAccount,
    mosquitto_hash,
    new_secret,
    reload_broker,
    render_acl_file,
    verify_hash,
    write_broker_files,
)
from palaute_wire.contract import topic
from tests.support.mqtt_probe import Probe
from tests.support.tls import make_ca, make_tls
from tests.support.tools import require

pytestmark = pytest.mark.broker


@dataclass
class SecureBroker:
    broker: Mosquitto
    ca_file: Path
    secrets: dict[str, str]
    devices: dict[str, DeviceAccount]
    server: ServerAccount
    password_file: Path
    acl_file: Path

    def probe(self, username: str | None, password: str | None = None, **kw) -> Probe:
        if username is not None and password is None:
            password = self.secrets[username]
        return Probe(self.broker.port, username=username, password=password, ca_file=self.ca_file, **kw)

    def sync(self, device_ids: list[str]) -> None:
        write_broker_files(
            self.password_file, self.acl_file, [self.devices[d] for d in device_ids], self.server
        )
        reload_broker(pid_file=self.broker.workdir / "mosquitto.pid")


@pytest.fixture
def secure(tmp_path):
    tls = make_tls(tmp_path / "tls")
    secrets = {name: new_secret() for name in ("palaute-server", "kalvia-1", "kalvia-2", "lohtaja-1")}
    server = ServerAccount("palaute-server", mosquitto_hash(secrets["palaute-server"]))
    devices = {
        "kalvia-1": DeviceAccount("kalvia", "kalvia-1", mosquitto_hash(secrets["kalvia-1"])),
        "kalvia-2": DeviceAccount("kalvia", "kalvia-2", mosquitto_hash(secrets["kalvia-2"])),
        "lohtaja-1": DeviceAccount("lohtaja", "lohtaja-1", mosquitto_hash(secrets["lohtaja-1"])),
    }
    auth = tmp_path / "auth"
    password_file, acl_file = auth / "passwd", auth / "acl"
    write_broker_files(password_file, acl_file, devices.values(), server)
    workdir = tmp_path / "broker"
    extra = "\n".join(
        [
            tls.mosquitto_lines(),
            f"password_file {password_file}",
            f"acl_file {acl_file}",
            f"pid_file {workdir / 'mosquitto.pid'}",
            # As root Mosquitto drops to the `mosquitto` user, which cannot read pytest's
            # 0700 temp dirs; production installs the files group-readable instead.
            "user root",
            # As in deploy/mosquitto: the session is the account's, so one device cannot
            # take over another's session (and kick it off) by choosing its client id.
            "use_username_as_clientid true",
        ]
    )
    with Mosquitto(workdir, extra_config=extra, allow_anonymous=False) as broker:
        yield SecureBroker(broker, tls.ca_cert, secrets, devices, server, password_file, acl_file)


def test_python_hash_matches_mosquitto_passwd_format(tmp_path):
    tool = require("mosquitto_passwd")
    path = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(path), "alice", "s3cret"], check=True)
    line = path.read_text().strip().split(":", 1)[1]
    assert verify_hash("s3cret", line)
    assert not verify_hash("wrong", line)
    ours = mosquitto_hash("s3cret")
    assert ours.startswith("$7$") and verify_hash("s3cret", ours) and not verify_hash("s3cre", ours)


def test_acl_refuses_ids_that_could_widen_a_topic():
    server = ServerAccount("palaute-server", mosquitto_hash("x"))
    with pytest.raises(ValueError, match="not a slug"):
        render_acl_file([DeviceAccount("kalvia", "#", mosquitto_hash("y"))], server)


def test_provisioned_device_connects_over_tls_and_the_server_receives_its_events(secure):
    with secure.probe("palaute-server") as server, secure.probe("kalvia-1") as device:
        assert server.connect() and device.connect()
        server.subscribe("palaute/v1/+/+/events")
        own = topic("kalvia", "kalvia-1", "events")
        device.publish(own, b'{"hello": 1}')
        assert server.expect(own).payload == b'{"hello": 1}'


def test_device_cannot_publish_to_another_devices_topic(secure):
    forged = [
        topic("kalvia", "kalvia-2", "events"),  # same station, other device
        topic("lohtaja", "lohtaja-1", "events"),  # other station
        topic("lohtaja", "kalvia-1", "events"),  # own device id under another station
        topic("kalvia", "kalvia-2", "status"),
    ]
    with secure.probe("palaute-server") as server:
        assert server.connect()
        server.subscribe("palaute/v1/#")
        for name in forged:
            # Mosquitto 2.0.11 answers an MQTT 3.1.1 publish outside the ACL by dropping
            # the connection, so each attempt gets a fresh one.
            with secure.probe("kalvia-1") as device:
                assert device.connect()
                info = device.client.publish(name, b"forged", qos=1)
                _wait_for(lambda info=info, device=device: info.is_published() or device.disconnected.is_set())
        with secure.probe("kalvia-1") as device:
            assert device.connect()
            own = topic("kalvia", "kalvia-1", "events")
            device.publish(own, b"genuine")
            server.expect(own)
        # Each forged publish completed (or was cut off) before the genuine one was sent.
        assert [m.topic for m in server.seen] == [own]


def _wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met within the deadline")
        time.sleep(0.01)


def test_device_cannot_read_another_stations_config_or_commands(secure):
    with secure.probe("palaute-server") as server, secure.probe("kalvia-1") as device:
        assert server.connect() and device.connect()
        other_config = topic("lohtaja", "lohtaja-1", "config")
        sibling_cmd = topic("kalvia", "kalvia-2", "cmd")
        server.publish(other_config, b"lohtaja config", retain=True)
        server.publish(sibling_cmd, b"sibling cmd")
        device.subscribe(other_config)
        device.subscribe(sibling_cmd)
        device.subscribe("palaute/v1/#")
        own_config = topic("kalvia", "kalvia-1", "config")
        server.publish(own_config, b"own config", retain=True)
        server.publish(other_config, b"lohtaja config again", retain=True)
        server.publish(sibling_cmd, b"sibling cmd again")
        own_cmd = topic("kalvia", "kalvia-1", "cmd")
        server.publish(own_cmd, b"own cmd")
        device.expect(own_cmd)
        assert {m.topic for m in device.seen} == {own_config, own_cmd}


def test_server_account_cannot_impersonate_a_device(secure):
    with secure.probe("palaute-server") as listener, secure.probe("kalvia-2") as watcher:
        assert listener.connect() and watcher.connect()
        watcher.subscribe(topic("kalvia", "kalvia-2", "cmd"))
        listener.subscribe("palaute/v1/+/+/events")
        # Its own connection: Mosquitto may drop a client for a publish outside its ACL,
        # and the marker below must not race that (this test was flaky when they shared one).
        with secure.probe("palaute-server") as forger:
            assert forger.connect()
            info = forger.client.publish(topic("kalvia", "kalvia-1", "events"), b"forged by server", qos=1)
            _wait_for(lambda: info.is_published() or forger.disconnected.is_set())
        with secure.probe("palaute-server") as server:
            assert server.connect()
            server.publish(topic("kalvia", "kalvia-2", "cmd"), b"marker")
        watcher.expect(topic("kalvia", "kalvia-2", "cmd"))
        # The forged publish was handled before the marker was even sent.
        assert listener.messages.empty()


def test_a_device_cannot_take_over_another_devices_session(secure):
    with secure.probe("kalvia-2", client_id="kiosk-kalvia-kalvia-2") as victim:
        assert victim.connect()
        with secure.probe("kalvia-1", client_id="kiosk-kalvia-kalvia-2") as intruder:
            assert intruder.connect()
            victim.subscribe(topic("kalvia", "kalvia-2", "cmd"))  # a round trip after the intrusion
        assert not victim.disconnected.is_set()


def test_anonymous_and_wrong_password_clients_are_refused(secure):
    with secure.probe(None) as anonymous:
        assert anonymous.connect() is False
    with secure.probe("kalvia-1", password="not-the-secret") as impostor:
        assert impostor.connect() is False
    with secure.probe("kalvia-1", password=secure.secrets["kalvia-2"]) as swapped:
        assert swapped.connect() is False


def test_retired_device_is_disconnected_and_refused_after_reload(secure):
    with secure.probe("palaute-server") as server, secure.probe("kalvia-2") as device:
        assert server.connect() and device.connect()
        secure.sync(["kalvia-1", "lohtaja-1"])  # kalvia-2 retired
        device.disconnected.wait(10)
        assert device.disconnected.is_set(), "the broker kept a retired device connected"
    with secure.probe("kalvia-2") as again:
        assert again.connect() is False
    # A device that stayed in the registry is unaffected by the reload.
    with secure.probe("kalvia-1") as kept:
        assert kept.connect()


def test_rotated_secret_replaces_the_old_one(secure):
    old = secure.secrets["kalvia-1"]
    secure.secrets["kalvia-1"] = new_secret()
    secure.devices["kalvia-1"] = DeviceAccount("kalvia", "kalvia-1", mosquitto_hash(secure.secrets["kalvia-1"]))
    secure.sync(["kalvia-1", "kalvia-2", "lohtaja-1"])
    with secure.probe("kalvia-1", password=old) as stale:
        # The reload is asynchronous: poll until the broker has re-read the file.
        assert stale.connect() is False or _refused_eventually(secure, old)
    with secure.probe("kalvia-1") as fresh:
        assert fresh.connect()


def _refused_eventually(secure, password, attempts=50) -> bool:
    for _ in range(attempts):
        with secure.probe("kalvia-1", password=password) as p:
            if not p.connect():
                return True
    return False


def test_client_trusting_a_wrong_ca_fails(secure, tmp_path):
    wrong_ca, _ = make_ca(tmp_path / "wrong", name="wrong-ca")
    probe = Probe(
        secure.broker.port, username="kalvia-1", password=secure.secrets["kalvia-1"], ca_file=wrong_ca
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        probe.connect()
    probe.client.loop_stop()


def test_plain_mqtt_is_not_spoken_on_the_tls_listener(secure):
    probe = Probe(secure.broker.port, username="kalvia-1", password=secure.secrets["kalvia-1"])
    try:
        ok = probe.connect()
    except (OSError, TimeoutError):
        ok = False
    finally:
        probe.client.loop_stop()
    assert not ok


def test_deploy_config_runs_with_tls_for_kiosks_and_loopback_for_the_server(tmp_path):
    """deploy/mosquitto/palaute.conf as shipped, with only paths and ports swapped."""
    from tests.support.fleet_broker import DeployBroker

    secrets = {"palaute-server": new_secret(), "kalvia-1": new_secret()}
    auth = tmp_path / "auth"
    write_broker_files(
        auth / "passwd",
        auth / "acl",
        [DeviceAccount("kalvia", "kalvia-1", mosquitto_hash(secrets["kalvia-1"]))],
        ServerAccount("palaute-server", mosquitto_hash(secrets["palaute-server"])),
    )
    with DeployBroker(tmp_path / "broker", auth / "passwd", auth / "acl") as broker:
        ca = broker.tls.ca_cert
        server = Probe(broker.server_port, username="palaute-server", password=secrets["palaute-server"])
        device = Probe(broker.kiosk_port, username="kalvia-1", password=secrets["kalvia-1"], ca_file=ca)
        anonymous = Probe(broker.kiosk_port, ca_file=ca)
        with server, device, anonymous:
            assert server.connect() and device.connect()
            assert anonymous.connect() is False
            server.subscribe("palaute/v1/+/+/events")
            own = topic("kalvia", "kalvia-1", "events")
            device.publish(own, b"over tls")
            assert server.expect(own).payload == b"over tls"


def test_server_account_can_use_a_shared_subscription(secure):
    """Scale-out: several ingest workers share $share/<group>/... under the same ACL."""
    import paho.mqtt.client as mqtt

    worker = Probe(secure.broker.port, username="palaute-server", password=secure.secrets["palaute-server"],
                   ca_file=secure.ca_file, client_id="ingest-1", protocol=mqtt.MQTTv5)
    with worker, secure.probe("kalvia-1") as device:
        assert worker.connect() and device.connect()
        (granted,) = worker.subscribe("$share/ingest/palaute/v1/+/+/events")
        assert not granted.is_failure
        own = topic("kalvia", "kalvia-1", "events")
        device.publish(own, b"shared")
        assert worker.expect(own).payload == b"shared"


def test_deploy_config_queues_a_burst_beyond_the_default_limit_for_the_absent_server(tmp_path):
    """The shipped queue limits: 5,000 QoS 1 messages (the default limit is 1,000) published
    while the server's persistent session is offline all arrive when it returns."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from tests.support.fleet_broker import DeployBroker

    burst = 5000
    secrets = {"palaute-server": new_secret(), "kalvia-1": new_secret()}
    auth = tmp_path / "auth"
    write_broker_files(auth / "passwd", auth / "acl",
                       [DeviceAccount("kalvia", "kalvia-1", mosquitto_hash(secrets["kalvia-1"]))],
                       ServerAccount("palaute-server", mosquitto_hash(secrets["palaute-server"])))

    def server_probe(port: int) -> Probe:
        probe = Probe(port, username="palaute-server", password=secrets["palaute-server"])
        probe.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="palaute-ingest",
                                   protocol=mqtt.MQTTv311, clean_session=False)
        probe.client.username_pw_set("palaute-server", secrets["palaute-server"])
        probe.client.on_connect = probe._on_connect
        probe.client.on_message = lambda c, u, msg: probe.messages.put(msg)
        probe.client.on_subscribe = lambda c, u, mid, rcs, props: probe.subacks.put(list(rcs))
        return probe

    own = topic("kalvia", "kalvia-1", "events")
    with DeployBroker(tmp_path / "broker", auth / "passwd", auth / "acl") as broker:
        with server_probe(broker.server_port) as server:
            assert server.connect()
            server.subscribe("palaute/v1/+/+/events")
        with Probe(broker.kiosk_port, username="kalvia-1", password=secrets["kalvia-1"],
                   ca_file=broker.tls.ca_cert) as device:
            device.client.max_inflight_messages_set(100)
            assert device.connect()
            infos = [device.client.publish(own, str(i).encode(), qos=1) for i in range(burst)]
            for info in infos:
                info.wait_for_publish(timeout=30)
        with server_probe(broker.server_port) as server:
            assert server.connect()
            got = {server.expect(own, timeout=30).payload for _ in range(burst)}
    assert len(got) == burst
