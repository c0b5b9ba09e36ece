""""You said, we did": coordinators publish notes that a kiosk receives on its retained config topic."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import store_batch
from fleet_server.results.figures import today_local
from palaute_wire import contract as c
from tests.support.auth_helpers import bearer, make_user, page_csrf, sign_in
from tests.support.mqtt_probe import Probe
from tests.support.server_factories import status_message

CONFIG_TOPIC = c.topic("kalvia", "kalvia-1", "config")


@pytest.fixture
def client(broker, sqlite_url):
    settings = load_settings(environ={}, database_url=sqlite_url, mode="development", mqtt_url=broker.url,
                             mqtt_client_id="notes-test")
    with TestClient(create_app(settings, start_ingest=False)) as cl:
        store_batch(cl.app.state.session_factory, [status_message("kalvia", "kalvia-1"),
                                                    status_message("lohtaja", "lohtaja-1")])
        make_user(cl.app.state.session_factory, "coord", "coordinator")
        yield cl


@pytest.fixture
def kiosk(broker):
    """A paho subscriber standing in for kalvia-1: it reads its own retained config topic."""
    with Probe(broker.port, client_id="kalvia-1") as probe:
        assert probe.connect()
        probe.subscribe(CONFIG_TOPIC)
        yield probe


def next_config(probe: Probe, predicate, timeout: float = 10.0) -> c.StationConfig:
    deadline = time.monotonic() + timeout
    while True:
        msg = probe.expect(CONFIG_TOPIC, timeout=max(0.1, deadline - time.monotonic()))
        _, config = c.decode(msg.topic, msg.payload)
        if predicate(config):
            return config


def _form(client) -> str:
    return page_csrf(client.get("/notes").text)


def test_publishing_a_note_reaches_the_kiosk_and_edits_and_withdrawal_follow(client, kiosk):
    sign_in(client, "coord")
    today = today_local()
    r = client.post("/notes", data={
        "csrf_token": _form(client), "station_id": "kalvia",
        "text_fi": "Kerroitte, että odotusajat olivat pitkiä – lisäsimme iltapäivään avoimen vastaanottotunnin.",
        "text_sv": "Ni berättade att väntetiderna var långa – vi lade till en öppen mottagningstimme.",
        "text_en": "You told us waiting times were long – we added an afternoon walk-in hour.",
        "starts": today.isoformat(), "ends": (today + timedelta(days=30)).isoformat(),
    }, follow_redirects=False)
    assert r.status_code == 303, r.text
    config = next_config(kiosk, lambda cfg: len(cfg.notes) == 1)
    (note,) = config.notes
    assert note.text["en"].startswith("You told us waiting times were long")
    assert set(note.text) == {"fi", "sv", "en"} and note.ends > note.starts
    first_version = config.config_version

    page = client.get("/notes").text
    row = re.search(rf'<tr data-note="{note.id}">(.*?)</tr>', page, re.DOTALL).group(1)
    assert "on kiosks now" in row and "not shown yet" not in row

    note_id = int(note.id.split("-")[1])
    r = client.post(f"/notes/{note_id}", data={
        "csrf_token": _form(client), "text_fi": "Lisäsimme iltapäivään avoimen vastaanottotunnin.",
        "text_sv": "", "text_en": "We added an afternoon walk-in hour.", "starts": today.isoformat(), "ends": "",
    }, follow_redirects=False)
    assert r.status_code == 303
    edited = next_config(kiosk, lambda cfg: cfg.notes and cfg.notes[0].text.get("en", "").startswith("We added"))
    assert edited.config_version > first_version and edited.notes[0].ends is None and "sv" not in edited.notes[0].text

    r = client.post(f"/notes/{note_id}/withdraw", data={"csrf_token": _form(client)}, follow_redirects=False)
    assert r.status_code == 303
    withdrawn = next_config(kiosk, lambda cfg: not cfg.notes)
    assert withdrawn.config_version > edited.config_version
    row = re.search(rf'<tr data-note="{note.id}">(.*?)</tr>', client.get("/notes").text, re.DOTALL).group(1)
    assert "withdrawn" in row and " – " in row  # shown from publishing to withdrawal


def test_notes_are_validated_and_need_the_csrf_token(client):
    sign_in(client, "coord")
    bad = client.post("/notes", data={"csrf_token": _form(client), "station_id": "kalvia", "text_fi": "",
                                      "starts": today_local().isoformat()})
    assert bad.status_code == 400 and "Finnish text is required" in bad.text
    backwards = client.post("/notes", data={"csrf_token": _form(client), "station_id": "kalvia", "text_fi": "x",
                                            "starts": "2026-12-10", "ends": "2026-12-01"})
    assert backwards.status_code == 400 and "before the first" in backwards.text
    forged = client.post("/notes", data={"csrf_token": "forged", "station_id": "kalvia", "text_fi": "x",
                                         "starts": "2026-12-10"})
    assert forged.status_code == 403


def test_staff_read_their_station_notes_but_cannot_publish(client, kiosk):
    sign_in(client, "coord")
    for station in ("kalvia", "lohtaja"):
        client.post("/notes", data={"csrf_token": _form(client), "station_id": station, "text_fi": f"{station} note",
                                    "starts": today_local().isoformat()})
    client.cookies.clear()
    make_user(client.app.state.session_factory, "nurse", "staff", "kalvia")
    sign_in(client, "nurse")
    page = client.get("/notes").text
    assert "kalvia note" in page and "lohtaja note" not in page and "note-form" not in page
    r = client.post("/notes", data={"csrf_token": page_csrf(page), "station_id": "kalvia", "text_fi": "x",
                                    "starts": today_local().isoformat()})
    assert r.status_code == 403
    assert client.get("/notes", headers=bearer(client, "it")).status_code == 403


def test_a_note_saved_while_the_broker_is_down_is_published_again_later(client, broker):
    sign_in(client, "coord")
    csrf = _form(client)
    broker.stop()
    r = client.post("/notes", data={"csrf_token": csrf, "station_id": "kalvia", "text_fi": "Uusi aukioloaika.",
                                    "starts": today_local().isoformat()})
    assert r.status_code == 502 and "not got it yet" in r.text
    assert "not yet on the kiosks" in client.get("/notes").text
    broker.start()
    note_id = re.search(r'action="/notes/(\d+)/publish"', client.get("/notes").text).group(1)
    r = client.post(f"/notes/{note_id}/publish", data={"csrf_token": _form(client)}, follow_redirects=False)
    assert r.status_code == 303
    with Probe(broker.port, client_id="kalvia-1-again") as again:  # the kiosk, back after the outage
        assert again.connect()
        again.subscribe(CONFIG_TOPIC)
        config = next_config(again, lambda cfg: len(cfg.notes) == 1)
    assert config.notes[0].text == {"fi": "Uusi aukioloaika."}
    assert "not yet on the kiosks" not in client.get("/notes").text
