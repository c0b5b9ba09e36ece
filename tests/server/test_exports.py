"""Exports that add up: period totals under the cascaded rule, presets, names, real dates in XLSX,
full sheet names, Finnish Excel's CSV dialect for fi/sv readers, and the exports page's form."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, time, timedelta

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import store_batch
from fleet_server.models import Station
from fleet_server.results.figures import LOCAL_TZ, calendar_period, parse_period, today_local
from tests.support.auth_helpers import bearer
from tests.support.server_factories import event, events_message

# Ullava: 3 answers on each of 4 days (every day too few) + 10 on the fifth: 22 in all.
DAYS = [3, 3, 3, 3, 10]


@pytest.fixture
def client(sqlite_url):
    settings = load_settings(environ={}, database_url=sqlite_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        today = today_local()
        events = []
        for back, n in enumerate(DAYS):
            noon = datetime.combine(today - timedelta(days=back), time(12), LOCAL_TZ).astimezone(UTC)
            events += [event(station="ullava", device="ullava-1", value=4 if i % 2 else 3,
                             ts=noon - timedelta(minutes=i)) for i in range(n)]
        store_batch(c.app.state.session_factory, [events_message(events, station="ullava", device="ullava-1")])
        with c.app.state.session_factory() as s:
            st = s.get(Station, "ullava")
            st.name, st.name_fi, st.name_sv = "Ullava", "Ullavan terveysasema", "Ullava hälsostation"
            s.commit()
        c.headers.update(bearer(c, "coordinator"))
        yield c


def _csv(response, delimiter=","):
    assert response.content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig")), delimiter=delimiter))


def test_period_totals_add_up_where_summed_days_do_not(client):
    daily = _csv(client.get("/api/v1/exports/daily.csv?range=7d&csv=plain"))
    header, rows = daily[0], daily[1:]
    summed = sum(int(r[header.index("responses")]) for r in rows if r[header.index("responses")].isdigit())
    assert summed == 10  # the four small days are hidden: the daily file alone gives 10, not 22
    totals = _csv(client.get("/api/v1/exports/totals.csv?range=7d&csv=plain"))
    header, (row,) = totals[0], totals[1:]
    assert row[header.index("id")] == "ullava" and row[header.index("responses")] == "22"
    assert row[header.index("name")] == "Ullava"


def test_finnish_readers_get_finnish_excel_csv(client):
    r = client.get("/api/v1/exports/totals.csv?range=7d", headers={"Accept-Language": "fi"})
    (header, row) = _csv(r, delimiter=";")
    assert header[:3] == ["Taso", "Tunniste", "Nimi"] and "Tyytyväisyys" in header
    assert row[2] == "Ullavan terveysasema"
    first = today_local() - timedelta(days=6)
    assert row[header.index("Ensimmäinen päivä")] == f"{first.day}.{first.month}.{first.year}"
    assert "," in row[header.index("Tyytyväisyys")] and "." not in row[header.index("Tyytyväisyys")]
    plain = _csv(client.get("/api/v1/exports/totals.csv?range=7d&csv=plain", headers={"Accept-Language": "fi"}))
    assert "." in plain[1][plain[0].index("Tyytyväisyys")]


def test_xlsx_has_real_dates_names_and_a_whole_sheet_name(client):
    r = client.get("/api/v1/exports/daily.xlsx?range=7d", headers={"Accept-Language": "sv"})
    book = load_workbook(io.BytesIO(r.content))
    sheet = book.active
    assert sheet.title == "Dagliga siffror"
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["Stationens id", "Station", "Datum"]
    day = sheet.cell(row=2, column=3)
    assert isinstance(day.value, datetime) and day.is_date
    assert sheet.cell(row=2, column=2).value == "Ullava hälsostation"
    assert 'filename="palaute-daily-' in r.headers["content-disposition"]


def test_calendar_presets():
    today = date(2026, 11, 18)
    assert calendar_period("this_month", today) == (date(2026, 11, 1), today)
    assert calendar_period("last_month", today) == (date(2026, 10, 1), date(2026, 10, 31))
    assert calendar_period("last_month", date(2026, 1, 5)) == (date(2025, 12, 1), date(2025, 12, 31))
    assert calendar_period("this_quarter", today) == (date(2026, 10, 1), today)
    assert calendar_period("last_year", today) == (date(2025, 1, 1), date(2025, 12, 31))
    assert parse_period("last_month", None, None, today).label  # translated label, no error


def test_the_export_buttons_take_the_days_on_screen(client):
    html = client.get("/exports?range=last_month").text
    form = re.search(r'<form class="card" method="get" id="export-form">(.*?)</form>', html, re.DOTALL).group(1)
    first, last = calendar_period("last_month", today_local())
    # The days are fields of the form the buttons submit, filled with the preset's days, so what is
    # on screen when a button is pressed is what the file covers.
    assert f'name="from" value="{first.isoformat()}"' in form and f'name="to" value="{last.isoformat()}"' in form
    assert 'name="range" value="custom"' in form and "formaction=\"/api/v1/exports/totals.csv\"" in form
