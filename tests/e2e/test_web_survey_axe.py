"""axe-core over the one-touch web survey on a phone (390x844): the choice page, the follow-up,
the thank-you and the expired-link page, in fi, sv and en; no serious or critical violation, and
nothing wider than the phone.

The server runs in this process (uvicorn in a thread, SQLite, no broker); the pages are reached
as a patient reaches them (the link a QR code holds, then taps), and axe-core (vendored in
tests/support/vendor) is injected into each page as it stands.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from fleet_server.app import create_app
from fleet_server.channels.web_survey import survey_path
from fleet_server.core.settings import load_settings
from fleet_server.models import Station
from tests.support.browser_support import launch, page_problems, serve_in_thread, shot

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
FACE = {"fi": "Erittäin tyytymätön", "sv": "Mycket missnöjd", "en": "Very unhappy"}
WAITED = {"fi": "Odotin liian kauan", "sv": "Jag väntade för länge", "en": "I waited too long"}
THANKS = {"fi": "Kiitos palautteestasi!", "sv": "Tack för din respons!", "en": "Thank you for your feedback!"}


@pytest.fixture
def server(tmp_path):
    settings = load_settings(environ={}, database_url=f"sqlite:///{tmp_path / 'palaute.db'}", mode="development")
    app = create_app(settings, start_ingest=False)
    with serve_in_thread(app) as base:
        with app.state.session_factory() as s:
            s.add(Station(id="kalvia", name="Kälviän terveysasema", name_sv="Kelviå hälsostation",
                          name_en="Kälviä health station"))
            s.commit()
        yield base, app


def _axe(page: Page, what: str, problems: list[str]) -> None:
    problems += page_problems(page, what, PHONE["width"])


def test_axe_finds_no_serious_problem_on_the_web_survey_pages_in_fi_sv_and_en(server):
    base, app = server
    link = base + survey_path(app.state.web_links, "kalvia")
    problems: list[str] = []
    seen: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            for lang in ("fi", "sv", "en"):
                ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                          bypass_csp=True)
                page = ctx.new_page()
                page.goto(f"{link}&lang={lang}")
                assert page.locator("html").get_attribute("lang") == lang
                _axe(page, f"choice ({lang})", problems)
                page.get_by_role("button", name=FACE[lang]).tap()
                expect(page.get_by_role("button", name=WAITED[lang])).to_be_visible()
                _axe(page, f"follow-up ({lang})", problems)
                page.get_by_role("button", name=WAITED[lang]).tap()
                expect(page.get_by_text(THANKS[lang])).to_be_visible()
                _axe(page, f"thank-you ({lang})", problems)
                shot(page, f"web-survey-thanks-{lang}")
                response = page.goto(f"{base}/s/kalvia?t=not-a-signed-link&lang={lang}")
                assert response is not None and response.status == 403
                assert page.locator("html").get_attribute("lang") == lang
                _axe(page, f"expired link ({lang})", problems)
                shot(page, f"web-survey-expired-{lang}")
                seen += [f"choice {lang}", f"follow-up {lang}", f"thank-you {lang}", f"expired {lang}"]
                ctx.close()
        finally:
            browser.close()
    assert len(seen) == 12
    assert problems == [], "\n".join(problems)
