"""The monthly report of a station or a group: a printable page and the same as an A4 PDF, with
the month's figures under the small-count rule (cascaded like the overview), charts drawn as
SVG on the server, follow-up reasons and the notes shown, in the reader's language."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fleet_server.app import create_app
from fleet_server.core import i18n
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import store_batch
from fleet_server.models import Station, StationGroup, StationNote, User
from fleet_server.results import monthly_report
from fleet_server.results.figures import LOCAL_TZ
from fleet_server.web.report_charts import _contrast, cell_colours
from tests.support.auth_helpers import bearer, make_user, sign_in
from tests.support.pdf import pdf_text, pdf_to_png
from tests.support.server_factories import event, events_message

NOVEMBER = date(2026, 11, 1)
# kalvia: 60 answers over November (45 happy); koivuhaka: 20; ullava: 3 (too few) -> the cascade
# hides Ullava and, so Kokkola's total cannot give it away, Koivuhaka (the next smallest) too.
PLAN = {"kalvia": [4, 4, 3, 1] * 15, "koivuhaka": [4, 3, 2, 2] * 5, "ullava": [4, 4, 1]}
NAMES = {"kalvia": ("Kälviä", "Kälviän terveysasema", "Kelviå hälsostation"),
         "koivuhaka": ("Koivuhaka", "Koivuhaan terveysasema", "Koivuhaka hälsostation"),
         "ullava": ("Ullava", "Ullavan terveysasema", "Ullava hälsostation")}


def _at(day: int, hour: int) -> datetime:
    return datetime.combine(date(2026, 11, day), time(hour), LOCAL_TZ).astimezone(UTC)


def seed(factory) -> None:
    messages = []
    for sid, values in PLAN.items():
        events = [event(station=sid, device=f"{sid}-1", value=v, ts=_at(2 + i % 27, 8 + i % 9))
                  for i, v in enumerate(values)]
        if sid == "kalvia":  # five follow-ups after the unhappy faces: "waiting time"
            events += [event(station=sid, device=f"{sid}-1", kind="followup", value="waiting-time",
                             question_id="what-went-wrong", ts=e.ts, answer_to=e.event_id)
                       for e in events if e.value == 1][:5]
        messages.append(events_message(events, station=sid, device=f"{sid}-1"))
    store_batch(factory, messages)
    with factory() as s:
        s.add(StationGroup(id="soite", kind="county", name="Soite", name_sv="Soite"))
        s.flush()
        s.add(StationGroup(id="kokkola", parent_id="soite", kind="municipality", name="Kokkola", name_sv="Karleby"))
        s.flush()
        for sid, (name, fi, sv) in NAMES.items():
            st = s.get(Station, sid)
            st.name, st.name_fi, st.name_sv, st.group_id = name, fi, sv, "kokkola"
        s.add(StationNote(station_id="kalvia", text_fi="Lisäsimme iltavastaanoton tiistaisin.",
                          text_sv="Vi har lagt till kvällsmottagning på tisdagar.", text_en="Evening clinic on Tuesdays.",
                          starts=date(2026, 11, 10), ends=date(2026, 12, 20), created_by="c", updated_by="c",
                          first_published_at=_at(9, 12), published_revision=1))
        s.add(StationNote(station_id="kalvia", text_fi="Lokakuun tiedote.", starts=date(2026, 10, 1),
                          ends=date(2026, 10, 31), created_by="c", updated_by="c",
                          first_published_at=_at(1, 0) - timedelta(days=31), published_revision=1))
        s.commit()


@pytest.fixture
def client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        seed(c.app.state.session_factory)
        yield c


def test_station_report_page_in_finnish_has_the_months_figures_interval_reasons_and_notes(client):
    client.headers.update(bearer(client, "coordinator"))
    html = client.get("/reports/stations/kalvia?month=2026-11", headers={"Accept-Language": "fi"}).text
    assert "<h1>Kälviän terveysasema</h1>" in html and "marraskuu 2026" in html
    assert re.search(r'data-testid="report-total">60<', html)
    assert re.search(r'data-testid="report-satisfaction">75\u00a0%<', html)  # 45 of 60
    low, high = (round(x * 100) for x in monthly_report.grouping.wilson(45, 60))
    assert f"{low}\u00a0%–{high}\u00a0%" in html
    assert "<svg" in html and "<script" not in html.split('data-testid="report"')[1].split("</article>")[0]
    assert "Lisäsimme iltavastaanoton tiistaisin." in html and "Lokakuun tiedote." not in html
    reasons = re.search(r'data-testid="report-followups-what-went-wrong">(.*?)</table>', html, re.DOTALL).group(1)
    assert ">5<" in reasons
    assert 'href="/reports/stations/kalvia/pdf?month=2026-11' in html


def test_the_station_page_links_to_its_monthly_report(client):
    client.headers.update(bearer(client, "coordinator"))
    html = client.get("/stations/kalvia?range=30d").text
    assert 'href="/reports/stations/kalvia"' in html and 'href="/reports/stations/kalvia/pdf"' in html
    assert 'href="/reports/groups/kokkola"' in client.get("/?range=30d&group=kokkola").text


def test_the_cascade_hides_a_second_station_in_its_own_report_too(client):
    client.headers.update(bearer(client, "coordinator"))
    group = client.get("/reports/groups/kokkola?month=2026-11").text
    members = dict(re.findall(r'<tr data-member="([a-z]+)">(.*?)</tr>', group, re.DOTALL))
    assert "too few responses" in members["ullava"] and "too few responses" in members["koivuhaka"]
    assert ">83<" in group  # Kokkola's total: 60 + 20 + 3, shown
    # Koivuhaka's own report must not print the 20 that Kokkola's total minus Kälviä would turn into Ullava's 3.
    own = client.get("/reports/stations/koivuhaka?month=2026-11").text
    assert re.search(r'data-testid="report-total"><span class="too-few"', own)
    assert "Total 20." not in own and "Total <span class=\"too-few\"" in own
    with client.app.state.session_factory() as s, i18n.using("en"):
        report = monthly_report.build(s, monthly_report.station_scope(s, "koivuhaka"), NOVEMBER, 5)
    assert report.trend_total is None and report.heatmap_total is None
    assert sum(t["dist"]["total"] or 0 for t in report.trend) < 20  # the days do not add up to it either


def test_pdf_in_swedish_reads_back_with_names_figures_hidden_ones_and_draws_the_charts(client, tmp_path):
    client.headers.update(bearer(client, "coordinator"))
    r = client.get("/reports/groups/kokkola/pdf?month=2026-11", headers={"Accept-Language": "sv"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert 'filename="palaute-group-kokkola-2026-11.pdf"' in r.headers["content-disposition"]
    text = pdf_text(r.content)
    assert "Karleby" in text and "november 2026" in text and "MÅNADSRAPPORT" in text.upper()
    assert "Ullava hälsostation" in text and "för få svar" in text
    assert "Vi har lagt till kvällsmottagning på tisdagar." in text
    pages = pdf_to_png(r.content, tmp_path)
    image = Image.open(pages[0]).convert("RGB")
    width, height = image.size
    assert abs(height / width - 297 / 210) < 0.01  # A4 portrait
    blues = sum(1 for px in image.get_flattened_data() if px[2] > 150 and px[0] < 60)  # the bars and heatmap cells
    assert blues > 2000


def test_staff_read_their_own_stations_report_only(client):
    make_user(client.app.state.session_factory, "nurse", "staff", "kalvia")
    sign_in(client, "nurse")
    assert client.get("/reports/stations/kalvia?month=2026-11").status_code == 200
    assert client.get("/reports/stations/ullava?month=2026-11").status_code == 403
    assert client.get("/reports/groups/kokkola/pdf?month=2026-11").status_code == 403
    index = client.get("/reports").text
    assert "/reports/stations/kalvia" in index and "/reports/stations/ullava" not in index


def _report_links(html: str) -> set[str]:
    return set(re.findall(r'href="(/reports/[^"]+)"', html))


def test_the_overview_links_staff_of_one_station_only_to_reports_they_may_open(client):
    make_user(client.app.state.session_factory, "nurse", "staff", "kalvia")
    sign_in(client, "nurse")
    links = _report_links(client.get("/?range=30d&group=kokkola").text)
    assert links == {"/reports/stations/kalvia", "/reports/stations/kalvia/pdf"}
    assert all(client.get(link).status_code == 200 for link in links)


def test_the_overview_links_staff_of_a_group_to_its_report_and_not_to_the_countys(client):
    make_user(client.app.state.session_factory, "manager", "staff", "kalvia")
    with client.app.state.session_factory() as s:
        s.add(Station(id="kruunupyy", name="Kruunupyy", group_id="soite"))
        user = s.query(User).filter_by(username="manager").one()
        user.group_id, user.station_id = "kokkola", None
        s.commit()
    sign_in(client, "manager")
    assert _report_links(client.get("/?range=30d&group=kokkola").text) == {
        "/reports/groups/kokkola", "/reports/groups/kokkola/pdf"}
    assert client.get("/reports/groups/kokkola").status_code == 200
    assert _report_links(client.get("/?range=30d&group=soite").text) == set()  # it holds a station not theirs
    assert client.get("/reports/groups/soite").status_code == 403


def test_staff_given_a_group_read_its_report(client):
    make_user(client.app.state.session_factory, "manager", "staff", "kalvia")
    with client.app.state.session_factory() as s:
        user = s.query(User).filter_by(username="manager").one()
        user.group_id, user.station_id = "kokkola", None
        s.commit()
    sign_in(client, "manager")
    assert client.get("/reports/groups/kokkola?month=2026-11").status_code == 200
    assert client.get("/reports/groups/soite?month=2026-11").status_code == 200  # nothing else under it
    assert "/reports/groups/kokkola" in client.get("/reports").text


def test_a_month_not_begun_is_refused(client):
    client.headers.update(bearer(client, "coordinator"))
    assert client.get("/reports/stations/kalvia?month=2999-01").status_code == 400


def test_report_weeks_and_zero_days_are_shown_not_hidden(client):
    with client.app.state.session_factory() as s, i18n.using("en"):
        scope = monthly_report.station_scope(s, "kalvia")
        report = monthly_report.build(s, scope, NOVEMBER, 5, "week")
        daily = monthly_report.build(s, scope, NOVEMBER, 5, "day")
    assert [t["short"] for t in report.trend][:2] == ["wk 44", "wk 45"]
    assert daily.trend[0]["dist"]["total"] == 0  # 1 November: nobody answered, shown as 0
    shown = [t["dist"]["total"] for t in daily.trend if t["dist"]["total"] is not None]
    assert sum(shown) < 60 and daily.trend_total == 60  # small days hidden against the total


def test_heatmap_text_contrasts_with_its_cell_at_every_shade():
    for step in range(0, 101, 5):
        fill, ink = cell_colours(step / 100)
        rgb = [int(fill[i:i + 2], 16) for i in (1, 3, 5)]
        other = [int(ink[i:i + 2], 16) for i in (1, 3, 5)]
        assert _contrast(rgb, other) >= 4.5, (step, fill, ink)


def test_the_demo_console_table_shows_no_satisfaction_for_three_answers(client):
    from fleet_server.devtools.demo import console_rows

    client.headers.update(bearer(client, "coordinator"))
    stations = client.get("/api/v1/stations").json()
    rows = {r[0]: r for r in console_rows(stations, [{"station_id": "ullava", "online": True}])}
    assert rows["Ullava"] == ("Ullava", "1", "too few", "-")  # 3 answers: neither a count nor a share
    assert rows["Kälviä"][2] == "60" and rows["Kälviä"][3] == "75\u00a0%"


def test_the_demo_console_speaks_the_language_it_is_given_or_the_locales(client):
    from fleet_server.core import i18n
    from fleet_server.core.i18n import console_lang
    from fleet_server.devtools.demo import console_rows

    client.headers.update(bearer(client, "coordinator"))
    stations = client.get("/api/v1/stations").json()
    with i18n.using("sv"):
        rows = {r[0]: r for r in console_rows(stations, [])}
    assert rows["Ullava"][2] == "för få"
    assert console_lang({"LANG": "sv_FI.UTF-8"}) == "sv"
    assert console_lang({"PALAUTE_LANG": "fi", "LANG": "sv_FI.UTF-8"}) == "fi"
    assert console_lang({"LC_ALL": "fi_FI.UTF-8", "LANG": "en_GB.UTF-8"}) == "fi"
    assert console_lang({"LANG": "C.UTF-8"}) == console_lang({}) == "en"
