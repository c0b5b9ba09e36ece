"""palaute-server user add --group, token create --group and export --group: staff and staff tokens of a
group, exports of a group's stations (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fleet_server.app import create_app
from fleet_server.cli import app
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.models import Station, StationGroup
from tests.support.auth_helpers import PASSWORD


@pytest.fixture
def run(db_url):
    url = db_url
    engine = make_engine(url)
    migrate(engine)
    with make_session_factory(engine)() as s:
        s.add(StationGroup(id="soite", kind="county", name="Soite"))
        s.flush()
        s.add_all([StationGroup(id="kokkola", parent_id="soite", kind="municipality", name="Kokkola"),
                   StationGroup(id="kruunupyy", parent_id="soite", kind="municipality", name="Kruunupyy")])
        s.flush()
        s.add_all([Station(id="kalvia", name="Kälviä", group_id="kokkola"),
                   Station(id="lohtaja", name="Lohtaja", group_id="kokkola"),
                   Station(id="teerijarvi", name="Teerijärvi", group_id="kruunupyy")])
        s.commit()
    engine.dispose()
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, stdin: str | None = None):
        """``palaute-server ARGS`` on the test database; asserts the exit code."""
        result = runner.invoke(app, list(args), env={"PALAUTE_DATABASE_URL": url}, input=stdin,
                               catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


def test_staff_can_be_given_a_group_from_the_command_line(run):
    added = run("user", "add", "hoitaja", "--role", "staff", "--group", "kokkola", stdin=PASSWORD + "\n")
    assert "group kokkola" in added.output
    assert "hoitaja\tstaff\tgroup:kokkola\tactive" in run("user", "list").output
    unknown = run("user", "add", "toinen", "--role", "staff", "--group", "nowhere", stdin=PASSWORD + "\n", code=1)
    assert "group 'nowhere' does not exist" in unknown.output
    both = run("user", "add", "kolmas", "--role", "staff", "--group", "kokkola", "--station", "kalvia",
               stdin=PASSWORD + "\n", code=1)
    assert "instead of a station" in both.output


@pytest.mark.parametrize("kind", ["daily", "events"])
def test_an_export_takes_the_stations_under_a_group(run, kind):
    out = run("export", kind, "--range", "today", "--group", "kokkola").stdout_bytes.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(out), delimiter=";" if out.count(";") > out.count(",") else ","))
    if kind == "daily":
        assert {r[0] for r in rows[1:]} == {"kalvia", "lohtaja"}
    county = run("export", kind, "--range", "today", "--group", "soite", "--station", "teerijarvi")
    assert county.exit_code == 0
    missing = run("export", kind, "--group", "nowhere", code=1)
    assert "no group nowhere" in missing.output


def test_a_staff_token_can_be_given_a_group_from_the_command_line(run):
    created = run("token", "create", "kokkola-reporting", "--role", "staff", "--group", "kokkola")
    assert created.stdout.startswith("plt_") and "group kokkola" in created.stderr
    listed = run("token", "list").output
    assert "kokkola-reporting\tstaff\tgroup:kokkola\t" in listed and created.stdout.strip() not in listed
    unknown = run("token", "create", "lost", "--role", "staff", "--group", "nowhere", code=1)
    assert "group 'nowhere' does not exist" in unknown.output
    both = run("token", "create", "both", "--role", "staff", "--group", "kokkola", "--station", "kalvia", code=1)
    assert "instead of a station" in both.output
    coordinator = run("token", "create", "county", "--role", "coordinator", "--group", "kokkola", code=1)
    assert "a group is for staff" in coordinator.output


def test_a_group_token_sees_its_groups_stations_in_the_api_as_a_group_user_does(run, db_url):
    token = run("token", "create", "kokkola-reporting", "--role", "staff", "--group", "kokkola").stdout.strip()
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        assert [s["station_id"] for s in client.get("/api/v1/stations").json()] == ["kalvia", "lohtaja"]
        overview = client.get("/api/v1/results/overview?range=today")
        assert overview.status_code == 200 and {r["station_id"] for r in overview.json()} == {"kalvia", "lohtaja"}
        assert client.get("/api/v1/results/stations/lohtaja?range=today").status_code == 200
        outside = client.get("/api/v1/results/stations/teerijarvi?range=today")
        assert outside.status_code == 403
        assert outside.json()["detail"] == "you may not see the results of station 'teerijarvi'"
        daily = client.get("/api/v1/exports/daily.csv?range=today").content.decode("utf-8-sig")
        assert "kalvia" in daily and "teerijarvi" not in daily
        assert client.get("/api/v1/exports/daily.csv?range=today&station=teerijarvi").status_code == 403
        events = client.get("/api/v1/exports/events.csv?range=today")
        assert events.status_code == 403 and events.json()["detail"] == "your role (staff) may not download individual answers"
        letters = client.get("/api/v1/dead-letters")
        assert letters.status_code == 403 and "may not" in letters.json()["detail"]
