"""palaute-server user add --group and export --group: staff of a group, exports of a group's stations."""

from __future__ import annotations

import csv
import io

import pytest
from typer.testing import CliRunner

from fleet_server.cli import app
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.models import Station, StationGroup
from tests.support.auth_helpers import PASSWORD


@pytest.fixture
def run(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
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
