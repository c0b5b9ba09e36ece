"""The station list, devices, dead letters, OpenAPI, the status page and the health check."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import InboundMessage, store_batch
from tests.support.auth_helpers import bearer
from tests.support.server_factories import T0, event, events_message, status_message


@pytest.fixture
def client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        c.headers.update(bearer(c, "coordinator"))  # every route refuses anonymous callers
        c.it_headers = bearer(c, "it")  # dead letters are IT's
        yield c


def ingest(client, *messages):
    return store_batch(client.app.state.session_factory, list(messages))


def seed_kalvia(client):
    """kalvia: at T0 values 1,2,3,3,4,4,4,4 and a follow-up; an hour later one 1; lohtaja: one 4."""
    first_hour = [event(value=v, ts=T0 + timedelta(minutes=i)) for i, v in enumerate((1, 2, 3, 3, 4, 4, 4, 4))]
    followup = event(kind="followup", value="waiting-time", question_id="what-went-wrong", ts=T0)
    later = event(value=1, ts=T0 + timedelta(hours=1))
    ingest(
        client,
        events_message(first_hour + [followup]),
        events_message([later]),
        events_message([event(station="lohtaja", device="lohtaja-1", value=4)], station="lohtaja", device="lohtaja-1"),
    )


def test_station_list_carries_counts_and_devices(client):
    seed_kalvia(client)
    ingest(client, status_message(software_version="1.0"))
    stations = {s["station_id"]: s for s in client.get("/api/v1/stations").json()}
    assert set(stations) == {"kalvia", "lohtaja"}
    kalvia = stations["kalvia"]
    assert (kalvia["total"], kalvia["followups"], kalvia["devices"], kalvia["devices_online"]) == (9, 1, 1, 1)
    assert kalvia["counts"] == {"1": 2, "2": 1, "3": 2, "4": 4}
    assert stations["lohtaja"]["suppressed"] is True and stations["lohtaja"]["satisfaction"] is None  # one answer


def test_devices_show_status_and_last_will(client):
    ingest(client, status_message(software_version="1.4.0", queue_depth=3, clock_synced=False))
    (device,) = client.get("/api/v1/devices").json()
    assert (device["id"], device["station_id"], device["online"], device["software_version"]) == (
        "kalvia-1", "kalvia", True, "1.4.0")
    assert device["queue_depth"] == 3 and device["clock_synced"] is False and device["last_seen_at"].endswith("Z")
    ingest(client, status_message(online=False))
    (device,) = client.get("/api/v1/devices").json()
    assert device["online"] is False and device["software_version"] == "1.4.0"
    assert client.get("/api/v1/devices", params={"station_id": "lohtaja"}).json() == []


def test_dead_letters_list_reason_topic_and_payload(client):
    text_payload, binary_payload = b'{"v": 2}', b"\xff\xfe\x00binary"
    ingest(
        client,
        InboundMessage("palaute/v1/kalvia/kalvia-1/events", text_payload),
        InboundMessage("palaute/v1/kalvia/kalvia-1/events", binary_payload),
        InboundMessage("palaute/v1/kalvia/kalvia-1/events", b"x" * 10_000),
    )
    page = client.get("/api/v1/dead-letters", params={"limit": 2}, headers=client.it_headers).json()
    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (3, 2, 0, 2)
    newest, binary = page["items"]
    assert newest["reason"] == "bad_json" and newest["payload_truncated"] is True and len(newest["payload"]) == 4096
    assert (binary["payload_encoding"], base64.b64decode(binary["payload"])) == ("base64", binary_payload)
    assert binary["topic"] == "palaute/v1/kalvia/kalvia-1/events" and binary["received_at"].endswith("Z")
    rest = client.get("/api/v1/dead-letters", params={"limit": 2, "offset": 2}, headers=client.it_headers).json()["items"]
    assert (rest[0]["reason"], rest[0]["payload_encoding"], rest[0]["payload"]) == ("unsupported_version", "utf-8", '{"v": 2}')
    by_reason = client.get("/api/v1/dead-letters", params={"reason": "unsupported_version"}, headers=client.it_headers).json()
    assert by_reason["total"] == 1
    whole = client.get(f"/api/v1/dead-letters/{newest['id']}", headers=client.it_headers).json()
    assert len(whole["payload"]) == 10_000 and whole["payload_truncated"] is False
    assert client.get("/api/v1/dead-letters/999999", headers=client.it_headers).status_code == 404


def test_openapi_and_docs_are_served(client):
    spec = client.get("/openapi.json").json()
    for path in ("/api/v1/stations", "/api/v1/results/stations/{station_id}", "/api/v1/devices", "/api/v1/dead-letters"):
        assert path in spec["paths"]
    assert "satisfaction" in spec["info"]["description"]
    assert client.get("/docs").status_code == 200


def test_status_page_lists_stations_and_devices(client):
    seed_kalvia(client)
    ingest(client, status_message())
    page = client.get("/status")
    assert page.status_code == 200 and 'http-equiv="refresh"' not in page.text  # live.js refreshes, keeping focus
    assert 'data-refresh="5"' in page.text and "/static/live.js" in page.text
    assert 'data-station="kalvia"' in page.text and 'data-device="kalvia-1"' in page.text and "online" in page.text


def test_healthz_reports_database_and_ingest(client):
    body = client.get("/healthz").json()
    assert body == {"status": "ok", "database": "ok", "database_writable": "ok", "mqtt": "disabled"}
