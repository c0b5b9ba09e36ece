"""Open comments: coordinators only, never published, exported only on purpose, and no module
outside the comment's own path can read them by accident."""

from __future__ import annotations

import ast
import csv
import io
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.auth.roles import Principal, Role
from fleet_server.channels import comments
from fleet_server.core.errors import CommentsForbidden
from fleet_server.core.settings import load_settings
from tests.support.auth_helpers import bearer, ensure_station, make_user, page_csrf, sign_in
from tests.support.server_factories import answer_day, answered_at

ROOT = Path(__file__).resolve().parents[2]
NOW = answered_at(ago=timedelta(minutes=5), spread=timedelta(0))  # on the local day TODAY names
TODAY = answer_day(NOW)
DAY_FORM = dict(pair.split("=") for pair in TODAY.split("&"))
SECRET_WORDS = "Lääkäri oli ystävällinen"

ALLOWED = {
    "fleet_server/channels/comments.py",  # the one door
    "fleet_server/channels/web_survey.py",  # writes them (store_comment), reads nothing
    "fleet_server/web/questionnaire_pages.py",  # the coordinators' page and the confirmed export
    "fleet_server/fleet/retention.py",  # deletes them
    "fleet_server/models/__init__.py", "fleet_server/models/questionnaires.py",
}
"""The only modules that may name web_comments: public pages, their JSON, results and exports must not."""


def _coordinator() -> Principal:
    return Principal("user", 1, "anna", Role.COORDINATOR)


def _seed(session_factory, texts, station="kalvia"):
    with session_factory() as s:
        ensure_station(s, station)
        for text in texts:
            comments.store_comment(s, station_id=station, submission_id=uuid.uuid4(), lang="fi", raw=text,
                                   max_chars=500, now=NOW)
        s.commit()


