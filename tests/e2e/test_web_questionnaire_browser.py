"""The national questionnaire and the open comment on a phone: Chromium at 390x844 without
JavaScript answers them in fi, sv and en (radio groups by keyboard, choices by tapping), the
answers are stored item by item and the comment masked; axe-core finds no serious or critical
problem on the questionnaire, the comment step and the coordinators' pages for them.

The server runs in this process (uvicorn in a thread, SQLite, no broker). axe-core is vendored
in tests/support/vendor and injected into a second, JavaScript-enabled page of the same URL.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect, sync_playwright
from sqlalchemy import select

from fleet_server.app import create_app
from fleet_server.auth.service import add_user
from fleet_server.channels import web_settings
from fleet_server.channels.web_survey import survey_path
from fleet_server.core.settings import load_settings
from fleet_server.models import QuestionnaireAnswer, QuestionnaireResponse, Station, WebComment
from tests.support.browser_support import axe_violations, launch, serve_in_thread, shot, too_wide

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]  # 3 languages and 8 axe runs; slow on a loaded machine

PHONE = {"width": 390, "height": 844}
PASSWORD = "a long questionnaire password"
TREATED = {"fi": "Minua kohdeltiin arvostavasti.", "sv": "Jag blev bemött med respekt.",
           "en": "I was treated with respect."}
AGREE = {"fi": "Täysin samaa mieltä", "sv": "Helt av samma åsikt", "en": "Strongly agree"}
CANNOT = {"fi": "En osaa sanoa / ei koske minua", "sv": "Kan inte säga / gäller inte mig",
          "en": "Cannot say / does not apply to me"}
SEND = {"fi": "Lähetä", "sv": "Skicka", "en": "Send"}
THANKS = {"fi": "Kiitos palautteestasi!", "sv": "Tack för din respons!", "en": "Thank you for your feedback!"}


@pytest.fixture
def server(tmp_path):
    settings = load_settings(environ={}, database_url=f"sqlite:///{tmp_path / 'palaute.db'}", mode="development",
                             min_responses=1)
    app = create_app(settings, start_ingest=False)
    with serve_in_thread(app) as base:
        with app.state.session_factory() as s:
            s.add_all([Station(id="kalvia", name="Kälviän terveysasema", name_sv="Kelviå hälsostation",
                               name_en="Kälviä health station"), Station(id="lohtaja", name="Lohtajan terveysasema")])
            s.flush()
            now = datetime.now(UTC)
            web_settings.set_choices(s, "kalvia", questionnaire=True, comments=True, by="test", now=now)
            web_settings.set_choices(s, "lohtaja", questionnaire=False, comments=True, by="test", now=now)
            add_user(s, "koordinaattori", "coordinator", PASSWORD)
            s.commit()
        yield base, app


def _axe(browser, url: str, problems: list[str], storage_state=None) -> None:
    ctx = browser.new_context(viewport=PHONE, bypass_csp=True, storage_state=storage_state)
    page = ctx.new_page()
    page.goto(url)
    problems += [f"{url.split('?')[0]}: {v}" for v in axe_violations(page)] + too_wide(page, url, PHONE["width"])
    ctx.close()


def test_a_phone_answers_the_national_questionnaire_in_each_language_and_axe_finds_nothing(server):
    base, app = server
    link = base + survey_path(app.state.web_links, "kalvia")
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            for lang in ("fi", "sv", "en"):
                ctx = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                          java_script_enabled=False)
                page = ctx.new_page()
                page.goto(f"{link}&lang={lang}")
                assert page.locator("html").get_attribute("lang") == lang
                # Each item is a group named by its question (fieldset + legend).
                group = page.get_by_role("group", name=TREATED[lang])
                expect(group).to_be_visible()
                # The 0-10 question by keyboard: Tab into the group, arrows choose, as in any radio group.
                page.keyboard.press("Tab")
                while page.evaluate("document.activeElement.name") != "thl.recommend":
                    page.keyboard.press("Tab")
                page.keyboard.press("Space")
                for _ in range(9):
                    page.keyboard.press("ArrowRight")
                assert page.locator("input[name='thl.recommend']:checked").get_attribute("value") == "9"
                # Statements by tapping their large labels.
                agree = group.get_by_label(AGREE[lang])
                box = group.locator("label.choice").first.bounding_box()
                assert box and box["height"] >= 44 and box["width"] >= 44, "a large target (WCAG 2.5.5)"
                for point in page.locator("fieldset[data-item='thl.recommend'] label.point").all():
                    b = point.bounding_box()
                    assert b and b["height"] >= 44 and b["width"] >= 44, "every 0-10 point is a large target"
                agree.tap()
                page.get_by_role("group", name={"fi": "Koin oloni turvalliseksi hoidon tai palvelun aikana.",
                                                "sv": "Jag kände mig trygg under vården eller servicen.",
                                                "en": "I felt safe during the care or service."}[lang]
                                 ).get_by_label(CANNOT[lang]).tap()
                page.locator("textarea[name=comment]").fill(f"{lang}: soittakaa 040 123 4567")
                shot(page, f"web-questionnaire-{lang}")
                page.get_by_role("button", name=SEND[lang]).tap()
                expect(page.get_by_text(THANKS[lang])).to_be_visible()
                ctx.close()
            # axe: the questionnaire, the comment step after a smiley, and the coordinators' pages.
            _axe(browser, f"{link}&lang=fi", problems)
            _axe(browser, f"{link}&lang=sv", problems)
            smiley = browser.new_context(viewport=PHONE, java_script_enabled=False)
            sp = smiley.new_page()
            sp.goto(base + survey_path(app.state.web_links, "lohtaja") + "&lang=fi")
            sp.locator("button.face-4").click()
            sp.locator("button.skip").click()
            expect(sp.locator("textarea[name=comment]")).to_be_visible()
            comment_html = sp.content()
            smiley.close()
            ctx = browser.new_context(viewport=PHONE, bypass_csp=True)
            page = ctx.new_page()
            page.set_content(comment_html)
            problems += [f"comment step: {v}" for v in axe_violations(page)]
            page.goto(f"{base}/login")
            page.fill("input[name=username]", "koordinaattori")
            page.fill("input[name=password]", PASSWORD)
            page.click("form[action='/login'] button[type=submit]")
            expect(page.locator("form.signout")).to_be_visible()
            state = ctx.storage_state()
            ctx.close()
            for path in ("/stations/kalvia/questionnaire?range=today", "/stations/kalvia/comments?range=today",
                         "/stations/kalvia/web", "/stations/kalvia"):
                _axe(browser, base + path, problems, storage_state=state)
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
    with app.state.session_factory() as s:
        stored = [(r.lang, dict(s.execute(select(QuestionnaireAnswer.question_id, QuestionnaireAnswer.value).where(
            QuestionnaireAnswer.response_id == r.id)).all())) for r in s.scalars(
            select(QuestionnaireResponse).order_by(QuestionnaireResponse.id))]
        assert stored == [(lang, {"thl.recommend": 9, "thl.treatment": 5, "thl.safety": None})
                          for lang in ("fi", "sv", "en")]
        assert sorted(s.scalars(select(WebComment.text))) == [f"{lang}: soittakaa [PHONE]" for lang in ("en", "fi", "sv")]
