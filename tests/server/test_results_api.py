"""/api/v1/results and /api/v1/exports: JSON figures and CSV/XLSX files, roles and the small-count rule."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import insert

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.models import FeedbackEvent
from palaute_wire.opening_hours import LOCAL_TZ
from tests.server.test_dashboard import ANSWERED, TODAY, seed
from tests.support.auth_helpers import bearer


@pytest.fixture
def client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        seed(c)
        yield c


def test_overview_json_hides_small_stations_and_says_so(client):
    body = client.get(f"/api/v1/results/overview?{TODAY}", headers=bearer(client, "coordinator")).json()
    by_id = {r["station_id"]: r for r in body}
    kalvia, lohtaja = by_id["kalvia"], by_id["lohtaja"]
    assert kalvia["counted"] == {"suppressed": False, "total": 12, "counts": {"1": 1, "2": 2, "3": 5, "4": 4},
                                 "satisfaction": 0.75}
    assert kalvia["all_presses"] == 15
    assert lohtaja["counted"] == {"suppressed": True, "total": None,
                                  "counts": {"1": None, "2": None, "3": None, "4": None}, "satisfaction": None}
    assert lohtaja["all_presses"] is None


def test_station_detail_json_and_roles(client):
    coordinator = bearer(client, "coordinator")
    body = client.get("/api/v1/results/stations/kalvia?range=7d", headers=coordinator).json()
    assert body["counted"]["total"] == 12 and body["repeated"]["suppressed"] is True
    assert len(body["trend"]) == 7 and len(body["heatmap"]) == 7 * 24
    assert all(c["responses"] is None or c["responses"] >= 5 or c["responses"] == 0 for c in body["heatmap"])
    staff = bearer(client, "staff", "kalvia")
    assert client.get("/api/v1/results/stations/kalvia", headers=staff).status_code == 200
    assert client.get("/api/v1/results/stations/lohtaja", headers=staff).status_code == 403
    assert client.get("/api/v1/results/overview", headers=staff).json()[0]["station_id"] == "kalvia"
    assert len(client.get("/api/v1/results/overview", headers=staff).json()) == 1
    assert client.get("/api/v1/results/overview", headers=bearer(client, "it")).status_code == 403
    assert client.get("/api/v1/results/stations/nowhere", headers=coordinator).status_code == 404
    assert client.get("/api/v1/results/overview?range=yesterday", headers=coordinator).status_code == 400


DAY = ANSWERED.astimezone(LOCAL_TZ).date().isoformat()


def test_daily_csv_writes_too_few_responses_for_small_days(client):
    r = client.get("/api/v1/exports/daily.csv?range=7d&station=kalvia&station=lohtaja", headers=bearer(client, "coordinator"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="palaute-daily-' in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 2 * 7
    today = {(row["station_id"], row["date"]): row for row in rows}
    k = today[("kalvia", DAY)]
    assert (k["responses"], k["satisfaction"], k["very_happy_4"]) == ("12", "0.75", "4")
    assert k["repeated_presses"] == "too few responses" and k["all_presses"] == "15"
    lo = today[("lohtaja", DAY)]
    assert lo["responses"] == lo["satisfaction"] == lo["very_unhappy_1"] == "too few responses"


def test_daily_xlsx_has_the_same_figures(client):
    r = client.get(f"/api/v1/exports/daily.xlsx?{TODAY}", headers=bearer(client, "staff", "kalvia"))
    assert r.status_code == 200
    sheet = load_workbook(io.BytesIO(r.content), read_only=True).active
    header, *rows = list(sheet.iter_rows(values_only=True))
    assert header[:4] == ("station_id", "station", "date", "responses")
    assert [(row[0], row[3]) for row in rows] == [("kalvia", 12)]


def test_event_export_is_for_coordinators_and_streams_every_row(client):
    with client.app.state.session_factory() as s:
        base = s.query(FeedbackEvent).first().ts
        s.execute(insert(FeedbackEvent), [
            {"event_id": uuid.uuid4(), "station_id": "kalvia", "device_id": "kalvia-1", "kind": "smiley",
             "value": (i % 4) + 1, "question_id": "visit", "lang": "fi", "ts": base - timedelta(seconds=i),
             "received_at": base, "seq": 10_000 + i, "clock_synced": True, "survey_version": 0, "burst": False,
             "out_of_hours": False}
            for i in range(12_000)
        ])
        s.commit()
    assert client.get("/api/v1/exports/events.csv", headers=bearer(client, "staff", "kalvia")).status_code == 403
    with client.stream("GET", "/api/v1/exports/events.csv?range=7d&station=kalvia",
                       headers=bearer(client, "coordinator")) as r:
        assert r.status_code == 200
        chunks = list(r.iter_bytes())
    text = b"".join(chunks).decode("utf-8-sig")
    lines = text.strip().split("\r\n")
    assert lines[0].startswith("event_id,station_id,station,device_id,kind,value")
    assert len(lines) - 1 == 12_000 + 16  # the bulk rows + the seeded kalvia events (15 smileys, 1 follow-up)
    assert len(chunks) > 1  # sent in pieces, not built whole first


def test_openapi_documents_the_results_api(client):
    spec = client.get("/openapi.json", headers=bearer(client, "coordinator")).json()
    for path in ("/api/v1/results/overview", "/api/v1/results/stations/{station_id}", "/api/v1/results/daily",
                 "/api/v1/exports/daily.{fmt}", "/api/v1/exports/events.{fmt}"):
        assert path in spec["paths"], path
    assert "Distribution" in spec["components"]["schemas"]


def test_export_command_writes_the_same_daily_figures(client, monkeypatch, tmp_path, db_url):
    from typer.testing import CliRunner

    from fleet_server.cli import app

    monkeypatch.setenv("PALAUTE_DATABASE_URL", db_url)
    runner = CliRunner()
    r = runner.invoke(app, ["export", "daily", "--range", "custom", "--from", DAY, "--to", DAY,
                            "--station", "kalvia", "--station", "lohtaja"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout.lstrip("\ufeff"))))
    assert [(row["station_id"], row["responses"]) for row in rows] == [("kalvia", "12"), ("lohtaja", "too few responses")]
    out = tmp_path / "events.xlsx"
    r = runner.invoke(app, ["export", "events", "--range", "7d", "--format", "xlsx", "-o", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(load_workbook(out, read_only=True).active.iter_rows(values_only=True))
    assert rows[0][0] == "event_id" and len(rows) == 1 + 16 + 3  # kalvia's 16, lohtaja's 3 (ullava's is older)
    assert runner.invoke(app, ["export", "daily", "--station", "nowhere"]).exit_code == 1
