"""The results dashboard: pages per role, the small-count rule on pages, periods, and no anonymous access."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.auth.setup import iter_routes
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import store_batch
from fleet_server.results.figures import today_local
from tests.support.auth_helpers import bearer, make_user, sign_in
from tests.support.server_factories import answer_day, answered_at, event, events_message, status_message

ANSWERED = answered_at()  # seed's answers, all on the local day TODAY names
TODAY = answer_day(ANSWERED)


def _now_minus(hours: float) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


@pytest.fixture
def app_client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        yield c


def seed(client):
    """kalvia: 12 answers today (9 happy) + 2 repeated presses + 1 out of hours; lohtaja: 3 answers; ullava: none."""
    base = ANSWERED
    kalvia = [event(value=v, ts=base - timedelta(minutes=i)) for i, v in enumerate((4, 4, 4, 4, 3, 3, 3, 3, 3, 1, 2, 2))]
    kalvia += [event(value=1, ts=base, flags=("burst",)), event(value=1, ts=base, flags=("burst",))]
    kalvia += [event(value=4, ts=base, flags=("out_of_hours",))]
    wrong = event(kind="followup", value="waiting-time", question_id="what-went-wrong", ts=base,
                  answer_to=kalvia[9].event_id)
    lohtaja = [event(station="lohtaja", device="lohtaja-1", value=v, ts=base) for v in (4, 4, 1)]
    store_batch(
        client.app.state.session_factory,
        [
            events_message(kalvia + [wrong]),
            events_message(lohtaja, station="lohtaja", device="lohtaja-1"),
            events_message([event(station="ullava", device="ullava-1", value=3, ts=base - timedelta(days=40))],
                           station="ullava", device="ullava-1"),
            status_message(online=True),
        ],
    )


def test_coordinator_overview_lists_every_station_with_small_counts_hidden(app_client):
    seed(app_client)
    app_client.headers.update(bearer(app_client, "coordinator"))
    page = app_client.get(f"/?{TODAY}")
    assert page.status_code == 200
    html = page.text
    rows = dict(re.findall(r'<tr data-station="([a-z-]+)">(.*?)</tr>', html, re.DOTALL))
    assert set(rows) == {"kalvia", "lohtaja", "ullava"}
    assert ">12<" in rows["kalvia"] and "75\u00a0%" in rows["kalvia"]  # 9 of 12 counted answers are happy
    assert "15 presses in all" in rows["kalvia"]
    # lohtaja has 3 answers: no count, no percentage, no bar - just the words.
    assert "too few responses" in rows["lohtaja"] and "%" not in rows["lohtaja"].replace("responses", "")
    assert "sbar" not in rows["lohtaja"]


def test_overview_sorts_by_satisfaction_with_hidden_figures_last(app_client):
    seed(app_client)
    app_client.headers.update(bearer(app_client, "coordinator"))
    html = app_client.get(f"/?{TODAY}&sort=satisfaction&dir=desc").text
    order = re.findall(r'<tr data-station="([a-z-]+)">', html)
    assert order[0] == "kalvia" and set(order[1:]) == {"lohtaja", "ullava"}
    assert 'aria-sort="descending"' in html


def test_staff_see_only_their_own_station(app_client):
    seed(app_client)
    make_user(app_client.app.state.session_factory, "nurse", "staff", "kalvia")
    sign_in(app_client, "nurse")
    html = app_client.get(f"/?{TODAY}").text
    assert re.findall(r'<tr data-station="([a-z-]+)">', html) == ["kalvia"]
    assert app_client.get("/stations/kalvia").status_code == 200
    assert app_client.get("/stations/lohtaja").status_code == 403
    assert app_client.get("/api/v1/results/stations/lohtaja").status_code == 403
    assert [s["station_id"] for s in app_client.get("/api/v1/stations").json()] == ["kalvia"]
    assert app_client.get("/api/v1/devices", params={"station_id": "lohtaja"}).status_code == 403


def test_it_and_admin_get_no_results(app_client):
    seed(app_client)
    for role in ("it", "admin"):
        headers = bearer(app_client, role)
        home = app_client.get("/", headers=headers)
        assert home.status_code == 200 and "does not include feedback results" in home.text
        assert app_client.get("/stations/kalvia", headers=headers).status_code == 403
        assert app_client.get("/api/v1/stations", headers=headers).status_code == 403


def test_station_page_shows_breakdown_heatmap_followups_and_hides_small_cells(app_client):
    seed(app_client)
    app_client.headers.update(bearer(app_client, "coordinator"))
    page = app_client.get("/stations/kalvia?range=7d")
    assert page.status_code == 200
    html = page.text
    counted = re.search(r'<tr data-row="counted">(.*?)</tr>', html, re.DOTALL).group(1)
    assert ">12<" in counted
    # Repeated presses (2) and out of hours (1) are below 5: hidden, and so "all" is not 12+2+1 in plain sight.
    for row in ("repeated", "out_of_hours"):
        assert "too few responses" in re.search(rf'<tr data-row="{row}">(.*?)</tr>', html, re.DOTALL).group(1)
    heat = re.search(r'data-testid="heatmap">(.*?)</table>', html, re.DOTALL).group(1)
    assert "&lt;5" in heat  # cells below the minimum
    # The follow-up table exists, named in words from the survey (not ids); its 1 answer is hidden.
    assert "after 1" in html and "What went wrong?" in html and "I waited too long" in html
    followups = re.search(r'data-testid="followups-what-went-wrong">(.*?)</table>', html, re.DOTALL).group(1)
    assert ">1<" not in followups and "too few responses" in followups
    assert 'id="trend-data"' in html and "/static/vendor/chart.umd.min.js" in html


def test_station_page_weekly_trend_and_custom_range(app_client):
    seed(app_client)
    app_client.headers.update(bearer(app_client, "coordinator"))
    today = today_local()
    r = app_client.get(f"/stations/kalvia?range=custom&from={today - timedelta(days=20)}&to={today}&granularity=week")
    assert r.status_code == 200 and "wk " in r.text
    assert app_client.get("/stations/kalvia?range=custom&from=2026-13-01&to=x").status_code == 400
    assert app_client.get("/stations/nowhere").status_code == 404


def test_compare_page_puts_chosen_stations_side_by_side(app_client):
    seed(app_client)
    app_client.headers.update(bearer(app_client, "coordinator"))
    html = app_client.get("/compare?range=7d&station=kalvia&station=lohtaja").text
    assert 'id="compare-data"' in html and '"id": "kalvia"' in html and '"id": "lohtaja"' in html
    assert bearer(app_client, "staff", "kalvia") and app_client.get(
        "/compare", headers=bearer(app_client, "staff", "kalvia", name="staff2")).status_code == 200


def test_every_route_refuses_anonymous_callers(app_client):
    """Walk the app's routes: only the sign-in page (and its language), the health check and static files are open."""
    open_paths = {"/login", "/healthz", "/language"}  # /language: picking the sign-in page's language
    # The web survey behind a QR code is open by design: its signed link is checked instead
    # (tests/server/test_web_survey.py refuses a missing, forged or expired one).
    open_paths |= {"/s/{station_id}", "/s/{station_id}/followup", "/s/{station_id}/questionnaire",
                   "/s/{station_id}/comment"}
    # The public results pages are open by design; each is off until a coordinator turns it on
    # (tests/server/test_public_pages.py: off and unknown answer the same 404).
    open_paths |= {"/public", "/public/data.json", "/public/{kinds}/{entity_id}", "/public/{kinds}/{entity_id}/embed",
                   "/public/{kinds}/{entity_id}/data.json"}
    checked = 0
    for path, methods in iter_routes(app_client.app):
        if path.startswith("/static") or path in open_paths:
            continue
        url = re.sub(r"\{[^}]+\}", "x", path)
        for method in (methods or {"GET"}) - {"HEAD", "OPTIONS"}:
            r = app_client.request(method, url, follow_redirects=False)
            if path.startswith("/api/") or path in ("/openapi.json", "/docs"):
                assert r.status_code == 401, f"{method} {path} answered {r.status_code} without credentials"
            else:
                assert r.status_code in (303, 401, 403), f"{method} {path} answered {r.status_code} anonymously"
                if r.status_code == 303:
                    assert r.headers["location"].startswith("/login")
            checked += 1
    assert checked >= 10
    assert app_client.get("/healthz").status_code == 200
    assert app_client.get("/login").status_code == 200


