"""The monthly report in headless Chromium: reached from the station page, axe-clean, no wider
than a phone, printed by the browser on A4 without the dashboard's menus (the print stylesheet),
and subscribed to by a station manager in Swedish."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.test_dashboard_journeys import _check, _pair, _sign_in, server  # noqa: F401
from tests.support.browser_support import launch, shot
from tests.support.pdf import pdf_pages, pdf_text

pytestmark = pytest.mark.browser


def test_coordinator_reads_prints_and_staff_subscribe_in_finnish_and_swedish(server):  # noqa: F811
    base, _app = server
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            ctx = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True, locale="fi-FI",
                                      timezone_id="Europe/Helsinki")
            page = ctx.new_page()
            page.set_default_timeout(15_000)
            _sign_in(page, base, "coordinator", "fi")
            page.goto(f"{base}/stations/kalvia?range=30d")
            page.click("a[data-testid=station-report]")
            expect(page.locator("article.report h1")).to_have_text("Kälviän terveysasema")
            expect(page.locator(".report .kicker")).to_contain_text("KUUKAUSIRAPORTTI".lower(), ignore_case=True)
            expect(page.locator("svg.chart")).to_have_count(2)
            shot(page, "report-station-fi")
            page.emulate_media(media="print")
            expect(page.locator("header.top")).to_be_hidden()  # the print stylesheet drops the menus
            expect(page.locator("nav.report-tools")).to_be_hidden()
            printed = page.pdf(format="A4", print_background=True)
            text = pdf_text(printed)
            assert "Kälviän terveysasema" in text and "Tyytyväisyys" in text and "Kirjaudu ulos" not in text
            assert pdf_pages(printed) <= 3
            page.emulate_media(media="screen")
            phone = _pair(browser, ctx)
            for path in ("/reports", "/reports/stations/kalvia", "/reports/groups/kokkola-city",
                         "/reports/groups/soite?granularity=week", "/reports/stations/ullava"):
                _check(page, phone, base, path, problems)
            phone.context.close()
            ctx.close()

            # A station manager of Kruunupyy's stations, in Swedish, subscribes an address to its report.
            ctx = browser.new_context(viewport={"width": 1366, "height": 768}, bypass_csp=True, locale="sv-FI")
            page = ctx.new_page()
            page.set_default_timeout(15_000)
            _sign_in(page, base, "skotare", "sv")
            page.click("nav a[href='/reports']")
            expect(page.locator("h1")).to_have_text("Månadsrapporter")
            page.fill("form[data-testid=subscribe-form] input[name=email]", "chef@kronoby.example")
            page.select_option("form[data-testid=subscribe-form] select[name=scope]", "group:kruunupyy-municipality")
            page.click("form[data-testid=subscribe-form] button[type=submit]")
            expect(page.locator("[role=status]")).to_contain_text("Prenumerationen är sparad")
            expect(page.locator("table[data-testid=subscriptions]")).to_contain_text("chef@kronoby.example")
            expect(page.locator("table[data-testid=subscriptions]")).to_contain_text("Svenska")
            phone = _pair(browser, ctx)
            _check(page, phone, base, "/reports", problems)
            phone.context.close()
            ctx.close()
        finally:
            browser.close()
    assert problems == [], problems
