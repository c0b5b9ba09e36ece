"""Public results pages: off by default, one 404, the small-count rule through the hierarchy,
notes as "what changed", fi/sv/en, the cache, the embed variant's frame ancestors, open data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import store_batch
from fleet_server.models import Station, StationGroup, StationNote
from fleet_server.results import figures
from fleet_server.results import public as public_results
from fleet_server.web.public_pages import PublicCache
from tests.support.auth_helpers import make_user, page_csrf, sign_in
from tests.support.server_factories import event, events_message

SATISFIED_30 = re.compile(r'data-testid="last_30_days">(.*?)</div>', re.DOTALL)


def _client(db_url, **over):
    settings = load_settings(environ={}, database_url=db_url, mode="development", **over)
    return TestClient(create_app(settings, start_ingest=False))


def _answers(client, station: str, values, days_ago: float = 0.1) -> None:
    ts = datetime.now(UTC) - timedelta(days=days_ago)
    evs = [event(station=station, device=f"{station}-1", value=v, ts=ts - timedelta(minutes=i))
           for i, v in enumerate(values)]
    store_batch(client.app.state.session_factory, [events_message(evs, station=station, device=f"{station}-1")])


def _seed(client, public_stations=("kalvia", "lohtaja"), public_groups=("kokkola-city",)):
    """kokkola-city: kalvia (12 answers, 9 happy) + lohtaja (3 answers) + ullava (8, page off); soite above it."""
    with client.app.state.session_factory() as s:
        s.add(StationGroup(id="soite", kind="county", name="Soite", name_sv="Soite", name_en="Soite"))
        s.add(StationGroup(id="kokkola-city", parent_id="soite", kind="municipality", name="Kokkola",
                           name_sv="Karleby", public_page="kokkola-city" in public_groups))
        s.flush()
        for sid, fi, sv, en in (("kalvia", "Kälviän terveysasema", "Kelviå hälsostation", "Kälviä health station"),
                                ("lohtaja", "Lohtajan terveysasema", "Lochteå hälsostation", None),
                                ("ullava", "Ullavan terveysasema", None, None)):
            s.add(Station(id=sid, name=fi, name_fi=fi, name_sv=sv, name_en=en, group_id="kokkola-city",
                          public_page=sid in public_stations))
        s.commit()
    _answers(client, "kalvia", (4, 4, 4, 4, 3, 3, 3, 3, 3, 1, 2, 2))
    _answers(client, "lohtaja", (4, 4, 1))
    _answers(client, "ullava", (1, 1, 1, 2, 2, 3, 4, 4))


@pytest.fixture
def client(db_url):
    with _client(db_url) as c:
        yield c


def test_public_pages_are_off_by_default_and_off_or_unknown_give_the_same_404(client):
    _seed(client, public_stations=(), public_groups=())
    for path in ("/public/stations/kalvia", "/public/stations/nowhere", "/public/groups/kokkola-city",
                 "/public/groups/nowhere", "/public/stations/kalvia/embed", "/public/stations/kalvia/data.json",
                 "/public/nothing/kalvia"):
        for accept in ("text/html", "application/json"):
            r = client.get(path, headers={"accept": accept})
            assert r.status_code == 404, path
    html = {client.get(f"/public/stations/{sid}", headers={"accept": "text/html"}).text.replace(sid, "ID")
            for sid in ("kalvia", "nowhere")}
    assert len(html) == 1  # the page that is off cannot be told from one that does not exist
    data = {client.get(p).text for p in ("/public/stations/kalvia/data.json", "/public/stations/nowhere/data.json")}
    assert len(data) == 1
    assert client.get("/public").status_code == 200 and "kalvia" not in client.get("/public").text


def test_station_page_shows_30_and_90_days_under_the_small_count_rule_without_login(client):
    _seed(client)
    page = client.get("/public/stations/kalvia?lang=en")
    assert page.status_code == 200 and "set-cookie" not in page.headers
    assert '<html lang="en">' in page.text and "Kälviä health station" in page.text
    block = SATISFIED_30.search(page.text).group(1)
    assert "75\u00a0%" in block and "12 responses" in block  # 9 of 12 counted answers are happy
    assert page.headers["content-security-policy"].count("frame-ancestors 'none'") == 1
    assert page.headers["x-frame-options"] == "DENY"
    # lohtaja's 3 answers are too few: neither a share nor a count.
    small = client.get("/public/stations/lohtaja?lang=en").text
    block = SATISFIED_30.search(small).group(1)
    assert "Too few responses to show" in block and "%" not in block.replace("5 people", "")
    assert "3 responses" not in small


def test_a_group_page_cascades_so_no_small_or_unpublished_station_can_be_worked_out(client):
    """Kokkola = kalvia 12 + lohtaja 3 + ullava 8 (page off). Showing Kokkola's 23 and kalvia's 12
    would leave 11 for the two others; lohtaja (too few) and ullava (unpublished) are both unknown,
    so that is allowed - but neither may be shown alone next to the total."""
    _seed(client)
    group = client.get("/public/groups/kokkola-city?lang=en")
    assert group.status_code == 200
    block = SATISFIED_30.search(group.text).group(1)
    assert "23 responses" in block
    members = dict(re.findall(r'<tr data-member="([a-z-]+)">(.*?)</tr>', group.text, re.DOTALL))
    assert set(members) == {"kalvia", "lohtaja"}  # ullava's page is off: not listed
    assert ">12<" in members["kalvia"] and "Too few responses to show" in members["lohtaja"]
    data = client.get("/public/groups/kokkola-city/data.json").json()
    assert data["periods"][0]["responses"] == 23

    # With ullava published too, lohtaja would be the only unknown part: one more figure must go.
    with client.app.state.session_factory() as s:
        s.get(Station, "ullava").public_page = True
        s.commit()
    client.app.state.public_cache.clear()
    shown = {}
    for key in ("kalvia", "lohtaja", "ullava"):
        shown[key] = client.get(f"/public/stations/{key}/data.json").json()["periods"][0]["responses"]
    total = client.get("/public/groups/kokkola-city/data.json").json()["periods"][0]["responses"]
    assert shown["lohtaja"] is None
    assert total is None or sum(1 for v in shown.values() if v is None) >= 2, (total, shown)


def test_cascade_hides_a_second_figure_when_one_unknown_would_follow_by_subtraction():
    from fleet_server.results.groups import Tree

    tree = Tree(groups={"g": StationGroup(id="g", kind="municipality", name="G")})
    tree.children[None].append("g")
    for sid in ("a", "b"):
        tree.stations["g"].append(sid)
        tree.station_group[sid] = "g"
    counts = {"a": {1: 0, 2: 0, 3: 20, 4: 20}, "b": {1: 1, 2: 0, 3: 0, 4: 1}}
    out = public_results.cascade(tree, counts, {("station", "a"), ("group", "g")}, minimum=5)
    # b (2 answers) is hidden; g = 42 shown with a = 40 would give b away: a or g hides too.
    assert out[("station", "a")].hidden or out[("group", "g")].hidden
    # An unpublished b with many answers is protected the same way.
    counts["b"] = {1: 10, 2: 10, 3: 10, 4: 10}
    out = public_results.cascade(tree, counts, {("station", "a"), ("group", "g")}, minimum=5)
    assert out[("station", "a")].hidden or out[("group", "g")].hidden
    # Both published and large: everything shows.
    out = public_results.cascade(tree, counts, {("station", "a"), ("station", "b"), ("group", "g")}, minimum=5)
    assert not any(f.hidden for f in out.values()) and out[("group", "g")].total == 80


def test_months_and_windows_never_make_one_figure_the_sum_of_others():
    today = datetime(2026, 12, 31).date()
    windows, months = public_results.spans(today)
    assert [w.key for w in windows] == ["last_30_days", "last_90_days"]
    assert all(w.last == today for w in windows)  # today is in no whole month
    assert months[-1].key == "2026-11" and months[0].key == "2025-12" and len(months) == 12
    assert all(m.last < today for m in months)


def test_notes_show_under_what_changed_in_the_page_language(client):
    _seed(client)
    today = figures.today_local()
    with client.app.state.session_factory() as s:
        for text_fi, text_sv, starts, withdrawn in (
            ("Lisäsimme aamuun ajanvarausajan.", "Vi lade till en bokningstid på morgonen.", today - timedelta(days=40),
             False),
            ("Odotustilaan tuli lisää tuoleja.", "", today - timedelta(days=3), False),
            ("Tämä peruttiin.", "", today - timedelta(days=2), True),
            ("Tulossa ensi kuussa.", "", today + timedelta(days=10), False),
        ):
            s.add(StationNote(station_id="kalvia", text_fi=text_fi, text_sv=text_sv, starts=starts,
                              created_by="c", updated_by="c",
                              withdrawn_at=datetime.now(UTC) if withdrawn else None, withdrawn_by="c" if withdrawn else None))
        s.commit()
    sv = client.get("/public/stations/kalvia?lang=sv").text
    notes = re.search(r'data-testid="notes">(.*?)</section>', sv, re.DOTALL).group(1)
    assert "Vad som ändrades tack vare er respons" in notes
    assert "Vi lade till en bokningstid på morgonen." in notes
    assert 'lang="fi">Odotustilaan tuli lisää tuoleja.' in notes  # no Swedish text: the Finnish one, marked as such
    assert "peruttiin" not in notes and "Tulossa" not in notes  # withdrawn, and not started yet
    assert notes.index("Odotustilaan") < notes.index("Vi lade till")  # newest first
    fi = client.get("/public/stations/kalvia", headers={"accept-language": "fi-FI,fi;q=0.9"}).text
    assert "Mitä palautteenne ansiosta muuttui" in fi and '<html lang="fi">' in fi
    assert "Viimeiset 30 päivää" in fi and "Viimeiset 90 päivää" in fi and "Last 30 days" not in fi
    month = figures.today_local().replace(day=1) - timedelta(days=1)
    from babel.dates import format_date

    assert format_date(month, format="LLLL yyyy", locale="fi_FI") in fi  # month names in the page's language
    # The group page carries its public stations' notes, named.
    group = client.get("/public/groups/kokkola-city?lang=fi").text
    assert "Odotustilaan tuli lisää tuoleja." in group and "Kälviän terveysasema" in group
    data = client.get("/public/stations/kalvia/data.json").json()
    assert [n["text"].get("sv") for n in data["notes"]] == [None, "Vi lade till en bokningstid på morgonen."]


@pytest.mark.parametrize(("header", "lang"), [("sv-FI,sv;q=0.9,fi;q=0.8", "sv"), ("en-GB", "en"), ("de-DE", "fi"),
                                               (None, "fi")])
def test_language_from_accept_language_with_finnish_last(client, header, lang):
    _seed(client)
    r = client.get("/public/stations/kalvia", headers={"accept-language": header} if header else {})
    assert f'<html lang="{lang}">' in r.text and r.headers["content-language"] == lang
    assert "accept-language" in r.headers["vary"].lower()
    # The switch names each language in itself and keeps the page.
    for code, name in (("fi", "Suomi"), ("sv", "Svenska"), ("en", "English")):
        assert f'href="/public/stations/kalvia?lang={code}" lang="{code}" hreflang="{code}"' in r.text and name in r.text


def test_embed_variant_may_be_framed_only_by_the_configured_sites(db_url):
    with _client(db_url, public_frame_ancestors="https://www.soite.fi https://*.kokkola.fi") as c:
        _seed(c)
        r = c.get("/public/stations/kalvia/embed?lang=fi")
        assert r.status_code == 200 and "75\u00a0%" in r.text
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors https://www.soite.fi https://*.kokkola.fi;" in csp and "'none'" not in csp.split(
            "frame-ancestors")[1].split(";")[0]
        assert "x-frame-options" not in r.headers
        assert 'target="_blank" rel="noopener"' in r.text
        full = c.get("/public/stations/kalvia")
        assert "frame-ancestors 'none'" in full.headers["content-security-policy"]
        assert full.headers["x-frame-options"] == "DENY"
    with _client(db_url) as c:  # nothing configured: no site may frame it
        r = c.get("/public/stations/kalvia/embed")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_open_data_json_has_stable_fields_and_a_licence(client):
    _seed(client)
    data = client.get("/public/stations/kalvia/data.json")
    assert data.headers["content-type"].startswith("application/json")
    assert data.headers["access-control-allow-origin"] == "*"
    body = data.json()
    assert set(body) == {"schema", "kind", "id", "name", "group_kind", "parent_group", "page", "updated_at",
                         "min_responses", "counting", "periods", "months", "notes", "licence", "licence_note"}
    assert body["schema"] == "palaute.public.v1" and body["licence"] == "CC BY 4.0"
    assert body["name"] == {"fi": "Kälviän terveysasema", "sv": "Kelviå hälsostation", "en": "Kälviä health station"}
    assert body["parent_group"] == "kokkola-city"
    last30 = body["periods"][0]
    assert last30 == {"period": "last_30_days", "first_day": last30["first_day"], "last_day": last30["last_day"],
                      "suppressed": False, "responses": 12, "satisfied_share": 0.75,
                      "answers": {"very_unhappy": 1, "unhappy": 2, "happy": 5, "very_happy": 4}}
    assert len(body["months"]) == 12 and all(set(m) == set(last30) for m in body["months"])
    small = client.get("/public/stations/lohtaja/data.json").json()["periods"][0]
    assert small["suppressed"] is True and small["responses"] is None and small["answers"] is None
    index = client.get("/public/data.json").json()
    assert {s["id"] for s in index["stations"]} == {"kalvia", "lohtaja"} and [g["id"] for g in index["groups"]] == [
        "kokkola-city"]
    group = client.get("/public/groups/kokkola-city/data.json").json()
    assert [s["id"] for s in group["stations"]] == ["kalvia", "lohtaja"] and group["group_kind"] == "municipality"


def test_pages_are_cached_and_a_coordinators_change_applies_at_once(client):
    _seed(client)
    cache = client.app.state.public_cache
    assert client.get("/public/stations/kalvia?lang=fi").status_code == 200
    builds = cache.builds
    for _ in range(5):
        client.get("/public/stations/kalvia?lang=fi")
    assert cache.builds == builds  # served from the cache
    _answers(client, "kalvia", (4,) * 10)
    assert "12 vastausta" in client.get("/public/stations/kalvia?lang=fi").text  # still the cached page
    make_user(client.app.state.session_factory, "coord", "coordinator")
    sign_in(client, "coord")
    page = client.get("/public-pages")
    assert page.status_code == 200 and 'name="station" value="kalvia" checked' in page.text
    r = client.post("/public-pages", data={"csrf_token": page_csrf(page.text), "station": ["lohtaja"],
                                           "group": ["kokkola-city"]}, follow_redirects=False)
    assert r.status_code == 303
    client.cookies.clear()
    assert client.get("/public/stations/kalvia").status_code == 404  # turned off: gone at once
    assert client.get("/public/stations/lohtaja").status_code == 200


def test_publishing_and_withdrawing_a_note_shows_on_the_public_pages_at_once(db_url, broker):
    with _client(db_url, mqtt_url=broker.url, mqtt_client_id="public-notes-test") as client:
        _seed(client)
        pages = ("/public/stations/kalvia?lang=fi", "/public/groups/kokkola-city?lang=fi",
                 "/public/stations/kalvia/data.json")
        assert all("Odotustilaan" not in client.get(p).text for p in pages)  # cached without the note
        make_user(client.app.state.session_factory, "coord", "coordinator")
        sign_in(client, "coord")
        r = client.post("/notes", data={"csrf_token": page_csrf(client.get("/notes").text), "station_id": "kalvia",
                                        "text_fi": "Odotustilaan tuli lisää tuoleja.",
                                        "starts": figures.today_local().isoformat()}, follow_redirects=False)
        assert r.status_code == 303, r.text
        assert all("Odotustilaan tuli lisää tuoleja." in client.get(p).text for p in pages)
        builds = client.app.state.public_cache.builds
        client.get(pages[0])
        assert client.app.state.public_cache.builds == builds  # cached again after the change
        note_id = re.search(r'action="/notes/(\d+)/withdraw"', client.get("/notes").text).group(1)
        r = client.post(f"/notes/{note_id}/withdraw", data={"csrf_token": page_csrf(client.get("/notes").text)},
                        follow_redirects=False)
        assert r.status_code == 303, r.text
        assert all("Odotustilaan" not in client.get(p).text for p in pages)


def test_settings_page_is_for_coordinators_only(client):
    _seed(client)
    make_user(client.app.state.session_factory, "staff1", "staff", "kalvia")
    sign_in(client, "staff1")
    assert client.get("/public-pages").status_code == 403
    page = client.get("/notes")
    r = client.post("/public-pages", data={"csrf_token": page_csrf(page.text), "station": ["ullava"]},
                    follow_redirects=False)
    assert r.status_code == 403
    client.cookies.clear()
    assert client.get("/public-pages", follow_redirects=False).status_code == 303


def test_cache_serves_the_old_value_while_one_reader_rebuilds():
    now = [0.0]
    cache = PublicCache(10, clock=lambda: now[0])
    assert cache.get("k", lambda: "one") == "one"
    now[0] = 5
    assert cache.get("k", lambda: "two") == "one"
    now[0] = 11
    seen = []

    def slow():
        seen.append(cache.get("k", lambda: "three"))  # another reader meanwhile: the stale value
        return "two"

    assert cache.get("k", slow) == "two" and seen == ["one"]
    assert cache.get("k", lambda: "three") == "two"
    cache.clear()
    assert cache.get("k", lambda: "four") == "four"


def test_cli_turns_pages_on_and_off_and_names_an_unknown_id(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from fleet_server.cli import app
    from fleet_server.core.db import make_engine, make_session_factory, migrate

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    engine = make_engine(url)
    migrate(engine)
    with make_session_factory(engine)() as s:
        s.add(Station(id="kalvia", name="Kälviä"))
        s.commit()
    monkeypatch.setenv("PALAUTE_DATABASE_URL", url)
    runner = CliRunner()
    assert "station kalvia" in runner.invoke(app, ["public", "list"]).output
    r = runner.invoke(app, ["public", "on", "--station", "kalvia"])
    assert r.exit_code == 0 and "station kalvia: page on" in r.output
    with make_session_factory(engine)() as s:
        assert s.get(Station, "kalvia").public_page is True
    r = runner.invoke(app, ["public", "off", "--station", "nowhere"])
    assert r.exit_code == 1 and "no station 'nowhere'" in r.output
    assert runner.invoke(app, ["public", "off"]).exit_code == 2
    engine.dispose()


# --------------------------------------------------------------------- the waiting-room poster


def _last_month_days_ago() -> float:
    """Days back to the middle of last month (local), where the poster's answers go."""
    today = figures.today_local()
    middle = (today.replace(day=1) - timedelta(days=1)).replace(day=14)
    return (today - middle).days + 0.5


