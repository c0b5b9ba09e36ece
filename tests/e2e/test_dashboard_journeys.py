"""The coordinator's, staff's and IT's journeys in headless Chromium, in Finnish and Swedish, with
axe-core on every page (no serious or critical violation), no page wider than a 390 px phone,
focusable scroll regions for wide tables, and live figures that refresh without moving focus.

The server runs in this process (uvicorn in a thread, SQLite, no broker); answers are stored the
way the ingest stores them. axe-core is vendored in tests/support/vendor (npm ``axe-core``, MPL-2.0)
and injected with the page's CSP bypassed, since the dashboard allows scripts from itself only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect, sync_playwright

from fleet_server.app import create_app
from fleet_server.auth.service import add_user
from fleet_server.core.settings import load_settings
from fleet_server.devtools.demo import SAMPLE_GROUPS, SAMPLE_NAMES, SAMPLE_STATIONS
from fleet_server.ingest.consumer import store_batch
from fleet_server.models import Station, StationGroup
from tests.support.browser_support import axe_is_looking, launch, page_problems, serve_in_thread, shot, too_wide
from tests.support.server_factories import event, events_message, status_message

pytestmark = pytest.mark.browser

PASSWORD = "a long journey password"
MIX = (1, 2, 3, 3, 4, 4, 4, 4, 4, 3)


@pytest.fixture
def server(tmp_path):
    settings = load_settings(environ={}, database_url=f"sqlite:///{tmp_path / 'palaute.db'}", mode="development")
    app = create_app(settings, start_ingest=False)
    with serve_in_thread(app) as base:
        _seed(app.state.session_factory)
        yield base, app


def _seed(factory) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    messages = []
    for n, (sid, _name) in enumerate(SAMPLE_STATIONS):
        many = 3 if sid == "ullava" else 40 + 7 * n  # Ullava: too few to show
        events = [event(station=sid, device=f"{sid}-1", value=MIX[(i + n) % len(MIX)],
                        ts=now - timedelta(hours=1 + i % 200)) for i in range(many)]
        messages += [events_message(events, station=sid, device=f"{sid}-1"),
                     status_message(station=sid, device=f"{sid}-1", online=True, sent_at=now)]
    store_batch(factory, messages)
    with factory() as s:
        for gid, parent, kind, fi, sv, en in SAMPLE_GROUPS:
            s.add(StationGroup(id=gid, parent_id=parent, kind=kind, name=fi, name_fi=fi, name_sv=sv, name_en=en))
            s.flush()
        for sid, en in SAMPLE_STATIONS:
            st = s.get(Station, sid)
            st.name_fi, st.name_sv, st.group_id = SAMPLE_NAMES[sid]
            st.name, st.name_en = en, en
        add_user(s, "coordinator", "coordinator", PASSWORD)
        add_user(s, "hoitaja", "staff", PASSWORD, "kalvia")
        add_user(s, "skotare", "staff", PASSWORD, group_id="kruunupyy-municipality")
        add_user(s, "tuki", "it", PASSWORD)
        add_user(s, "paakayttaja", "admin", PASSWORD)
        s.commit()


def _check(page, phone, base: str, path: str, problems: list[str]) -> None:
    """axe on the desktop page; the same page at 390 px must not be wider than the phone."""
    page.goto(base + path)
    problems += page_problems(page, path)
    phone.goto(base + path)
    problems += too_wide(phone, path, 390)
    for region in phone.locator(".table-wrap").all():  # wide tables scroll inside a focusable region
        scrolls = region.evaluate("el => el.scrollWidth > el.clientWidth")
        if scrolls and (region.get_attribute("tabindex") != "0" or not region.get_attribute("aria-label")):
            problems.append(f"{path}: a scrolling table region is not focusable or has no name")


def _sign_in(page, base: str, user: str, language: str | None) -> None:
    page.goto(f"{base}/login")
    if language:
        page.click(f"footer form.lang button[value={language}]")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("form[action='/login'] button[type=submit]")
    expect(page.locator("form.signout")).to_be_visible()
    if language:  # the choice on the sign-in page is kept on the account too
        page.click(f"footer form.lang button[value={language}]")
        expect(page.locator("html")).to_have_attribute("lang", language)


def _pair(browser, context):
    phone = browser.new_context(viewport={"width": 390, "height": 844}, bypass_csp=True,
                                storage_state=context.storage_state(), device_scale_factor=1)
    return phone.new_page()


def test_coordinator_staff_and_it_journeys_in_finnish_and_swedish_pass_axe(server):
    base, _app = server
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            # The coordinator, in Finnish: groups, a municipality, a station, comparison, exports, notes.
            ctx = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True, locale="fi-FI",
                                      timezone_id="Europe/Helsinki")
            page = ctx.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{base}/login")
            expect(page.locator("html")).to_have_attribute("lang", "fi")  # from Accept-Language
            _sign_in(page, base, "coordinator", "fi")
            expect(page.locator("h1")).to_have_text("Kaikki asemat")
            expect(page.locator("tr[data-group=soite]")).to_contain_text("Keski-Pohjanmaan hyvinvointialue")
            page.select_option("form[data-testid=group-filter] select", "kokkola-city")
            page.click("form[data-testid=group-filter] button")
            expect(page.locator("tr[data-station]")).to_have_count(5)
            expect(page.locator("tr[data-station=ullava]")).to_contain_text("liian vähän vastauksia")
            page.click("tr[data-station=kalvia] a")
            expect(page.locator("h1")).to_have_text("Kälviän terveysasema")
            shot(page, "dashboard-station-fi")
            phone = _pair(browser, ctx)
            for path in ("/?range=30d", "/?range=30d&group=kokkola-city", "/stations/kalvia?range=30d",
                         "/compare?range=30d&station=kalvia&station=kokkola", "/exports", "/notes", "/devices",
                         "/devices/kalvia-1", "/status"):
                _check(page, phone, base, path, problems)
            phone.goto(f"{base}/?range=30d")
            # On a phone the overview keeps its satisfaction column, inside a scrollable region.
            expect(phone.locator("table.overview th").filter(has_text="Tyytyväisyys")).to_be_attached()
            sat = phone.locator("tr[data-station=kalvia] td").nth(3)
            sat.scroll_into_view_if_needed()
            expect(sat).to_be_visible()
            shot(phone, "dashboard-overview-phone-fi")
            phone.context.close()
            ctx.close()

            # Staff of Kruunupyy's stations, in Swedish.
            ctx = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True, locale="sv-FI")
            page = ctx.new_page()
            page.set_default_timeout(15_000)
            _sign_in(page, base, "skotare", "sv")
            expect(page.locator("h1")).to_have_text("Alla stationer")
            expect(page.locator("tr[data-station]")).to_have_count(3)
            expect(page.locator("tr[data-station=kruunupyy]")).to_contain_text("Kronoby hälsostation")
            page.click("tr[data-station=teerijarvi] a")
            expect(page.locator("h1")).to_have_text("Terjärv hälsostation")
            phone = _pair(browser, ctx)
            for path in ("/?range=7d", "/stations/teerijarvi?range=30d", "/exports", "/devices"):
                _check(page, phone, base, path, problems)
            phone.context.close()
            ctx.close()

            # IT, in Finnish: devices, one kiosk, a station's settings, a station's names; the admin's users page.
            for user, paths in (("tuki", ("/", "/devices", "/devices/kalvia-1", "/stations/kalvia/config",
                                          "/manage/stations", "/manage/stations/kalvia")),
                                ("paakayttaja", ("/", "/users"))):
                ctx = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True, locale="fi-FI")
                page = ctx.new_page()
                page.set_default_timeout(15_000)
                _sign_in(page, base, user, "fi")
                if user == "tuki":  # the Swedish name of Kälviä, from the station list
                    page.click("nav a[href='/manage/stations']")
                    expect(page.locator("h1")).to_have_text("Asemat")
                    page.click("tr[data-station=kalvia] a")
                    expect(page.locator("h1")).to_contain_text("Kälviän terveysasema")
                    page.fill("input[name=name_sv]", "Kelviå vårdcentral")
                    page.click("form[data-testid=station-edit] button[type=submit]")
                    expect(page.locator("p.ok[role=status]")).to_have_text("Tallennettu.")
                    expect(page.locator("input[name=name_sv]")).to_have_value("Kelviå vårdcentral")
                    expect(page.locator("table[data-testid=station-history] tbody tr").first).to_contain_text("tuki")
                phone = _pair(browser, ctx)
                for path in paths:
                    _check(page, phone, base, path, problems)
                phone.context.close()
                ctx.close()
            ctx = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True)
            page = ctx.new_page()
            page.goto(f"{base}/login")
            problems += page_problems(page, "/login")
            assert axe_is_looking(page)  # an image without a text alternative is reported
            ctx.close()
        finally:
            browser.close()
    assert not problems, "\n".join(problems)


def test_device_figures_refresh_without_a_reload_and_keep_focus(server):
    base, app = server
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            ctx = browser.new_context(viewport={"width": 1366, "height": 768})
            ctx.add_init_script("window.PALAUTE_REFRESH_S = 1")
            page = ctx.new_page()
            page.set_default_timeout(15_000)
            _sign_in(page, base, "tuki", None)
            page.goto(f"{base}/devices")
            assert page.locator("meta[http-equiv=refresh]").count() == 0
            page.evaluate("() => { window.notReloaded = true; }")
            link = page.locator("a[href='/devices/kalvia-1']")
            link.focus()
            queue = page.locator("tr[data-device=kalvia-1] td").nth(5)
            before = queue.inner_text()
            store_batch(app.state.session_factory, [status_message(online=True, queue_depth=987,
                                                                   sent_at=datetime.now(UTC))])
            expect(queue).to_contain_text("987", timeout=10_000)
            assert before != queue.inner_text()
            assert page.evaluate("() => window.notReloaded === true")  # the same page, not a reload
            assert page.evaluate("() => document.activeElement.getAttribute('href')") == "/devices/kalvia-1"
        finally:
            browser.close()
