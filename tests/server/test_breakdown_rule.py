"""The breakdown's small-count rule: counted + repeated + out of hours = all presses, where a 0 is
known (nobody pressed out of hours singles nobody out), so 3 repeated presses beside it are hidden
with all presses, not with the counted answers, on the station page, in the overview and the export
(SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from fleet_server.ingest.consumer import handle_batch
from fleet_server.models import Station
from fleet_server.results import figures
from fleet_server.results.small_counts import Group, suppress
from tests.support.auth_helpers import ensure_station
from tests.support.server_factories import event, events_message

MINIMUM = 5


def test_all_presses_go_before_the_counted_answers_where_one_more_must_be_hidden():
    values = {"counted": 30, "repeated": 3, "out_of_hours": 0, "all": 33}
    group = [Group("all", ("counted", "repeated", "out_of_hours"))]
    assert suppress(values, group, MINIMUM) == {"counted", "repeated", "out_of_hours"}, "the smallest part, alone"
    assert suppress(values, group, MINIMUM, prefer=["all"]) == {"repeated", "out_of_hours", "all"}


def test_three_repeated_presses_hide_all_presses_on_the_page_the_overview_and_the_export(sessions):
    noon = datetime.combine(figures.today_local() - timedelta(days=1), time(12), figures.LOCAL_TZ).astimezone(UTC)
    with sessions() as s:
        ensure_station(s, "kalvia", "Kälviä")
        s.commit()
    counted = [event(value=1 + i % 4, ts=noon + timedelta(minutes=i)) for i in range(30)]
    repeated = [event(value=4, ts=noon - timedelta(minutes=1 + i), flags=("burst",)) for i in range(3)]
    with sessions() as s:
        handle_batch(s, [events_message(counted + repeated)])
        s.commit()
    period = figures.parse_period("7d", None, None, figures.today_local())
    with sessions() as s:
        station = s.get(Station, "kalvia")
        page = figures.station_page(s, station, period, MINIMUM)
        row = figures.overview(s, [station], period, MINIMUM)[0]
        days = [d for d in figures.daily_rows(s, ["kalvia"], period, MINIMUM) if d["counted"]["total"] == 30]
    shown = {key: d["total"] for key, d in page.breakdown.items()}
    assert shown == {"counted": 30, "repeated": None, "out_of_hours": None, "all": None}, "else 3 = all - counted - 0"
    assert page.trend_total["total"] == 30 and page.heatmap_total == 30, "the headline stays"
    assert row.dist["total"] == 30 and row.presses is None, "the overview hides presses where the page does"
    assert [(d["repeated"], d["out_of_hours"], d["all_presses"]) for d in days] == [(None, None, None)]
