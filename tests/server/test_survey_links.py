"""The web survey link in a kiosk's config (for its QR code): only to kiosks that accept it,
opens the station's survey, renewed before it expires (fleet_server.fleet.survey_links)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.core.clock import utcnow
from fleet_server.core.settings import load_settings
from fleet_server.fleet.loop import FleetLoop
from fleet_server.fleet.remote_config import publish_station, renew_links
from fleet_server.models import Device
from palaute_wire.contract import StationConfig, SurveyLink, decode, topic
from tests.support.auth_helpers import ensure_station
from tests.support.mqtt_probe import Probe

PUBLIC = "https://palaute.example.fi"
NEW_KIOSK = {"online": True, "accepts": ["survey_link"]}


@pytest.fixture
def app_client(db_url, broker):
    settings = load_settings(environ={}, database_url=db_url, mode="development", mqtt_url=broker.url,
                             web_public_url=PUBLIC, web_link_days=10)
    with TestClient(create_app(settings, start_ingest=False)) as client:
        with client.app.state.session_factory() as s, s.begin():
            ensure_station(s, "kalvia", "Kälviä")
            s.add_all([Device(id="kalvia-1", station_id="kalvia", state="active", last_status=NEW_KIOSK),
                       Device(id="kalvia-old", station_id="kalvia", state="active",
                              last_status={"online": True, "software_version": "0.1.0"})])
        yield client


def _retained(port: int, device: str) -> StationConfig:
    with Probe(port) as kiosk:
        assert kiosk.connect()
        kiosk.subscribe(topic("kalvia", device, "config"))
        message = kiosk.expect(topic("kalvia", device, "config"))
    config = decode(message.topic, message.payload)[1]
    assert isinstance(config, StationConfig)
    return config


@pytest.mark.broker
def test_a_kiosk_that_accepts_links_gets_one_that_opens_its_survey_and_an_old_kiosk_none(app_client, broker):
    app = app_client.app
    with app.state.session_factory() as s:
        publish_station(s, app.state.fleet_publisher, "kalvia")
    link = _retained(broker.port, "kalvia-1").survey_link
    assert _retained(broker.port, "kalvia-old").survey_link is None, "an old kiosk would refuse the config"
    assert isinstance(link, SurveyLink) and link.url.startswith(f"{PUBLIC}/s/kalvia?t=")
    assert timedelta(days=10) - timedelta(seconds=5) <= link.expires - utcnow() <= timedelta(days=10)
    url = urlsplit(link.url)
    page = app_client.get(f"{url.path}?{url.query}&lang=en")
    assert page.status_code == 200 and "How was your visit today?" in page.text, "the survey accepts the link"
    token = url.query.removeprefix("t=")
    assert app.state.web_links.serializer.loads(token)["k"] == "kalvia-1", "the link names the kiosk"


@pytest.mark.broker
def test_links_are_renewed_half_way_through_their_life_and_not_before(app_client, broker):
    """web_link_days is 10 here: a link with more than 5 days left is kept, one with less is renewed."""
    app = app_client.app
    publisher, now = app.state.fleet_publisher, utcnow()
    attempts: dict[str, float] = {}

    def report(expires) -> None:
        with app.state.session_factory() as s, s.begin():
            s.get(Device, "kalvia-1").last_status = {**NEW_KIOSK, "survey_link_expires": expires.isoformat()}

    with app.state.session_factory() as s:
        assert renew_links(s, publisher, attempts, now, 0.0, lambda d: True) == ["kalvia-1"], "none shown yet"
    first = _retained(broker.port, "kalvia-1").survey_link
    assert first is not None
    report(first.expires)
    with app.state.session_factory() as s:
        assert renew_links(s, publisher, attempts, now, 1000.0, lambda d: True) == [], "fresh: kept"
    report(now + timedelta(days=5, minutes=1))
    with app.state.session_factory() as s:
        assert renew_links(s, publisher, attempts, now, 2000.0, lambda d: True) == [], "more than half left: kept"
    report(now + timedelta(days=5, minutes=-1))
    with app.state.session_factory() as s:
        assert renew_links(s, publisher, attempts, now, 3000.0, lambda d: False) == [], "offline: later"
        assert renew_links(s, publisher, attempts, now, 3001.0, lambda d: True) == ["kalvia-1"]
        assert renew_links(s, publisher, attempts, now, 3002.0, lambda d: True) == [], "its status is not back yet"
    second = _retained(broker.port, "kalvia-1").survey_link
    assert second is not None and second.expires - now >= timedelta(days=10) - timedelta(seconds=5)
    report(second.expires)
    with app.state.session_factory() as s:
        assert renew_links(s, publisher, attempts, now, 9000.0, lambda d: True) == []


@pytest.mark.broker
def test_the_fleet_loop_renews_a_link_about_to_expire(app_client, broker):
    app = app_client.app
    with app.state.session_factory() as s, s.begin():
        kiosk = s.get(Device, "kalvia-1")
        kiosk.online, kiosk.status_received_at = True, utcnow()
        kiosk.last_status = {**NEW_KIOSK, "survey_link_expires": (utcnow() + timedelta(hours=3)).isoformat()}
    loop = FleetLoop(app.state.settings, app.state.session_factory, app.state.fleet_publisher)
    loop.configs_published = True  # the start-up publish is done: this pass repairs and renews
    loop._renew_links()
    link = _retained(broker.port, "kalvia-1").survey_link
    assert link is not None and link.expires - utcnow() > timedelta(days=9)


def test_no_public_url_no_links(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as client:
        assert client.app.state.fleet_publisher.survey_links is None
