"""Results by channel: every page, export and the JSON API show one channel or all; the channel
figures add up to the all-channel figures wherever both are shown, and a channel split never lets
a hidden small count be worked out from the total (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import random
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.channels.answers import store_answers
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import handle_batch
from fleet_server.models import Station
from fleet_server.results import figures
from fleet_server.results.small_counts import split_hides
from tests.support.auth_helpers import bearer, ensure_station
from tests.support.server_factories import event, events_message

MINIMUM = 5
USED = ("kiosk", "web", "phone")
"""kiosk: many answers, web: some, phone: 3 (below the minimum), sms: none."""


def _seed(factory, now: datetime) -> None:
    rng = random.Random(16)
    with factory() as s:
        ensure_station(s, "kalvia", "Kälviä")
        ensure_station(s, "lohtaja", "Lohtaja")
        s.commit()
    hours = [now - timedelta(hours=h) for h in range(2, 6 * 24)]
    kiosk = [event(seq=i, value=rng.randint(1, 4), ts=rng.choice(hours),
                   flags=rng.choice([(), (), (), ("burst",), ("out_of_hours",)])) for i in range(1, 241)]
    with factory() as s:
        handle_batch(s, [events_message(kiosk[i:i + 60]) for i in range(0, len(kiosk), 60)])
        s.commit()

    def answers(channel: str, n: int, station: str = "kalvia") -> list[dict]:
        return [{"answer_id": str(uuid.uuid4()), "station_id": station, "channel": channel,
                 "value": rng.randint(1, 4), "lang": "fi", "ts": rng.choice(hours).isoformat()} for _ in range(n)]

    with factory() as s:
        store_answers(s, answers("web", 40) + answers("web", 12, "lohtaja"), channels=("web",), topic="test")
        store_answers(s, answers("phone", 3), channels=("phone", "sms"), topic="test")
        s.commit()


@pytest.fixture
def seeded(sessions):
    _seed(sessions, datetime.now(UTC))
    return sessions


def _period() -> figures.Period:
    return figures.parse_period("7d", None, None, figures.today_local())


def _counts(dist: dict) -> list[int] | None:
    return None if dist["hidden"] else [dist["counts"][v] for v in "1234"]


def _cells(pages: dict) -> list[list[dict]]:
    """The heatmap's cells, each as one list of the channels' cells in ANSWER_CHANNELS order."""
    flat = {ch: [c for day in page.heatmap for c in day["cells"]] for ch, page in pages.items()}
    return [list(cells) for cells in zip(*(flat[ch] for ch in figures.ANSWER_CHANNELS), strict=True)]


def _add(a: list[int], b: list[int]) -> list[int]:
    return [x + y for x, y in zip(a, b, strict=True)]


def _check(whole: list[int] | None, parts: list[list[int] | None], raw_parts: list[int]) -> str:
    """Shown everywhere: the channels add up to the whole. Else no hidden channel can be worked out:
    the whole is hidden, or at least two channels that have answers are (a channel with none
    is 0 whether shown or not)."""
    parts = [p if p is not None or n else [0] * len(whole or [0, 0, 0, 0]) for p, n in zip(parts, raw_parts, strict=True)]
    if whole is not None and all(p is not None for p in parts):
        assert [sum(col) for col in zip(*parts, strict=True)] == whole  # type: ignore[misc]
        return "sum"
    hidden_used = sum(1 for p, n in zip(parts, raw_parts, strict=True) if p is None and n)
    assert whole is None or hidden_used != 1, "one hidden channel = the total minus the others"
    return "hidden"


@pytest.mark.parametrize("minimum", [1, MINIMUM])
def test_channel_figures_add_up_to_the_all_channel_figures_where_shown(seeded, minimum):
    period = _period()
    with seeded() as s:
        station = s.get(Station, "kalvia")
        every = figures.station_page(s, station, period, minimum)
        pages = {ch: figures.station_page(s, station, period, minimum, channel=ch) for ch in figures.ANSWER_CHANNELS}
        raw = {ch: figures.station_page(s, station, period, 1, channel=ch) for ch in figures.ANSWER_CHANNELS}
        daily_all = list(figures.daily_rows(s, ["kalvia"], period, minimum))
        daily = [list(figures.daily_rows(s, ["kalvia"], period, minimum, ch)) for ch in figures.ANSWER_CHANNELS]
        daily_raw = [list(figures.daily_rows(s, ["kalvia"], period, 1, ch)) for ch in figures.ANSWER_CHANNELS]
    outcomes = []
    for key in ("counted", "repeated", "out_of_hours", "all"):
        outcomes.append(_check(_counts(every.breakdown[key]),
                               [_counts(pages[ch].breakdown[key]) for ch in figures.ANSWER_CHANNELS],
                               [sum(_counts(raw[ch].breakdown[key]) or [0]) for ch in figures.ANSWER_CHANNELS]))
    for i, bucket in enumerate(every.trend):
        outcomes.append(_check(_counts(bucket["dist"]),
                               [_counts(pages[ch].trend[i]["dist"]) for ch in figures.ANSWER_CHANNELS],
                               [sum(_counts(raw[ch].trend[i]["dist"]) or [0]) for ch in figures.ANSWER_CHANNELS]))
    for i, cell in enumerate(c for day in every.heatmap for c in day["cells"]):
        parts = [[c["n"]] if c["n"] is not None else None for c in _cells(pages)[i]]
        outcomes.append(_check(None if cell["n"] is None else [cell["n"]], parts,
                               [c["n"] or 0 for c in _cells(raw)[i]]))
    for d, day_all in enumerate(daily_all):
        whole = day_all["all_presses"]
        parts = [rows[d]["all_presses"] for rows in daily]
        outcomes.append(_check(None if whole is None else [whole], [None if p is None else [p] for p in parts],
                               [rows[d]["all_presses"] or 0 for rows in daily_raw]))
    rows = {r["channel"]: r for r in every.channels}
    assert [r["channel"] for r in every.channels] == [*USED, "all"], "channels used in the period, then all"
    assert rows["all"]["dist"]["total"] == every.breakdown["counted"]["total"]
    outcomes.append(_check(_counts(rows["all"]["dist"]), [_counts(rows[ch]["dist"]) for ch in USED],
                           [1, 1, 1]))
    if minimum == 1:
        assert outcomes.count("sum") >= 10, "with no small counts most figures are checked by their sums"
    else:
        assert "hidden" in outcomes


def test_a_day_one_channel_hides_on_its_own_trend_is_hidden_on_the_other_channels_too(sessions):
    """The kiosk's 3 answers on the second day hide its smallest other day (22) on its own trend; the
    split of that day by channel hides nothing by itself (29 = 22 + 7). Were the web's 7 shown on
    the web page, the kiosk's 22 would be the all-channel 29 minus it."""
    today = figures.today_local()
    first = today - timedelta(days=7)
    period = figures.parse_period(None, first.isoformat(), (today - timedelta(days=1)).isoformat(), today)
    noon = [datetime.combine(first + timedelta(days=d), time(12), figures.LOCAL_TZ).astimezone(UTC) for d in range(7)]
    kiosk, web = [22, 3, 30, 30, 30, 30, 30], [7, 6, 5, 6, 6, 6, 6]
    with sessions() as s:
        ensure_station(s, "kalvia", "Kälviä")
        s.commit()
    events = [event(value=4, ts=noon[d]) for d, n in enumerate(kiosk) for _ in range(n)]
    answers = [{"answer_id": str(uuid.uuid4()), "station_id": "kalvia", "channel": "web", "value": 3, "lang": "fi",
                "ts": noon[d].isoformat()} for d, n in enumerate(web) for _ in range(n)]
    with sessions() as s:
        handle_batch(s, [events_message(events[i:i + 60]) for i in range(0, len(events), 60)])
        store_answers(s, answers, channels=("web",), topic="test")
        s.commit()
    with sessions() as s:
        station = s.get(Station, "kalvia")
        pages = {ch: figures.station_page(s, station, period, MINIMUM, channel=ch) for ch in (None, "kiosk", "web")}
        compared = figures.comparison(s, [station], period, MINIMUM, channel="web")["series"]["kalvia"]
    totals = {ch: [b["dist"]["total"] for b in page.trend] for ch, page in pages.items()}
    assert totals[None] == [29, 9, 35, 36, 36, 36, 36], "the all-channel trend hides nothing"
    assert totals["kiosk"] == [None, None, 30, 30, 30, 30, 30]
    assert totals["web"] == [None, None, 5, 6, 6, 6, 6], "else kiosk = all - web on the first day"
    assert [compared[i]["total"] for i in range(7)] == totals["web"], "the comparison shows the page's trend"


