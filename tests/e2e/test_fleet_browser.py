"""The devices pages in headless Chromium: what IT sees, a command from the page, the config page.

The server runs in-process under uvicorn on a free port with a private Mosquitto;
kiosk health is written straight into the registry (as the ingest would from their
status messages) so every state shows at once. Screenshots go to
artifacts/screenshots/ and docs/screenshots/ (fleet-*.png).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from fleet_server.app import create_app
from fleet_server.auth.service import add_user
from fleet_server.core.clock import utcnow
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.devtools.local_broker import free_port, wait_for_port
from fleet_server.fleet.alerts import run_once
from fleet_server.fleet.remote_config import save_settings
from fleet_server.fleet.survey_templates import national_survey
from fleet_server.models import Device, Station
from palaute_wire.contract import decode, topic
from tests.support.browser_support import launch, shot
from tests.support.mqtt_probe import Probe

pytestmark = [pytest.mark.browser, pytest.mark.broker]

PASSWORD = "a long it-support password"


def _seed(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    factory = make_session_factory(engine)
    now = utcnow()
    healthy = {"state": "active", "online": True, "last_seen_at": now, "status_received_at": now, "queue_depth": 0,
               "oldest_queued_age_s": None, "shed_count": 0, "software_version": "0.1.0", "clock_synced": True,
               "cpu_temp_c": 51.0, "disk_free_mb": 21_500.0, "uptime_s": 3 * 86400 + 4000.0,
               "last_event_at": now - timedelta(minutes=7)}
    with factory() as s, s.begin():
        for sid, name in (("kalvia", "Kälviä health station"), ("lohtaja", "Lohtaja health station"),
                          ("ullava", "Ullava health station")):
            s.add(Station(id=sid, name=name))
        s.flush()
        save_settings(s, "kalvia", {"survey": national_survey().model_dump(mode="json")}, by="anna",
                      comment="national themes pilot")
        s.add_all([
            Device(id="kalvia-1", station_id="kalvia", ip="10.20.1.11", config_version=2, **healthy),
            Device(id="kalvia-2", station_id="kalvia", ip="10.20.1.12", config_version=1,
                   **{**healthy, "queue_depth": 212, "oldest_queued_age_s": 3 * 3600.0}),
            Device(id="lohtaja-1", station_id="lohtaja", ip="10.20.2.11", config_version=1,
                   **{**healthy, "online": False, "last_seen_at": now - timedelta(minutes=42),
                      "status_received_at": now - timedelta(minutes=42)}),
            Device(id="ullava-1", station_id="ullava", ip="10.20.3.11", config_version=1,
                   **{**healthy, "clock_synced": False, "cpu_temp_c": 79.5}),
            Device(id="ullava-2", station_id="ullava", state="provisioned", online=False),
        ])
        add_user(s, "anna", "it", PASSWORD, None)
    settings = load_settings(environ={}, database_url=db_url, session_secret="s" * 40)
    run_once(factory, settings, [])  # the alert pass the server runs every 30 s
    engine.dispose()


@pytest.fixture
def server(tmp_path, broker):
    db_url = f"sqlite:///{tmp_path / 'server.db'}"
    _seed(db_url)
    import uvicorn

    settings = load_settings(environ={}, database_url=db_url, mqtt_url=broker.url, session_secret="s" * 40)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(create_app(settings, start_ingest=False), host="127.0.0.1", port=port,
                                       log_level="warning"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    wait_for_port(port)
    yield f"http://127.0.0.1:{port}"
    uv.should_exit = True
    thread.join(10)


def test_it_reads_fleet_health_and_sends_a_command_in_a_real_browser(server, broker):
    from playwright.sync_api import expect, sync_playwright

    with Probe(broker.port) as kiosk, sync_playwright() as pw:
        assert kiosk.connect()
        kiosk.subscribe(topic("kalvia", "kalvia-1", "cmd"))
        browser = launch(pw)
        try:
            page = browser.new_context(viewport={"width": 1600, "height": 800}, locale="en-GB",
                                       timezone_id="Europe/Helsinki").new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{server}/devices")
            page.fill("input[name=username]", "anna")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")

            expect(page.locator("h1")).to_have_text("Devices")
            expect(page.locator("tr[data-device]")).to_have_count(5)
            expect(page.locator('tr[data-device="kalvia-1"] td.status')).to_have_text("✔\u00a0online")
            expect(page.locator('tr[data-device="lohtaja-1"] td.status')).to_contain_text("offline since 42 min ago")
            expect(page.locator('tr[data-device="kalvia-2"] td.config')).to_contain_text("1, current is 2")
            expect(page.locator('tr[data-device="ullava-2"] td.status')).to_contain_text("never connected")
            alerts = page.locator("#alerts li")
            expect(alerts).to_have_count(4)  # offline, backlog, clock, temperature
            expect(page.locator("header nav")).to_contain_text("▲ 4 alerts")
            shot(page, "fleet-devices")

            page.click('tr[data-device="kalvia-1"] a')
            expect(page.locator("h1")).to_contain_text("Kiosk kalvia-1")
            page.click("text=Identify (blink the lights)")
            expect(page.locator("p.ok")).to_contain_text("Command “identify” sent")
            expect(page.locator("#commands td.ack").first).to_contain_text("waiting")
            message = kiosk.expect(topic("kalvia", "kalvia-1", "cmd"))
            assert decode(message.topic, message.payload)[1].name == "identify"
            shot(page, "fleet-device")

            page.goto(f"{server}/stations/kalvia/config")
            expect(page.locator("h2").first).to_contain_text("Current: version 2")
            expect(page.locator("main")).to_contain_text("national themes pilot")
            shot(page, "fleet-station-config")
        finally:
            browser.close()
