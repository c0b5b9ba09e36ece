"""The devices pages and /api/v1/fleet: who sees what, configs, commands, alerts on the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fleet_server.app import install_fleet_routes
from fleet_server.auth.setup import install_auth
from fleet_server.core.clock import utcnow
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.fleet.loop import start_fleet_ops, stop_fleet_ops
from fleet_server.models import Device, DeviceCommand, Station
from palaute_wire.contract import decode, topic
from tests.support.auth_helpers import bearer, make_user, page_csrf, sign_in
from tests.support.mqtt_probe import Probe

pytestmark = pytest.mark.broker


@pytest.fixture
def app(sqlite_url, broker):
    engine = make_engine(sqlite_url)
    migrate(engine)
    factory = make_session_factory(engine)
    now = utcnow()
    with factory() as s, s.begin():
        s.add_all([Station(id="kalvia", name="Kälviä"), Station(id="lohtaja", name="Lohtaja")])
        s.flush()
        s.add_all([
            Device(id="kalvia-1", station_id="kalvia", state="active", online=True, last_seen_at=now,
                   status_received_at=now, queue_depth=3, clock_synced=True, cpu_temp_c=48.0,
                   disk_free_mb=9000.0, software_version="0.1.0", config_version=1, ip="10.0.0.5"),
            Device(id="lohtaja-1", station_id="lohtaja", state="active", online=False,
                   last_seen_at=now - timedelta(hours=1), status_received_at=now - timedelta(hours=1),
                   clock_synced=False, config_version=1,
                   last_status={"config_error": "schema: survey.followups.0.options: too short"}),
        ])
    settings = load_settings(environ={}, database_url=sqlite_url, mqtt_url=broker.url, session_secret="s" * 40)
    app = FastAPI()
    app.state.settings = settings
    app.state.session_factory = factory
    install_auth(app, settings)
    install_fleet_routes(app)
    start_fleet_ops(app, loop=False)
    yield app
    stop_fleet_ops(app)
    engine.dispose()


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def test_anonymous_visitors_get_nothing(client):
    assert client.get("/api/v1/fleet/devices").status_code == 401
    assert client.get("/devices", follow_redirects=False).status_code in (302, 303, 307)
    assert client.post("/api/v1/fleet/devices/kalvia-1/commands", json={"name": "identify"}).status_code == 401


def test_staff_see_only_their_station_and_cannot_command(client):
    staff = bearer(client, "staff", "kalvia")
    rows = client.get("/api/v1/fleet/devices", headers=staff).json()
    assert [r["device_id"] for r in rows] == ["kalvia-1"]
    assert client.get("/api/v1/fleet/devices/lohtaja-1", headers=staff).status_code == 403
    assert client.post("/api/v1/fleet/devices/kalvia-1/commands", json={"name": "identify"},
                       headers=staff).status_code == 403
    assert client.put("/api/v1/fleet/stations/kalvia/config", json={"survey_template": "national"},
                      headers=staff).status_code == 403
    it_rows = client.get("/api/v1/fleet/devices", headers=bearer(client, "it")).json()
    assert [r["device_id"] for r in it_rows] == ["kalvia-1", "lohtaja-1"]


def test_health_fields_say_the_state_in_words(client):
    rows = {r["device_id"]: r for r in client.get("/api/v1/fleet/devices", headers=bearer(client, "it")).json()}
    assert rows["kalvia-1"]["status"] == {"text": "online", "level": "ok"}
    assert rows["kalvia-1"]["queue"]["text"] == "3 waiting"
    assert rows["lohtaja-1"]["status"]["level"] == "bad"
    assert rows["lohtaja-1"]["status"]["text"].startswith("offline since 60 min ago")
    assert rows["lohtaja-1"]["clock"] == {"text": "NOT synced", "level": "bad"}
    assert rows["lohtaja-1"]["config"]["level"] == "bad"
    assert "refused the published config: schema" in rows["lohtaja-1"]["config"]["text"]


def test_open_alerts_show_on_the_devices_page_and_in_the_nav(client, app):
    from fleet_server.fleet.alerts import run_once

    run_once(app.state.session_factory, app.state.settings, [])
    make_user(app.state.session_factory, "kaisa", "staff", "kalvia")
    make_user(app.state.session_factory, "olli", "coordinator")
    sign_in(client, "olli")
    page = client.get("/devices").text
    assert 'data-rule="offline" data-device="lohtaja-1"' in page and 'data-rule="clock"' not in page
    assert "▲ 1 alert" in page
    client.cookies.clear()
    sign_in(client, "kaisa")
    page = client.get("/devices").text  # staff at kalvia: lohtaja's alert is not theirs
    assert "No open alerts" in page and "▲ 1 alert" not in page


def test_it_changes_a_station_config_and_kiosks_get_it_retained(client, broker):
    it = bearer(client, "it")
    bad = client.put("/api/v1/fleet/stations/kalvia/config", headers=it,
                     json={"changes": {"opening_hours": {"days": {"mon": ["17:00", "08:00"]}}}})
    assert bad.status_code == 422 and "opens 17:00 but closes 08:00" in str(bad.json())
    ok = client.put("/api/v1/fleet/stations/kalvia/config", headers=it,
                    json={"survey_template": "national", "changes": {"default_lang": "sv"}, "comment": "pilot"})
    assert ok.status_code == 200, ok.text
    (published,) = ok.json()["published"]
    assert published["devices"] == ["kalvia-1"]
    with Probe(broker.port) as kiosk:
        assert kiosk.connect()
        kiosk.subscribe(topic("kalvia", "kalvia-1", "config"))
        message = kiosk.expect(topic("kalvia", "kalvia-1", "config"))
    _, config = decode(message.topic, message.payload)
    assert (config.config_version, config.default_lang, config.survey.question_id) == (
        published["config_version"], "sv", "overall")
    view = client.get("/api/v1/fleet/stations/kalvia/config", headers=it).json()
    assert view["history"][0]["comment"] == "pilot" and view["effective"]["default_lang"] == "sv"


def test_it_sends_a_command_from_the_device_page_with_csrf(client, app, broker):
    make_user(app.state.session_factory, "anna", "it")
    assert sign_in(client, "anna").status_code in (302, 303)
    page = client.get("/devices")
    assert page.status_code == 200
    assert 'data-device="kalvia-1" data-online="yes"' in page.text and "✔&nbsp;online" in page.text
    assert "✖&nbsp;offline since" in page.text
    detail = client.get("/devices/kalvia-1")
    token = page_csrf(detail.text)
    with Probe(broker.port) as kiosk:
        assert kiosk.connect()
        kiosk.subscribe(topic("kalvia", "kalvia-1", "cmd"))
        refused = client.post("/devices/kalvia-1/commands", data={"name": "identify"}, follow_redirects=False)
        assert refused.status_code == 403  # no CSRF token
        sent = client.post("/devices/kalvia-1/commands", data={"name": "identify", "csrf_token": token},
                           follow_redirects=False)
        assert sent.status_code == 303
        message = kiosk.expect(topic("kalvia", "kalvia-1", "cmd"))
    _, command = decode(message.topic, message.payload)
    assert command.name == "identify"
    with app.state.session_factory() as s:
        row = s.get(DeviceCommand, command.cmd_id)
        assert row.issued_by == "anna" and row.acked_at is None
    page = client.get(sent.headers["location"]).text
    assert "… waiting" in page and "Command “identify” sent" in page
    assert "Call 555" not in client.get("/devices/kalvia-1?sent=Call+555&error=Call+555").text
    no_seq = client.post("/devices/kalvia-1/commands", data={"name": "resend", "csrf_token": token})
    assert no_seq.status_code == 422 and "resend needs a sequence number" in no_seq.text


def test_config_page_saves_and_publishes(client, app):
    make_user(app.state.session_factory, "anna", "it")
    sign_in(client, "anna")
    page = client.get("/stations/kalvia/config")
    assert page.status_code == 200
    token = page_csrf(page.text)
    saved = client.post("/stations/kalvia/config", follow_redirects=False, data={
        "csrf_token": token, "survey_template": "national", "default_lang": "en", "idle_timeout_s": "45",
        "opening_hours": "mon 08:00-16:00\ntue 08:00-16:00", "comment": "national pilot"})
    assert saved.status_code == 303 and "saved=" in saved.headers["location"], saved.headers["location"]
    page = client.get(saved.headers["location"])
    assert "Saved and published" in page.text and "national pilot" in page.text
    bad = client.post("/stations/kalvia/config", follow_redirects=False,
                      data={"csrf_token": token, "opening_hours": "monday 8-16"})
    assert bad.status_code == 422 and "not saved" in bad.text and "&#39;monday&#39; is not one of" in bad.text
    # Nothing from the URL is echoed as a message.
    assert "evil" not in client.get("/stations/kalvia/config?error=evil").text
    assert client.get("/stations/kalvia/config?saved=evil").status_code == 422


def test_a_device_row_holding_infinity_or_absurd_values_does_not_break_the_pages(client, app):
    """Values stored before the contract had bounds (or written by hand): every page still answers."""
    from fleet_server.api import api_router
    from fleet_server.fleet.alerts import run_once

    app.include_router(api_router)
    with app.state.session_factory() as s, s.begin():
        d = s.get(Device, "kalvia-1")
        d.uptime_s, d.oldest_queued_age_s = float("inf"), 1e300
        d.cpu_temp_c, d.disk_free_mb = float("-inf"), float("nan")
        d.queue_depth, d.last_status = 2**31 + 5, {"uptime_s": float("inf"), "nested": [float("nan"), 1]}
    run_once(app.state.session_factory, app.state.settings, [])  # the alert loop reads the same row
    it = bearer(client, "it")
    make_user(app.state.session_factory, "olli", "coordinator")
    sign_in(client, "olli")
    for url in ("/devices", "/devices/kalvia-1"):
        page = client.get(url)
        assert page.status_code == 200, url
    for url in ("/api/v1/fleet/devices", "/api/v1/fleet/devices/kalvia-1", "/api/v1/devices"):
        answer = client.get(url, headers=it)
        assert answer.status_code == 200, (url, answer.text[:300])
    row = next(r for r in client.get("/api/v1/fleet/devices", headers=it).json() if r["device_id"] == "kalvia-1")
    assert row["uptime"]["level"] == "unknown" and row["temperature"]["level"] == "unknown"
    raw = next(r for r in client.get("/api/v1/devices", headers=it).json() if r["id"] == "kalvia-1")
    assert raw["uptime_s"] is None and raw["queue_depth"] is None and raw["last_status"]["uptime_s"] is None
