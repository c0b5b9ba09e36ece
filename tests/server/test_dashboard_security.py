"""Privacy and security of the dashboard and its API: sign-out on the server, no raw counts,
embedded JSON that cannot end its script block, error pages, bounded parameters, config no-ops."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.auth.sessions import SESSION_COOKIE
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import store_batch
from fleet_server.models import Station, StationConfigVersion
from tests.support.auth_helpers import bearer, make_user, page_csrf, sign_in
from tests.support.server_factories import event, events_message


@pytest.fixture
def client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        yield c


def _answers(client, station="kalvia", values=(4, 4, 3, 1, 2, 4), one_hour=False):
    """``values`` a minute apart up to an hour ago; ``one_hour``: seconds apart within one clock hour."""
    base = (datetime.now(UTC) - timedelta(hours=1)).replace(second=0, microsecond=0)
    step = timedelta(minutes=1)
    if one_hour:
        base, step = base.replace(minute=30), timedelta(seconds=1)
    store_batch(client.app.state.session_factory, [
        events_message([event(station=station, device=f"{station}-1", value=v, ts=base - i * step)
                        for i, v in enumerate(values)], station=station, device=f"{station}-1"),
    ])


def test_a_saved_cookie_is_refused_after_sign_out(client):
    make_user(client.app.state.session_factory, "coord", "coordinator")
    sign_in(client, "coord")
    saved = client.cookies[SESSION_COOKIE]
    csrf = page_csrf(client.get("/").text)
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, saved)  # someone kept a copy of the cookie
    assert client.get("/api/v1/results/overview").status_code == 401
    assert client.get("/api/v1/exports/events.csv", follow_redirects=False).status_code == 401
    page = client.get("/", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_raw_count_summary_for_any_time_window_is_gone(client):
    _answers(client, values=(4,))
    client.headers.update(bearer(client, "coordinator"))
    gone = client.get("/api/v1/stations/kalvia/summary",
                      params={"from": "2020-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"})
    assert gone.status_code == 404
    assert "/api/v1/stations/{station_id}/summary" not in client.get("/openapi.json").json()["paths"]


def test_station_list_hides_the_counts_of_a_station_with_few_answers(client):
    _answers(client, "kalvia")
    _answers(client, "lohtaja", values=(1,))
    client.headers.update(bearer(client, "coordinator"))
    stations = {s["station_id"]: s for s in client.get("/api/v1/stations").json()}
    assert stations["kalvia"]["total"] == 6 and stations["kalvia"]["suppressed"] is False
    lohtaja = stations["lohtaja"]
    assert lohtaja["suppressed"] is True
    assert (lohtaja["total"], lohtaja["counts"], lohtaja["satisfaction"], lohtaja["followups"]) == (None,) * 4


EVIL = '</script><script>alert(1)</script> & <b>'


@pytest.mark.parametrize("path", ["/stations/kalvia?range=7d", "/compare?station=kalvia&range=7d"])
def test_a_station_name_cannot_end_the_embedded_chart_data(client, path):
    _answers(client)
    with client.app.state.session_factory() as s:
        s.get(Station, "kalvia").name = EVIL
        s.commit()
    client.headers.update(bearer(client, "coordinator"))
    html = client.get(path).text
    (block,) = re.findall(r'<script type="application/json" id="[a-z-]+">(.*?)</script>', html, re.DOTALL)
    assert "<" not in block and ">" not in block and "&" not in block
    data = json.loads(block)
    if path.startswith("/compare"):  # the chart legend carries the name: JSON.parse gives it back whole
        assert data["series"][0]["name"] == EVIL


def test_a_refused_page_is_a_page_that_names_the_permission(client):
    make_user(client.app.state.session_factory, "nurse", "staff", "kalvia")
    sign_in(client, "nurse")
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    page = client.get("/api/v1/exports/events.csv?range=7d", headers=browser)
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "download individual answers" in page.text and "publish notes" not in page.text
    assert 'data-testid="error-page"' in page.text
    other = client.get("/stations/lohtaja", headers=browser)
    assert other.status_code == 403 and "<html" in other.text and "lohtaja" in other.text
    script = client.get("/api/v1/exports/events.csv?range=7d", headers={"Accept": "application/json"})
    assert script.status_code == 403 and "download individual answers" in script.json()["detail"]


def test_dead_letter_offsets_beyond_what_a_database_takes_are_refused(client):
    client.headers.update(bearer(client, "it"))
    assert client.get("/api/v1/dead-letters", params={"offset": 10**30}).status_code == 422
    assert client.get("/api/v1/dead-letters", params={"offset": 2**63}).status_code == 422
    assert client.get("/api/v1/dead-letters/99999999999999999999").status_code == 422
    assert client.get("/api/v1/dead-letters", params={"offset": 10}).status_code == 200


@pytest.mark.parametrize("to", ["0.5", "1", "2026-13-01", "yesterday"])
def test_a_period_end_that_is_not_a_date_is_refused(client, to):
    client.headers.update(bearer(client, "coordinator"))
    r = client.get("/api/v1/results/overview", params={"range": "custom", "from": "2026-11-01", "to": to})
    assert r.status_code == 400 and "to" in r.json()["detail"]


def test_an_empty_or_unchanged_defaults_change_makes_no_new_version(client):
    client.headers.update(bearer(client, "it"))
    with client.app.state.session_factory() as s:
        s.add(Station(id="kalvia", name="Kälviä"))
        s.commit()
    empty = client.put("/api/v1/fleet/config/defaults", json={"publish": False})
    assert empty.status_code == 422 and "nothing to change" in empty.json()["detail"]
    first = client.put("/api/v1/fleet/config/defaults", json={"changes": {"languages": ["fi", "sv"]}, "publish": False})
    assert first.status_code == 200 and first.json()["unchanged"] is False
    again = client.put("/api/v1/fleet/config/defaults", json={"changes": {"languages": ["fi", "sv"]}})
    assert again.status_code == 200 and again.json() == {"saved_version_row": None, "unchanged": True, "published": []}
    with client.app.state.session_factory() as s:
        assert s.query(StationConfigVersion).count() == 1


def test_openapi_declares_how_to_authenticate(client):
    client.headers.update(bearer(client, "it"))
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["token"] == {**schemes["token"], "type": "http", "scheme": "bearer"}
    assert schemes["session"]["in"] == "cookie"
    assert {"token": []} in spec["paths"]["/api/v1/results/overview"]["get"]["security"]


def _contrast(rgb_a, rgb_b) -> float:
    def lum(rgb):
        def ch(c):
            c = c / 255
            return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
        r, g, b = (ch(c) for c in rgb)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    hi, lo = sorted((lum(rgb_a), lum(rgb_b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_every_heatmap_cell_is_readable(client):
    """WCAG AA (4.5:1) between a heatmap cell's number and its shading, the busiest cell included.
    In one clock hour: spread over two, 44 + 3 hides both cells (3 = the week's 47 minus 44)."""
    _answers(client, values=(4,) * 40 + (3,) * 7, one_hour=True)
    client.headers.update(bearer(client, "coordinator"))
    html = client.get("/stations/kalvia?range=7d").text
    cells = re.findall(r'style="background: rgba\((\d+),(\d+),(\d+),([\d.]+)\); color:#([0-9a-f]{6})"', html)
    assert cells
    for r, g, b, alpha, fg in cells:
        a = float(alpha)
        bg = tuple(round(255 - a * (255 - int(c))) for c in (r, g, b))
        text = tuple(int(fg[i:i + 2], 16) for i in (0, 2, 4))
        assert _contrast(bg, text) >= 4.5, (bg, text)