def test_the_small_channel_and_the_next_smallest_are_hidden_on_every_view(seeded):
    period = _period()
    with seeded() as s:
        station = s.get(Station, "kalvia")
        every = figures.station_page(s, station, period, MINIMUM)
        rows = {r["channel"]: r for r in every.channels}
        assert rows["phone"]["dist"]["hidden"], "3 phone answers: too few"
        assert rows["web"]["dist"]["hidden"], "else phone = all - kiosk - web"
        assert not rows["kiosk"]["dist"]["hidden"] and not rows["all"]["dist"]["hidden"]
        assert rows["kiosk"]["interval"] is not None and rows["web"]["interval"] is None
        low, high = rows["kiosk"]["interval"]
        assert low <= rows["kiosk"]["dist"]["satisfaction"] <= high
        # On their own pages too: web's 40 answers stay hidden, or all - kiosk - web would give phone.
        web = figures.station_page(s, station, period, MINIMUM, channel="web")
        assert web.breakdown["counted"]["hidden"] and web.trend_total["hidden"]
        assert figures.station_page(s, station, period, MINIMUM, channel="phone").breakdown["counted"]["hidden"]
        kiosk = figures.station_page(s, station, period, MINIMUM, channel="kiosk")
        assert kiosk.breakdown["counted"]["total"] == rows["kiosk"]["dist"]["total"]
        compared = figures.comparison(s, [station, s.get(Station, "lohtaja")], period, MINIMUM, channel="web")
        by_id = {r.station_id: r for r in compared["rows"]}
        assert by_id["kalvia"].dist["hidden"], "the comparison hides what the station page hides"
        assert not by_id["lohtaja"].dist["hidden"] and by_id["lohtaja"].dist["total"] == 12, "web is all lohtaja has"


