"""/broker-auth: the registry answers a broker's "may this client connect / publish / subscribe"
as the generated Mosquitto files would (mosquitto-go-auth's form fields and EMQX's JSON)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.fleet.provisioning import add_station, provision_device, retire_device

TOKEN = "t" * 40


@pytest.fixture
def hook(sessions, db_url):
    with sessions() as s, s.begin():
        add_station(s, "kalvia", "Kälviä")
        add_station(s, "lohtaja", "Lohtaja")
        _, secret = provision_device(s, "kalvia-1", "kalvia")
        _, other = provision_device(s, "lohtaja-1", "lohtaja")
    settings = load_settings(environ={}, database_url=db_url, mode="development", broker_auth_token=TOKEN,
                             mqtt_username="palaute-server", mqtt_password="server-secret-1234567890")
    with TestClient(create_app(settings, start_ingest=False)) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client, secret, other, sessions


def allowed(response) -> bool:
    assert response.status_code in (200, 403), response.text
    return response.status_code == 200 and response.json()["result"] == "allow"


def test_a_kiosk_connects_with_its_own_id_and_secret_and_never_once_retired(hook):
    client, secret, other, sessions = hook

    def connect(username, password, clientid):
        return allowed(client.post("/broker-auth/user",
                                   data={"username": username, "password": password, "clientid": clientid}))

    assert connect("kalvia-1", secret, "kalvia-1")
    assert not connect("kalvia-1", other, "kalvia-1")  # another kiosk's secret
    assert not connect("kalvia-1", secret, "lohtaja-1")  # someone else's client id
    assert not connect("nobody", secret, "nobody")
    assert connect("palaute-server", "server-secret-1234567890", "palaute-ingest-abc")
    assert not connect("palaute-server", "wrong", "palaute-ingest-abc")
    with sessions() as s, s.begin():
        retire_device(s, "kalvia-1")
    assert not connect("kalvia-1", secret, "kalvia-1")


def test_each_client_publishes_and_subscribes_only_where_the_acl_file_would_let_it(hook):
    client, *_ = hook

    def acl(username, topic, acc, clientid=None):
        return allowed(client.post("/broker-auth/acl", data={
            "username": username, "clientid": clientid or username, "topic": topic, "acc": acc}))

    own = "palaute/v1/kalvia/kalvia-1"
    assert acl("kalvia-1", f"{own}/events", 2) and acl("kalvia-1", f"{own}/status", 2)
    assert acl("kalvia-1", f"{own}/cmd", 4) and acl("kalvia-1", f"{own}/config", 1)
    assert not acl("kalvia-1", f"{own}/cmd", 2)  # commands come from the server only
    assert not acl("kalvia-1", "palaute/v1/lohtaja/lohtaja-1/events", 2)  # another kiosk's topic
    assert not acl("kalvia-1", "palaute/v1/+/+/events", 4)  # no reading others' answers
    assert not acl("kalvia-1", "palaute/v1/lohtaja/kalvia-1/events", 2)  # its id under another station
    server = "palaute-server"
    assert acl(server, "$share/ingest/palaute/v1/+/+/events", 4, "palaute-ingest-abc")
    assert acl(server, "palaute/v1/+/+/status", 4, "palaute-ingest-abc")
    assert acl(server, "palaute/v1/kalvia/kalvia-1/cmd", 2, "x") and not acl(server, f"{own}/events", 2, "x")
    assert not acl(server, "palaute/#", 4, "x")  # wider than its rules
    # EMQX's JSON form of the same question:
    r = client.post("/broker-auth/acl", json={"username": "kalvia-1", "clientid": "kalvia-1",
                                               "topic": f"{own}/events", "action": "publish"})
    assert r.status_code == 200 and r.json() == {"result": "allow"}


def test_the_hook_needs_its_token_and_is_off_without_one(hook, db_url):
    client, *_ = hook
    assert client.post("/broker-auth/user", data={"username": "x"}, headers={"Authorization": "Bearer no"}
                       ).status_code == 401
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as off:
        assert off.post("/broker-auth/user", data={"username": "x"},
                        headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 403


def test_rabbitmq_http_backend_gets_the_same_rules_in_its_own_format(hook):
    """rabbitmq_auth_backend_http's requests as RabbitMQ 3.10's MQTT plugin sends them (form bodies with
    client_id; routing keys with '.' for '/', '*' for '+'); plain 'allow'/'deny'; basic auth carries the token."""
    import base64

    client, secret, other, _sessions = hook
    basic = {"Authorization": "Basic " + base64.b64encode(f"palaute:{TOKEN}".encode()).decode()}

    def ask(path, **fields):
        r = client.post(f"/broker-auth/rabbitmq/{path}", data={"vhost": "/", **fields}, headers=basic)
        assert r.status_code == 200 and r.text in ("allow", "deny"), r.text
        return r.text == "allow"

    assert ask("user", username="kalvia-1", password=secret, client_id="kalvia-1")
    assert not ask("user", username="kalvia-1", password=secret, client_id="lohtaja-1")
    assert not ask("user", username="kalvia-1", password=other, client_id="kalvia-1")
    assert not ask("user", username="kalvia-1", password=secret)  # AMQP: no MQTT client id
    assert ask("user", username="palaute-server", password="server-secret-1234567890", client_id="palaute-ingest-a")
    assert ask("vhost", username="kalvia-1", ip="127.0.0.1", client_id="kalvia-1")
    assert not ask("vhost", username="kalvia-1", client_id="kalvia-1", vhost="other")

    def resource(kind, name, permission, username="kalvia-1", client_id="kalvia-1"):
        return ask("resource", username=username, client_id=client_id, resource=kind, name=name, permission=permission)

    for permission in ("configure", "read", "write"):
        assert resource("queue", "mqtt-subscription-kalvia-1qos1", permission)
    assert not resource("queue", "mqtt-subscription-lohtaja-1qos1", "read")  # another kiosk's session
    assert not resource("queue", "mqtt-subscription-kalvia-1qos1", "read", client_id="lohtaja-1")
    assert resource("exchange", "amq.topic", "write") and resource("exchange", "amq.topic", "read")
    assert not resource("exchange", "amq.topic", "configure") and not resource("exchange", "amq.fanout", "write")
    assert resource("queue", "mqtt-subscription-palaute-ingest-aqos1", "read", "palaute-server", "palaute-ingest-a")

    def topic(routing_key, permission, username="kalvia-1", client_id="kalvia-1"):
        return ask("topic", username=username, resource="topic", name="amq.topic", permission=permission,
                   routing_key=routing_key, **{"variable_map.client_id": client_id, "variable_map.username": username})

    assert topic("palaute.v1.kalvia.kalvia-1.events", "write") and topic("palaute.v1.kalvia.kalvia-1.cmd", "read")
    assert not topic("palaute.v1.lohtaja.lohtaja-1.events", "write")  # another kiosk's topic
    assert not topic("palaute.v1.kalvia.kalvia-1.cmd", "write")
    assert not topic("palaute.v1.*.*.events", "read")
    assert not topic("palaute.v1.kalvia.kalvia-1.events", "write", client_id="lohtaja-1")
    server = {"username": "palaute-server", "client_id": "palaute-ingest-a"}
    assert topic("palaute.v1.*.*.events", "read", **server) and topic("palaute.v1.kalvia.kalvia-1.config", "write", **server)
    assert topic("palaute._server.ingest.palaute-ingest-a", "write", **server)
    assert not topic("palaute.#", "read", **server)
    r = client.get("/broker-auth/rabbitmq/topic", params={"vhost": "/", "username": "kalvia-1", "resource": "topic",
                   "name": "amq.topic", "permission": "write", "routing_key": "palaute.v1.kalvia.kalvia-1.status",
                   "variable_map.client_id": "kalvia-1"}, headers=basic)
    assert r.text == "allow"  # auth_http.http_method = get (RabbitMQ's default) asks in the query
    wrong = {"Authorization": "Basic " + base64.b64encode(b"palaute:wrong").decode()}
    assert client.post("/broker-auth/rabbitmq/user", data={"username": "x"}, headers=wrong).status_code == 401


def test_the_kiosk_firmwares_own_client_id_is_accepted_and_no_other_kiosks(hook, tmp_path, mock_pins):
    from kiosk.app import Kiosk
    from tests.support.kiosk_support import kiosk_config

    client, secret, _other, _sessions = hook
    kiosk = Kiosk(kiosk_config(tmp_path, "mqtt://127.0.0.1:1883"), clock_synced_override=True)  # not started
    try:
        firmware_id = kiosk.uplink.client_id
    finally:
        kiosk.close()

    def connect(clientid):
        return allowed(client.post("/broker-auth/user",
                                   data={"username": "kalvia-1", "password": secret, "clientid": clientid}))

    assert connect(firmware_id) and connect("kalvia-1")
    assert not connect("kiosk-lohtaja-lohtaja-1") and not connect("kiosk-kalvia-kalvia-2")


def test_a_regional_bridge_connects_with_its_account_and_carries_kiosk_traffic_only(hook):
    from fleet_server.fleet.provisioning import add_bridge, remove_bridge

    client, *_rest, sessions = hook
    with sessions() as s, s.begin():
        bridge_secret = add_bridge(s, "region")

    def connect(password):
        return allowed(client.post("/broker-auth/user", data={
            "username": "palaute-bridge-region", "password": password, "clientid": "palaute-bridge-region"}))

    def acl(topic, acc):
        return allowed(client.post("/broker-auth/acl", data={
            "username": "palaute-bridge-region", "clientid": "palaute-bridge-region", "topic": topic, "acc": acc}))

    assert connect(bridge_secret) and not connect("wrong")
    assert acl("palaute/v1/kalvia/kalvia-1/events", 2) and acl("palaute/v1/+/+/config", 4)
    assert not acl("palaute/v1/kalvia/kalvia-1/cmd", 2) and not acl("palaute/v1/+/+/events", 4)
    assert not acl("palaute/_server/ingest/x", 2)
    with sessions() as s, s.begin():
        remove_bridge(s, "region")
    assert not connect(bridge_secret)
