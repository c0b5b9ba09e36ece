"""The web survey on a phone: Chromium at 390x844 answers it in fi, sv and en, with the keyboard
and with taps, and the answers appear in the station's results and exports as channel web.

The fleet server runs as its own process (``palaute-server serve``, SQLite, a private Mosquitto);
the link is the one a QR code holds (signed with the server's session secret). Prints how long a
web answer takes to show in the station's results.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import time

import httpx
import pytest
from itsdangerous import URLSafeTimedSerializer

from fleet_server.auth.service import create_token
from fleet_server.channels.web_survey import LinkSigner, survey_path
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.devtools.local_broker import free_port
from fleet_server.models import Station
from tests.support.browser_support import launch, shot

pytestmark = [pytest.mark.browser, pytest.mark.broker]

SECRET = "e2e-web-survey-" + "y" * 40
PHONE = {"width": 390, "height": 844}
THANKS = {"fi": "Kiitos palautteestasi!", "sv": "Tack för din respons!", "en": "Thank you for your feedback!"}
FACE = {"fi": "Erittäin tyytymätön", "sv": "Mycket missnöjd", "en": "Very unhappy"}
WAITED = {"fi": "Odotin liian kauan", "sv": "Jag väntade för länge", "en": "I waited too long"}


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
def server(broker, tmp_path, processes):
    db_url = f"sqlite:///{tmp_path / 'palaute.db'}"
    engine = make_engine(db_url)
    migrate(engine)
    with make_session_factory(engine)() as s:
        s.add(Station(id="kalvia", name="Kälviän terveysasema", name_sv="Kelviå hälsostation",
                      name_en="Kälviä health station"))
        s.flush()
        token = create_token(s, "e2e-coordinator", "coordinator").token
        s.commit()
    engine.dispose()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAUTE_")}
    env.update(PALAUTE_DATABASE_URL=db_url, PALAUTE_MQTT_URL=broker.url, PALAUTE_HTTP_PORT=str(port),
               PALAUTE_MQTT_CLIENT_ID="e2e-web-survey", PALAUTE_LOG_LEVEL="warning", PALAUTE_SESSION_SECRET=SECRET,
               PALAUTE_MIN_RESPONSES="1")  # three answers: shown, not hidden by the small-count rule
    proc = processes.start([sys.executable, "-m", "fleet_server.cli", "serve"], env=env, log=tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"

    def healthy():
        assert proc.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(healthy, 30, "the fleet server")
    return base, {"Authorization": f"Bearer {token}"}


def _web_answers(base: str, headers: dict) -> list[dict]:
    r = httpx.get(f"{base}/api/v1/exports/events.csv?range=today&lang=en", headers=headers, timeout=5)
    assert r.status_code == 200, r.text
    return [row for row in csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))) if row.get("channel") == "web"]


def _station_total(base: str, headers: dict) -> int | None:
    r = httpx.get(f"{base}/api/v1/results/stations/kalvia?range=today", headers=headers, timeout=5)
    return r.json()["all_presses"]["total"]


def test_a_phone_answers_the_web_survey_in_each_language_and_it_shows_in_the_results(server):
    from playwright.sync_api import sync_playwright

    base, headers = server
    link = base + survey_path(LinkSigner(URLSafeTimedSerializer(SECRET, salt="palaute.web-survey.v1"), 86400),
                              "kalvia")
    latencies = []
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            for n, lang in enumerate(("fi", "sv", "en"), start=1):
                context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                              locale={"fi": "fi-FI", "sv": "sv-FI", "en": "en-GB"}[lang],
                                              java_script_enabled=False)
                page = context.new_page()
                page.goto(link)
                assert page.locator("html").get_attribute("lang") == {"fi": "fi", "sv": "sv", "en": "en"}[lang]
                face = page.get_by_role("button", name=FACE[lang])
                box = face.bounding_box()
                assert box and box["height"] >= 44 and box["width"] >= 44, "a large target (WCAG 2.5.5)"
                if lang == "en":  # by keyboard: Tab to the first face, Enter
                    page.keyboard.press("Tab")
                    assert page.evaluate("document.activeElement.dataset.value") == "1"
                    page.keyboard.press("Enter")
                else:
                    face.tap()
                page.get_by_role("button", name=WAITED[lang]).wait_for()
                shot(page, f"web-survey-followup-{lang}")
                page.get_by_role("button", name=WAITED[lang]).tap()
                clicked = time.monotonic()
                page.get_by_text(THANKS[lang]).wait_for()
                _wait(lambda n=n: _station_total(base, headers) == n, 10, f"the {lang} answer in the station's figures")
                latencies.append(time.monotonic() - clicked)
                assert len(_web_answers(base, headers)) == 2 * n
                assert context.cookies() == [], "the survey sets no cookies"
                context.close()
        finally:
            browser.close()
    rows = _web_answers(base, headers)
    assert sorted((r["kind"], r["value"], r["option_id"], r["lang"]) for r in rows) == sorted(
        [("smiley", "1", "", lang) for lang in ("fi", "sv", "en")]
        + [("followup", "", "waiting-time", lang) for lang in ("fi", "sv", "en")])
    assert all(r["channel"] == "web" and r["device_id"] == "" for r in rows)
    detail = httpx.get(f"{base}/api/v1/results/stations/kalvia?range=today", headers=headers, timeout=5).json()
    assert detail["counted"]["counts"]["1"] == 3 and detail["counted"]["total"] == 3
    print(f"\nweb answer -> in the station's results: max {max(latencies) * 1000:.0f} ms, "
          f"mean {sum(latencies) / len(latencies) * 1000:.0f} ms (3 answers, fi/sv/en)")