def test_split_hides_only_what_the_published_total_would_give_away():
    assert split_hides({"kiosk": 100, "web": 3}, "kiosk", 5), "kiosk = total - web would show web"
    assert split_hides({"kiosk": 100, "web": 3}, "web", 5)
    assert not split_hides({"kiosk": 100, "web": 30}, "web", 5)
    assert split_hides({"kiosk": 100, "web": 30, "sms": 2}, "web", 5) and not split_hides(
        {"kiosk": 100, "web": 30, "sms": 2}, "kiosk", 5)
    assert not split_hides({"kiosk": 100, "web": 0}, "kiosk", 5), "a channel nobody used is not a part"


@pytest.fixture
def client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        _seed(c.app.state.session_factory, datetime.now(UTC))
        yield c


def test_pages_exports_and_the_api_take_a_channel(client):
    headers = bearer(client, "coordinator")
    page = client.get("/stations/kalvia?range=7d&channel=kiosk", headers=headers)
    assert page.status_code == 200 and 'data-testid="by-channel"' in page.text
    assert 'data-testid="channel-note"' in page.text and '<option value="kiosk" selected>' in page.text
    assert client.get("/stations/kalvia?channel=fax", headers=headers).status_code == 400
    assert client.get("/compare?station=kalvia&station=lohtaja&channel=web", headers=headers).status_code == 200
    web_overview = client.get("/?range=7d&channel=web", headers=headers)
    assert web_overview.status_code == 200 and '<option value="web" selected>' in web_overview.text
    assert 'data-testid="channel-note"' in web_overview.text
    assert client.get("/?channel=fax", headers=headers).status_code == 400
    body = client.get("/api/v1/results/stations/kalvia?range=7d&channel=web", headers=headers).json()
    assert body["channel"] == "web" and body["counted"]["suppressed"]
    assert [c["channel"] for c in body["by_channel"]] == [*USED, "all"]
    everything = client.get("/api/v1/results/stations/kalvia?range=7d", headers=headers).json()
    kiosk = client.get("/api/v1/results/stations/kalvia?range=7d&channel=kiosk", headers=headers).json()
    assert kiosk["counted"]["total"] < everything["counted"]["total"]
    overview = client.get("/api/v1/results/overview?range=7d&channel=web", headers=headers).json()
    assert {r["station_id"]: r["counted"]["total"] for r in overview} == {"kalvia": None, "lohtaja": 12}
    assert client.get("/api/v1/results/overview?channel=fax", headers=headers).status_code == 422
    daily = client.get("/api/v1/results/daily?range=7d&station=kalvia&channel=kiosk", headers=headers).json()
    assert {r["channel"] for r in daily} == {"kiosk"}
    events = client.get("/api/v1/exports/events.csv?range=7d&csv=plain&channel=phone", headers=headers)
    rows = list(csv.DictReader(io.StringIO(events.text.lstrip("\ufeff"))))
    assert len(rows) == 3 and {r["channel"] for r in rows} == {"phone"}
    day_file = client.get("/api/v1/exports/daily.csv?range=7d&csv=plain&station=kalvia&channel=web", headers=headers)
    day_rows = list(csv.DictReader(io.StringIO(day_file.text.lstrip("\ufeff"))))
    assert day_rows and {r["channel"] for r in day_rows} == {"web"}


def test_a_groups_channel_figure_is_hidden_where_its_split_by_channel_hides_it(seeded):
    """Group soite: kiosk many, web 52 (40 + 12), phone 3. The web export hides the group's web figure
    (else the all-channel and kiosk files would give phone's 3 by subtraction); kiosk's stays."""
    from fleet_server.models import StationGroup
    from fleet_server.results.exports import totals_table

    with seeded() as s:
        s.add(StationGroup(id="soite", kind="county", name="Soite"))
        s.flush()
        for sid in ("kalvia", "lohtaja"):
            s.get(Station, sid).group_id = "soite"
        s.commit()
    period = _period()
    with seeded() as s:
        def group_responses(channel):
            rows = [r for r in totals_table(s, ["kalvia", "lohtaja"], period, MINIMUM, channel) if r[1] == "soite"]
            return rows[0][6]

        everything, kiosk, web = group_responses(None), group_responses("kiosk"), group_responses("web")
    assert everything is not None and kiosk is not None and web is None
    assert everything - kiosk == 52 + 3, "what the files give away together: web and phone combined, not phone"


def test_the_exports_page_offers_the_channels(client):
    page = client.get("/exports?range=7d", headers=bearer(client, "coordinator"))
    assert page.status_code == 200
    assert 'name="channel" value="all" checked' in page.text and 'data-testid="export-channel-web"' in page.text
