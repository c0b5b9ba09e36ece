"""The web survey behind a station's QR code: plain forms, channel web, signed links, limits."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet_server.app import create_app
from fleet_server.channels.web_survey import LinkSigner, survey_path
from fleet_server.core.settings import load_settings
from fleet_server.models import DeadLetter, FeedbackEvent, FollowupHour, StationHour
from tests.support.auth_helpers import ensure_station, make_user, sign_in


def _client(db_url, **over):
    settings = load_settings(environ={}, database_url=db_url, mode="development", **over)
    return TestClient(create_app(settings, start_ingest=False))


@pytest.fixture
def client(db_url):
    with _client(db_url) as c:
        with c.app.state.session_factory() as s:
            ensure_station(s, "kalvia", "Kälviä")
            s.commit()
        yield c


def _link(client, station="kalvia", kiosk=None):
    return survey_path(client.app.state.web_links, station, kiosk)


def _form(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))


def _events(client):
    with client.app.state.session_factory() as s:
        return [(e.kind, e.value, e.option_id, e.channel, e.lang, e.device_id, e.seq, e.answer_to)
                for e in s.scalars(select(FeedbackEvent).order_by(FeedbackEvent.id))]


@pytest.mark.parametrize(("lang", "question", "face", "followup", "option", "thanks"), [
    ("fi", "Millainen käyntisi oli tänään?", "Erittäin tyytymätön", "Mikä meni huonosti?", "Odotin liian kauan",
     "Kiitos palautteestasi!"),
    ("sv", "Hur var ditt besök i dag?", "Mycket missnöjd", "Vad gick dåligt?", "Jag väntade för länge",
     "Tack för din respons!"),
    ("en", "How was your visit today?", "Very unhappy", "What went wrong?", "I waited too long",
     "Thank you for your feedback!"),
])
def test_a_web_answer_and_its_follow_up_are_stored_as_channel_web_in_each_language(
        client, lang, question, face, followup, option, thanks):
    page = client.get(_link(client) + f"&lang={lang}")
    assert page.status_code == 200
    assert f'<html lang="{lang}">' in page.text and question in page.text and face in page.text
    assert "set-cookie" not in page.headers
    form = _form(page.text)
    step = client.post("/s/kalvia", data={**form, "value": "1"})
    assert step.status_code == 200 and followup in step.text and option in step.text
    assert "set-cookie" not in step.headers
    done = client.post("/s/kalvia/followup", data={**_form(step.text), "option": "waiting-time"})
    assert done.status_code == 200 and thanks in done.text
    rows = _events(client)
    assert [(k, v, o, ch, la, d, s) for k, v, o, ch, la, d, s, _ in rows] == [
        ("smiley", 1, None, "web", lang, None, None), ("followup", None, "waiting-time", "web", lang, None, None)]
    assert str(rows[1][7]) == form["sid"]
    with client.app.state.session_factory() as s:
        assert sum(r.c1 for r in s.scalars(select(StationHour))) == 1
        assert [(r.smiley, r.option_id, r.n) for r in s.scalars(select(FollowupHour))] == [(1, "waiting-time", 1)]


def test_the_same_form_sent_twice_stores_one_answer(client):
    form = _form(client.get(_link(client)).text)
    assert client.post("/s/kalvia", data={**form, "value": "4"}).status_code == 200
    again = client.post("/s/kalvia", data={**form, "value": "4"})
    assert "already saved" in again.text
    other = client.post("/s/kalvia", data={**form, "value": "1"})  # the same page, another face
    assert other.status_code == 200 and "already saved" in other.text
    assert [(k, v) for k, v, *_ in _events(client)] == [("smiley", 4)]
    with client.app.state.session_factory() as s:
        assert [d.reason for d in s.scalars(select(DeadLetter))] == ["conflicting_duplicate"]


def test_a_link_that_is_forged_for_another_station_or_expired_is_refused(client):
    with client.app.state.session_factory() as s:
        ensure_station(s, "lohtaja")
        s.commit()
    assert client.get("/s/kalvia").status_code == 403
    assert client.get("/s/kalvia?t=forged").status_code == 403
    other = _link(client, "lohtaja").split("?t=")[1]
    refused = client.get(f"/s/kalvia?t={other}")
    assert refused.status_code == 403 and "expired" in refused.text
    form = _form(client.get(_link(client)).text)
    assert client.post("/s/kalvia", data={**form, "t": other, "value": "3"}).status_code == 403
    assert client.get(_link(client, "nowhere")).status_code == 404
    token = _link(client).split("?t=")[1]
    signer = client.app.state.web_links
    assert signer.check(token, "kalvia")
    assert not LinkSigner(signer.serializer, max_age_s=-1).check(token, "kalvia"), "an old link expires"
    assert _events(client) == []


def test_a_bad_form_is_refused_with_a_4xx_and_stores_nothing(client):
    form = _form(client.get(_link(client)).text)
    for bad in ({"value": "5"}, {"value": "x"}, {"sid": "not-a-uuid", "value": "3"}, {}):
        assert client.post("/s/kalvia", data={**form, **bad}).status_code == 422
    step = client.post("/s/kalvia", data={**form, "value": "2"})
    r = client.post("/s/kalvia/followup", data={**_form(step.text), "option": "no-such-option"})
    assert r.status_code == 400
    assert [(k, v) for k, v, *_ in _events(client)] == [("smiley", 2)]


def test_answers_over_the_per_address_limit_are_refused_and_not_stored(db_url):
    with _client(db_url, web_answers_per_address_hour=2) as client:
        with client.app.state.session_factory() as s:
            ensure_station(s, "kalvia")
            s.commit()
        codes = []
        for _ in range(3):
            form = _form(client.get(_link(client)).text)
            codes.append(client.post("/s/kalvia", data={**form, "value": "3"}).status_code)
        assert codes == [200, 200, 429]
        assert len(_events(client)) == 2


def test_answers_over_the_per_station_limit_are_refused(db_url):
    with _client(db_url, web_answers_per_station_hour=1) as client:
        with client.app.state.session_factory() as s:
            ensure_station(s, "kalvia")
            s.commit()
        codes = [client.post("/s/kalvia", data={**_form(client.get(_link(client)).text), "value": "4"}).status_code
                 for _ in range(2)]
        assert codes == [200, 429]


def test_coordinators_download_a_qr_code_whose_link_opens_the_survey(client):
    assert client.get("/stations/kalvia/qr.svg", follow_redirects=False).status_code in (302, 303, 307)
    make_user(client.app.state.session_factory, "coord", "coordinator")
    sign_in(client, "coord")
    svg = client.get("/stations/kalvia/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.lstrip().startswith("<?xml") and "<svg" in svg.text
    png = client.get("/stations/kalvia/qr.png")
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    link = svg.headers["x-survey-link"]
    assert link.startswith("http://testserver/s/kalvia?t=")
    assert client.get("/stations/nowhere/qr.svg").status_code == 404
    client.cookies.clear()
    assert client.get(link.removeprefix("http://testserver")).status_code == 200
