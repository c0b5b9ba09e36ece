"""The dashboard in Finnish, Swedish and English: complete catalogues, the language from the
browser or the user's own choice (kept on their account), local formats, station names."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.core import i18n
from fleet_server.core.settings import load_settings
from fleet_server.devtools.catalog import extract, problems
from fleet_server.ingest.consumer import store_batch
from fleet_server.models import Station, User
from fleet_server.results import figures
from tests.support.auth_helpers import make_user, page_csrf, sign_in
from tests.support.server_factories import event, events_message


def test_every_dashboard_text_is_translated_and_every_mo_is_fresh():
    assert problems() == []


def test_the_extractor_finds_texts_in_templates_and_python():
    found = {m.id if isinstance(m.id, str) else m.id[0] for m in extract() if m.id}
    assert {"All stations", "Sign in", "too few responses", "7 days", "Not allowed", "%(num)d alert"} <= found


@pytest.fixture
def client(sqlite_url):
    settings = load_settings(environ={}, database_url=sqlite_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        base = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
        store_batch(c.app.state.session_factory, [events_message(
            [event(value=v, ts=base - timedelta(minutes=i)) for i, v in enumerate((4, 4, 3, 1, 2, 4))])])
        with c.app.state.session_factory() as s:
            st = s.get(Station, "kalvia")
            st.name, st.name_fi, st.name_sv = "Kälviä", "Kälviän terveysasema", "Kelviå hälsostation"
            s.commit()
        make_user(c.app.state.session_factory, "coord", "coordinator")
        yield c


def test_the_sign_in_page_follows_accept_language(client):
    fi = client.get("/login", headers={"Accept-Language": "fi-FI,fi;q=0.9,en;q=0.5"})
    assert '<html lang="fi">' in fi.text and "Kirjaudu sisään" in fi.text and fi.headers["content-language"] == "fi"
    sv = client.get("/login", headers={"Accept-Language": "sv-FI,sv;q=0.9"})
    assert '<html lang="sv">' in sv.text and "Logga in" in sv.text
    assert '<html lang="en">' in client.get("/login", headers={"Accept-Language": "de"}).text


def test_the_chosen_language_is_kept_with_the_user(client):
    sign_in(client, "coord")
    csrf = page_csrf(client.get("/").text)
    assert client.post("/language", data={"lang": "sv", "csrf_token": csrf, "next": "/"},
                       follow_redirects=False).status_code == 303
    page = client.get("/?range=7d", headers={"Accept-Language": "fi"})
    assert '<html lang="sv">' in page.text and "Alla stationer" in page.text
    assert "Kelviå hälsostation" in page.text  # the station's Swedish name
    with client.app.state.session_factory() as s:
        assert s.query(User).filter_by(username="coord").one().language == "sv"
    client.cookies.clear()  # another browser: the choice comes back with the sign-in
    sign_in(client, "coord")
    assert "Alla stationer" in client.get("/?range=7d", headers={"Accept-Language": "en"}).text


def test_a_language_change_needs_the_forms_token_when_signed_in(client):
    sign_in(client, "coord")
    assert client.post("/language", data={"lang": "sv", "csrf_token": "nope"}).status_code == 403
    assert client.post("/language", data={"lang": "de"}).status_code == 422


def test_station_page_in_finnish_names_station_days_and_numbers_the_finnish_way(client):
    sign_in(client, "coord")
    client.post("/language", data={"lang": "fi", "csrf_token": page_csrf(client.get("/").text)})
    html = client.get("/stations/kalvia?range=7d").text
    assert "<h1>Kälviän terveysasema</h1>" in html and "Tyytyväisyys" in html
    first = figures.today_local() - timedelta(days=6)  # the station's calendar (Helsinki), not the machine's
    assert f"{first.day}.{first.month}.{first.year}" in html  # 1.12.2026, not 2026-12-01 or 12/1/2026
    assert re.search(r"\b(ma|ti|ke|to|pe|la|su)\b", html)  # weekday names in Finnish (heatmap rows)


def test_an_error_page_says_what_is_wrong_in_the_readers_language(client):
    sign_in(client, "coord")
    for lang, said in (("fi", "asemaa 'nowhere' ei ole"), ("sv", "stationen 'nowhere' finns inte"),
                       ("en", "no station 'nowhere'")):
        client.post("/language", data={"lang": lang, "csrf_token": page_csrf(client.get("/").text)})
        page = client.get("/stations/nowhere", headers={"Accept": "text/html"})
        assert page.status_code == 404 and said in page.text.replace("&#39;", "'"), lang
    make_user(client.app.state.session_factory, "hoitaja", "staff", "kalvia")
    sign_in(client, "hoitaja")
    client.post("/language", data={"lang": "sv", "csrf_token": page_csrf(client.get("/").text)})
    page = client.get("/users", headers={"Accept": "text/html"})
    assert page.status_code == 403 and "din roll (staff) får inte hantera användare" in page.text


def test_one_format_per_language():
    token = i18n.current_lang.set("fi")
    try:
        assert (i18n.day(date(2026, 12, 1)), i18n.number(1234.5, 1), i18n.percent(0.75)) == (
            "1.12.2026", "1\u00a0234,5", "75\u00a0%")
        i18n.current_lang.set("sv")
        assert (i18n.day(date(2026, 12, 1)), i18n.number(1234.5, 1)) == ("1.12.2026", "1\u00a0234,5")
        i18n.current_lang.set("en")
        assert (i18n.day(date(2026, 12, 1)), i18n.number(1234.5, 1)) == ("01/12/2026", "1,234.5")
    finally:
        i18n.current_lang.reset(token)


@pytest.mark.parametrize(("header", "lang"), [("fi", "fi"), ("en-GB,sv;q=0.9", "en"), ("de,sv;q=0.5", "sv"),
                                              ("", "en"), ("sv;q=0,fi;q=0.1", "fi")])
def test_accept_language_negotiation(header, lang):
    assert i18n.negotiate(header) == lang


@pytest.mark.parametrize(("lang", "words"), [
    ("fi", ("Yleiskuva", "Kirjaudu ulos", "Tyytyväisyys")),
    ("sv", ("Översikt", "Logga ut", "Nöjdhet")),
])
def test_every_page_speaks_the_chosen_language(client, lang, words):
    make_user(client.app.state.session_factory, "it-person", "it")
    make_user(client.app.state.session_factory, "boss", "admin")
    pages = {"coord": ["/?range=7d", "/stations/kalvia?range=7d", "/compare?station=kalvia", "/exports", "/notes",
                       "/devices", "/status"],
             "it-person": ["/", "/devices", "/devices/kalvia-1", "/stations/kalvia/config"],
             "boss": ["/users"]}
    english = ("Sign out", "Overview", "Satisfaction", "Devices", "Last seen", "Users and API tokens")
    for user, paths in pages.items():
        client.cookies.clear()
        sign_in(client, user)
        client.post("/language", data={"lang": lang, "csrf_token": page_csrf(client.get("/").text)})
        for path in paths:
            page = client.get(path)
            assert page.status_code == 200, (user, path, page.status_code)
            assert f'<html lang="{lang}">' in page.text, (user, path)
            shown = re.sub(r"<[^>]+>", " ", page.text)
            assert not [w for w in english if re.search(rf"\b{w}\b", shown)], (user, path)
        if user == "coord":
            assert all(w in client.get("/?range=7d").text for w in words)
