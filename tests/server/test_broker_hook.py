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