def test_admin_adds_and_disables_users_and_revokes_tokens(app_client):
    from tests.support.auth_helpers import make_token, page_csrf

    factory = app_client.app.state.session_factory
    make_user(factory, "root", "admin")
    make_token(factory, "reporting", "coordinator")
    sign_in(app_client, "root")
    page = app_client.get("/users")
    assert page.status_code == 200 and 'data-token="reporting"' in page.text
    r = app_client.post("/users", data={"csrf_token": page_csrf(page.text), "username": "anna", "role": "coordinator",
                                        "password": "another long password"}, follow_redirects=False)
    assert r.status_code == 303
    bad = app_client.post("/users", data={"csrf_token": page_csrf(page.text), "username": "bob", "role": "staff",
                                          "password": "another long password"})
    assert bad.status_code == 400 and "give a station (or a group)" in bad.text
    bad = app_client.post("/users", headers={"Accept-Language": "sv"}, data={
        "csrf_token": page_csrf(page.text), "username": "bob", "role": "staff", "password": "short"})
    assert bad.status_code == 400 and "personalen ser en stations resultat" in bad.text  # the admin's language
    assert app_client.post("/users/anna/disable", data={"csrf_token": page_csrf(page.text)},
                           follow_redirects=False).status_code == 303
    assert app_client.post("/tokens/reporting/revoke", data={"csrf_token": page_csrf(page.text)},
                           follow_redirects=False).status_code == 303
    html = app_client.get("/users").text
    assert re.search(r'data-user="anna">.*?disabled', html, re.DOTALL) and "revoked" in html
    # Nobody else reaches it.
    assert app_client.get("/users", headers=bearer(app_client, "coordinator")).status_code == 403