def test_only_the_comments_own_modules_touch_the_comments_table():
    offenders = []
    for path in sorted((ROOT / "fleet_server").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel in ALLOWED or rel.startswith("fleet_server/migrations/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                names = [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "web_comments" in node.value:
                names = [node.value]
            if any(n.endswith(("WebComment", "channels.comments")) or "web_comments" in n for n in names):
                offenders.append(rel)
                break
    assert not offenders, f"these modules reach open comments (coordinators only, never published): {offenders}"


@pytest.mark.parametrize("role", [Role.STAFF, Role.IT, Role.ADMIN, Role.IMPORT])
def test_every_reader_refuses_everyone_but_coordinators(sessions, role):
    _seed(sessions, [SECRET_WORDS])
    who = Principal("user", 2, "x", role, "kalvia")
    with sessions() as s:
        for call in (lambda: comments.read_comments(s, who, ["kalvia"], NOW - timedelta(days=1), NOW + timedelta(days=1)),
                     lambda: comments.count_comments(s, who, ["kalvia"], NOW - timedelta(days=1), NOW + timedelta(days=1)),
                     lambda: list(comments.export_rows(s, who, ["kalvia"], NOW - timedelta(days=1),
                                                       NOW + timedelta(days=1), confirmed=True))):
            with pytest.raises(CommentsForbidden):
                call()


def test_an_export_needs_a_confirmation_even_for_a_coordinator(sessions):
    _seed(sessions, [SECRET_WORDS])
    with sessions() as s:
        with pytest.raises(CommentsForbidden, match="on purpose"):
            list(comments.export_rows(s, _coordinator(), ["kalvia"], NOW - timedelta(days=1), NOW + timedelta(days=1),
                                      confirmed=False))
        rows = list(comments.export_rows(s, _coordinator(), ["kalvia"], NOW - timedelta(days=1),
                                         NOW + timedelta(days=1), confirmed=True))
    assert [r[-1] for r in rows] == [SECRET_WORDS]


@pytest.fixture
def client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        with c.app.state.session_factory() as s:
            ensure_station(s, "kalvia", "Kälviä")
            s.commit()
        yield c


def test_coordinators_read_comments_on_the_page_and_staff_do_not(client):
    _seed(client.app.state.session_factory, [SECRET_WORDS, "Soita 040 123 4567"])
    page = client.get(f"/stations/kalvia/comments?{TODAY}", headers=bearer(client, "coordinator"))
    assert page.status_code == 200 and SECRET_WORDS in page.text
    assert '<mark class="masked">' in page.text and "040 123" not in page.text
    for role, station in (("staff", "kalvia"), ("it", None), ("admin", None)):
        r = client.get(f"/stations/kalvia/comments?{TODAY}", headers=bearer(client, role, station))
        assert r.status_code == 403 and SECRET_WORDS not in r.text
    staff_station = client.get("/stations/kalvia", headers=bearer(client, "staff", "kalvia", name="staff2"))
    assert staff_station.status_code == 200 and "/stations/kalvia/comments" not in staff_station.text


def test_comments_are_in_no_figure_page_export_or_json(client):
    _seed(client.app.state.session_factory, [SECRET_WORDS])
    coordinator = bearer(client, "coordinator")
    for path in ("/", "/stations/kalvia", "/stations/kalvia/questionnaire", "/exports", "/notes",
                 "/api/v1/results/stations/kalvia", "/api/v1/results/overview", "/api/v1/results/daily",
                 "/api/v1/exports/events.csv", "/api/v1/exports/daily.csv", "/api/v1/exports/totals.csv",
                 "/stations/kalvia/questionnaire.csv", "/openapi.json"):
        r = client.get(path, headers=coordinator)
        assert SECRET_WORDS not in r.text, path
    from fleet_server.models import Station

    with client.app.state.session_factory() as s:  # the station's public page on, if this server has them
        station = s.get(Station, "kalvia")
        if hasattr(station, "public_page"):
            station.public_page = True
        s.commit()
    public = 0
    for path in [r.path for r in client.app.routes if hasattr(r, "path")]:
        if path.startswith("/public"):  # public pages (and their JSON): anonymous, and never a comment
            url = path.replace("{kinds}", "stations").replace("{entity_id}", "kalvia").replace("{station_id}", "kalvia")
            r = TestClient(client.app).get(url)  # anonymous: no session, no token
            public += r.status_code == 200
            assert SECRET_WORDS not in r.text, path
    assert public or not any(getattr(r, "path", "").startswith("/public") for r in client.app.routes)


def test_the_comment_file_comes_only_from_a_confirmed_post(client):
    _seed(client.app.state.session_factory, [SECRET_WORDS])
    make_user(client.app.state.session_factory, "anna", "coordinator")
    sign_in(client, "anna")
    page = client.get(f"/stations/kalvia/comments?{TODAY}")
    token = page_csrf(page.text)
    assert client.get("/stations/kalvia/comments/export").status_code == 405  # no link can fetch the file
    unconfirmed = client.post("/stations/kalvia/comments/export", data={"csrf_token": token, **DAY_FORM})
    assert unconfirmed.status_code == 400 and 'role="alert"' in unconfirmed.text
    assert unconfirmed.headers["content-type"].startswith("text/html")
    forged = client.post("/stations/kalvia/comments/export", data={"csrf_token": "x", "confirm": "yes"})
    assert forged.status_code == 403
    done = client.post("/stations/kalvia/comments/export", data={"csrf_token": token, "confirm": "yes",
                                                                 **DAY_FORM})
    assert done.status_code == 200 and done.headers["content-disposition"].startswith("attachment")
    rows = list(csv.reader(io.StringIO(done.text.lstrip("\ufeff")), delimiter=";" if ";" in done.text else ","))
    assert rows[1][-1] == SECRET_WORDS


def test_a_coordinator_switches_the_questionnaire_and_comments_on_and_off(client):
    make_user(client.app.state.session_factory, "anna", "coordinator")
    sign_in(client, "anna")
    page = client.get("/stations/kalvia/web")
    assert page.status_code == 200 and "checked" not in page.text  # both off by default
    r = client.post("/stations/kalvia/web", data={"csrf_token": page_csrf(page.text), "questionnaire": "on",
                                                  "comments": "on"}, follow_redirects=False)
    assert r.status_code == 303
    from fleet_server.channels.web_settings import choices

    with client.app.state.session_factory() as s:
        got = choices(s, "kalvia")
        assert (got.questionnaire, got.comments, got.updated_by) == (True, True, "anna")
    client.post("/stations/kalvia/web", data={"csrf_token": page_csrf(page.text)})
    with client.app.state.session_factory() as s:
        assert (choices(s, "kalvia").questionnaire, choices(s, "kalvia").comments) == (False, False)
    assert client.get("/stations/kalvia/web", headers=bearer(client, "staff", "kalvia")).status_code == 403