def _poster_station(client, station="kalvia", languages=("sv", "fi"), default="sv"):
    from fleet_server.fleet.remote_config import save_settings

    with client.app.state.session_factory() as s:
        save_settings(s, station, {"languages": list(languages), "default_lang": default})
        s.add(StationNote(station_id=station, text_fi="Lisäsimme aamuun ajanvarausaikoja.",
                          text_sv="Vi lade till bokningstider på morgonen.", starts=figures.today_local() - timedelta(days=20),
                          created_by="c", updated_by="c"))
        s.commit()


def test_poster_is_an_a4_pdf_in_the_stations_languages_with_the_months_result_notes_and_a_working_qr(
        client, tmp_path):
    import zxingcpp  # zxing-cpp, a dev dependency: the QR code must decode, not merely be there
    from PIL import Image

    from tests.support.pdf import pdf_pages, pdf_text, pdf_to_png

    _seed(client)
    _answers(client, "kalvia", (4, 4, 4, 3, 3, 3, 3, 2, 1, 4), days_ago=_last_month_days_ago())  # 8 of 10 happy
    _poster_station(client)  # Kruunupyy-like: Swedish first, then Finnish
    make_user(client.app.state.session_factory, "coord", "coordinator")
    sign_in(client, "coord")
    r = client.get("/stations/kalvia/poster.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    pdf = r.content
    assert pdf_pages(pdf) == 1
    import pypdfium2

    width, height = pypdfium2.PdfDocument(pdf)[0].get_size()
    assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (210, 297)  # A4 in mm
    text = " ".join(pdf_text(pdf).split())
    assert "Kelviå hälsostation" in text and "Kälviän terveysasema" in text
    assert text.index("Kelviå hälsostation") < text.index("Kälviän terveysasema")  # Swedish first
    assert "80 % av dem som svarade var nöjda" in text and "80 % vastaajista oli tyytyväisiä" in text
    assert "(10 svar)" in text and "(10 vastausta)" in text
    assert "Vad som ändrades tack vare er respons" in text and "Vi lade till bokningstider på morgonen." in text
    assert "Mitä palautteenne ansiosta muuttui" in text and "Lisäsimme aamuun ajanvarausaikoja." in text
    assert "Ge respons med din telefon" in text and "Anna palautetta puhelimellasi" in text
    assert "Patient feedback" not in text and "Give feedback" not in text  # no English at this station
    png = pdf_to_png(pdf, tmp_path, stem="poster", scale=2)[0]
    codes = zxingcpp.read_barcodes(Image.open(png))
    assert len(codes) == 1 and codes[0].format == zxingcpp.BarcodeFormat.QRCode
    url = codes[0].text
    assert url.startswith("http://testserver/s/kalvia?t=")
    client.cookies.clear()
    survey = client.get(url.removeprefix("http://testserver"))
    assert survey.status_code == 200 and 'data-mode="smiley"' in survey.text  # the code's link is a valid one


def test_poster_month_result_follows_the_small_count_rule_and_is_made_once_a_month(client):
    from tests.support.pdf import pdf_text

    _seed(client)
    _answers(client, "lohtaja", (4, 4), days_ago=_last_month_days_ago())
    _poster_station(client, "lohtaja", languages=("fi", "sv"), default="fi")  # Kokkola-like: fi + sv
    make_user(client.app.state.session_factory, "coord", "coordinator")
    sign_in(client, "coord")
    pdf = client.get("/stations/lohtaja/poster.pdf").content
    text = " ".join(pdf_text(pdf).split())
    assert "vastauksia oli liian vähän tuloksen näyttämiseen" in text and "för få svar för att visa ett resultat" in text
    assert "%" not in text and "2 vastausta" not in text
    assert text.index("Lohtajan terveysasema") < text.index("Lochteå hälsostation")  # Finnish first
    cache = client.app.state.poster_cache
    renders = cache.renders
    assert client.get("/stations/lohtaja/poster.pdf").content == pdf and cache.renders == renders
    with client.app.state.session_factory() as s:  # a new note is on the next print
        s.add(StationNote(station_id="lohtaja", text_fi="Uusi ilmoitustaulu.", starts=figures.today_local(),
                          created_by="c", updated_by="c"))
        s.commit()
    again = client.get("/stations/lohtaja/poster.pdf").content
    assert cache.renders == renders + 1 and "Uusi ilmoitustaulu." in pdf_text(again)
    today = figures.today_local()
    assert client.get(f"/stations/lohtaja/poster.pdf?month={today:%Y-%m}").status_code == 400  # not over yet
    assert client.get("/stations/lohtaja/poster.pdf?month=2026-13").status_code in (400, 422)
    assert client.get("/stations/nowhere/poster.pdf").status_code == 404


def test_poster_is_for_coordinators(client):
    _seed(client)
    make_user(client.app.state.session_factory, "staff1", "staff", "kalvia")
    sign_in(client, "staff1")
    assert client.get("/stations/kalvia/poster.pdf").status_code == 403
    client.cookies.clear()
    assert client.get("/stations/kalvia/poster.pdf", follow_redirects=False).status_code == 303


def test_a_stale_snapshot_is_rebuilt_in_the_background_while_readers_get_the_old_one():
    import threading as th

    now = [0.0]
    cache = PublicCache(10, clock=lambda: now[0])
    assert cache.get("snap", lambda: "one", background=True) == "one"  # the first build is waited for
    now[0] = 11
    release = th.Event()

    def slow():
        release.wait(5)
        return "two"

    assert cache.get("snap", slow, background=True) == "one"  # returns at once, the old value
    assert cache.get("snap", lambda: "never", background=True) == "one"  # still rebuilding
    release.set()
    for _ in range(100):
        if cache.get("snap", lambda: "never", background=True) == "two":
            break
        th.Event().wait(0.02)
    assert cache.get("snap", lambda: "never", background=True) == "two"
