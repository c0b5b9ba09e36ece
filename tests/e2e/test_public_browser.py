"""The public results pages in Chromium: axe-core finds no serious or critical problem at 1366x768
and on a 390x844 phone, in Finnish, Swedish and English; no page is wider than the phone; the
embed variant shows in an iframe on an allowed site and is refused on any other.

The fleet server runs in this process under uvicorn (SQLite); another origin (a second port)
plays the county's own website.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import sync_playwright

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.devtools.demo import SAMPLE_GROUPS, SAMPLE_NAMES, SAMPLE_STATIONS
from fleet_server.devtools.local_broker import free_port
from fleet_server.ingest.consumer import store_batch
from fleet_server.models import Station, StationGroup, StationNote
from fleet_server.results import figures
from tests.support.browser_support import axe_is_looking, launch, page_problems, serve_in_thread, shot
from tests.support.server_factories import event, events_message

pytestmark = pytest.mark.browser

MIX = (1, 2, 3, 3, 4, 4, 4, 4, 4, 3)
VIEWPORTS = ({"width": 1366, "height": 768}, {"width": 390, "height": 844})


def _seed(factory) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    messages = []
    for n, (sid, _name) in enumerate(SAMPLE_STATIONS):
        many = 3 if sid == "ullava" else 40 + 7 * n  # Ullava: too few to show
        events = [event(station=sid, device=f"{sid}-1", value=MIX[(i + n) % len(MIX)],
                        ts=now - timedelta(hours=1 + (i * 37) % 2000)) for i in range(many)]
        messages.append(events_message(events, station=sid, device=f"{sid}-1"))
    store_batch(factory, messages)
    today = figures.today_local()
    with factory() as s:
        for gid, parent, kind, fi, sv, en in SAMPLE_GROUPS:
            s.add(StationGroup(id=gid, parent_id=parent, kind=kind, name=fi, name_fi=fi, name_sv=sv, name_en=en,
                               public_page=True))
            s.flush()
        for sid, en in SAMPLE_STATIONS:
            st = s.get(Station, sid)
            st.name_fi, st.name_sv, st.group_id = SAMPLE_NAMES[sid]
            st.name, st.name_en, st.public_page = en, en, True
        s.add(StationNote(station_id="kalvia", text_fi="Lisäsimme aamuun ajanvarausaikoja.",
                          text_sv="Vi lade till bokningstider på morgonen.", text_en="We added morning appointments.",
                          starts=today - timedelta(days=30), ends=today - timedelta(days=2), created_by="c",
                          updated_by="c"))
        s.add(StationNote(station_id="kalvia", text_fi="Odotustilaan tuli lisää tuoleja.", starts=today,
                          created_by="c", updated_by="c"))
        s.commit()


@contextlib.contextmanager
def _website():
    """A county's own website on another origin: one page with an iframe of ``holder["src"]``."""
    holder: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = (f'<!doctype html><html lang="fi"><title>Soite</title><h1>Soite</h1>'
                    f'<iframe id="embed" title="Palaute" src="{holder["src"]}" width="360" height="460"></iframe>').encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    holder["origin"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield holder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def site():
    with _website() as holder:
        yield holder


@pytest.fixture
def server(tmp_path, site):
    settings = load_settings(environ={}, database_url=f"sqlite:///{tmp_path / 'palaute.db'}", mode="development",
                             public_frame_ancestors=site["origin"])
    app = create_app(settings, start_ingest=False)
    with serve_in_thread(app) as base:
        _seed(app.state.session_factory)
        yield base, app


PAGES = [(path, "fi") for path in ("/public/stations/kalvia", "/public/stations/ullava", "/public/groups/kokkola-city",
                                    "/public/groups/soite", "/public/stations/kalvia/embed", "/public")]
PAGES += [(path, lang) for lang in ("sv", "en") for path in ("/public/stations/kalvia", "/public/groups/soite")]
"""Every kind of page in Finnish; the station and the county page in Swedish and English too."""


@pytest.mark.timeout(600)
def test_public_pages_pass_axe_on_desktop_and_phone_in_each_language(server):
    base, _app = server
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            for viewport in VIEWPORTS:
                ctx = browser.new_context(viewport=viewport, bypass_csp=True, device_scale_factor=1)
                page = ctx.new_page()
                for path, lang in PAGES:
                    response = page.goto(f"{base}{path}?lang={lang}")
                    assert response is not None and response.status == 200, path
                    assert page.get_attribute("html", "lang") == lang
                    where = f"{path}?lang={lang} at {viewport['width']}x{viewport['height']}"
                    problems += page_problems(page, where, viewport["width"])
                page.goto(f"{base}/public/stations/kalvia?lang=fi")
                shot(page, f"public-station-{viewport['width']}")
                assert axe_is_looking(page)  # an image without a text alternative is reported
                ctx.close()
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


def test_a_reader_switches_language_and_sees_what_changed(server):
    base, _app = server
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(viewport=VIEWPORTS[1], locale="sv-FI").new_page()
            page.goto(f"{base}/public/stations/kalvia")
            assert page.get_attribute("html", "lang") == "sv"  # from the browser's Accept-Language
            notes = page.locator("[data-testid=notes]")
            assert "Vad som ändrades tack vare er respons" in notes.inner_text()
            assert "Vi lade till bokningstider på morgonen." in notes.inner_text()
            page.get_by_role("link", name="Suomi").click()
            assert page.get_attribute("html", "lang") == "fi"
            assert "Mitä palautteenne ansiosta muuttui" in page.locator("[data-testid=notes]").inner_text()
            assert page.context.cookies() == []  # no cookie, no login
            page.keyboard.press("Tab")  # the first stop is the skip link, which shows when focused
            assert page.evaluate("() => document.activeElement.getAttribute('href')") == "#main"
        finally:
            browser.close()


def _framed(page, site, src: str) -> bool:
    """Whether ``src`` shows inside the iframe of ``site``'s page (Chromium enforces frame-ancestors)."""
    site["src"] = src
    page.goto(site["origin"])
    page.wait_for_timeout(500)
    child = next(f for f in page.frames if f != page.main_frame)
    try:
        child.wait_for_selector("h1", timeout=3000)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: nothing was shown
        return False
    return True


def test_embed_shows_in_an_iframe_only_on_the_allowed_site(server, site):
    base, _app = server
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_context(viewport=VIEWPORTS[0]).new_page()
            embed = f"{base}/public/stations/kalvia/embed?lang=fi"
            assert _framed(page, site, embed)
            assert "Kälviän terveysasema" in page.frame_locator("#embed").locator("h1").inner_text()
            shot(page, "public-embed")
            assert not _framed(page, site, f"{base}/public/stations/kalvia?lang=fi")  # the full page: never
            with _website() as other:  # a site that is not named may not show even the embed
                assert not _framed(page, other, embed)
        finally:
            browser.close()