# Who may read what: every results route, page and the spine's API, for every role.
ROLE_MATRIX = [
    # path, coordinator, staff of kalvia, it, admin
    ("/", 200, 200, 200, 200),  # it/admin get a home page without results
    ("/stations/kalvia", 200, 200, 403, 403),
    ("/stations/lohtaja", 200, 403, 403, 403),
    ("/compare", 200, 200, 403, 403),
    ("/exports", 200, 200, 403, 403),
    ("/notes", 200, 200, 403, 403),
    ("/users", 403, 403, 403, 200),
    ("/status", 200, 200, 403, 403),
    ("/api/v1/stations", 200, 200, 403, 403),
    ("/api/v1/devices", 200, 200, 200, 403),
    ("/api/v1/dead-letters", 403, 403, 200, 403),
    ("/api/v1/results/overview", 200, 200, 403, 403),
    ("/api/v1/results/stations/kalvia", 200, 200, 403, 403),
    ("/api/v1/results/stations/lohtaja", 200, 403, 403, 403),
    ("/api/v1/results/daily", 200, 200, 403, 403),
    ("/api/v1/exports/daily.csv", 200, 200, 403, 403),
    ("/api/v1/exports/events.csv", 200, 403, 403, 403),
    ("/openapi.json", 200, 200, 200, 200),
]


def test_every_role_gets_exactly_its_routes(app_client):
    seed(app_client)
    roles = {
        "coordinator": bearer(app_client, "coordinator"),
        "staff": bearer(app_client, "staff", "kalvia"),
        "it": bearer(app_client, "it"),
        "admin": bearer(app_client, "admin"),
    }
    wrong = []
    for path, *expected in ROLE_MATRIX:
        for (role, headers), want in zip(roles.items(), expected, strict=True):
            got = app_client.get(path, headers=headers).status_code
            if got != want:
                wrong.append(f"{role} GET {path}: {got}, expected {want}")
    assert not wrong, "\n".join(wrong)


def test_status_page_follows_the_small_count_rule(app_client):
    seed(app_client)
    html = app_client.get("/status", headers=bearer(app_client, "coordinator")).text
    lohtaja = re.search(r'data-station="lohtaja"(.*?)</tr>', html, re.DOTALL).group(1)
    assert "too few responses" in lohtaja and ">3<" not in lohtaja
    kalvia = re.search(r'data-station="kalvia"(.*?)</tr>', html, re.DOTALL).group(1)
    assert ">15<" in kalvia  # every smiley press, as the spine counts them
