"""Station groups: county -> municipality -> station totals with the small-count rule cascading
through the hierarchy, 95 % Wilson intervals, chance-aware comparison, staff given a group."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.ingest.consumer import store_batch
from fleet_server.models import Station, StationGroup
from fleet_server.results.groups import StationName, compare, wilson
from tests.support.auth_helpers import bearer, make_user, sign_in
from tests.support.server_factories import answer_day, answered_at, event, events_message

ANSWERED = answered_at(spread=timedelta(minutes=2))  # every answer on one local day, TODAY
TODAY = answer_day(ANSWERED)
ANSWERS = {  # station: (municipality, smiley values given today)
    "kalvia": ("kokkola-city", [4] * 15 + [3] * 3 + [1] * 2),  # 20 answers
    "lohtaja": ("kokkola-city", [4, 4, 1]),  # 3: too few
    "ullava": ("kokkola-city", [4] * 10 + [2] * 20),  # 30, clearly less satisfied
    "kruunupyy": ("kruunupyy-municipality", [4] * 30 + [3] * 10),  # 40
    "teerijarvi": ("kruunupyy-municipality", [4] * 6),  # 6
}


@pytest.fixture
def client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        base = ANSWERED
        store_batch(c.app.state.session_factory, [
            events_message([event(station=sid, device=f"{sid}-1", value=v, ts=base - timedelta(seconds=i))
                            for i, v in enumerate(values)], station=sid, device=f"{sid}-1")
            for sid, (_group, values) in ANSWERS.items()
        ])
        with c.app.state.session_factory() as s:
            s.add(StationGroup(id="soite", kind="county", name="Keski-Pohjanmaan hyvinvointialue",
                               name_sv="Välfärdsområdet i Mellersta Österbotten"))
            s.flush()
            s.add(StationGroup(id="kokkola-city", parent_id="soite", kind="municipality", name="Kokkola",
                               name_sv="Karleby"))
            s.add(StationGroup(id="kruunupyy-municipality", parent_id="soite", kind="municipality",
                               name="Kruunupyy", name_sv="Kronoby"))
            s.flush()
            for sid, (group, _values) in ANSWERS.items():
                s.get(Station, sid).group_id = group
            s.commit()
        yield c


def _rows(html: str, attr: str) -> dict[str, str]:
    return dict(re.findall(rf'<tr {attr}="([a-z-]+)">(.*?)</tr>', html, re.DOTALL))


def test_group_totals_cannot_reveal_a_small_station_by_subtraction(client):
    client.headers.update(bearer(client, "coordinator"))
    html = client.get(f"/?{TODAY}").text
    groups, stations = _rows(html, "data-group"), _rows(html, "data-station")
    assert set(groups) == {"soite", "kokkola-city", "kruunupyy-municipality"}
    assert ">53<" in groups["kokkola-city"] and ">99<" in groups["soite"]  # 20 + 3 + 30, and all five
    assert "too few responses" in stations["lohtaja"]  # 3 answers: hidden
    # Kokkola's total and its other stations would give Lohtaja's 3 away: the smallest other one goes too.
    assert "too few responses" in stations["kalvia"] and ">20<" not in stations["kalvia"]
    assert ">30<" in stations["ullava"]
    # Kruunupyy has nothing hidden, so nothing more is hidden there.
    assert ">40<" in stations["kruunupyy"] and ">6<" in stations["teerijarvi"]
    api = {r["station_id"]: r for r in client.get(f"/api/v1/results/overview?{TODAY}").json()}
    assert api["kalvia"]["counted"]["suppressed"] is True and api["lohtaja"]["counted"]["total"] is None


def test_satisfaction_comes_with_its_interval_and_only_real_differences_are_marked(client):
    client.headers.update(bearer(client, "coordinator"))
    html = client.get(f"/?{TODAY}").text
    stations = _rows(html, "data-station")
    assert 'data-versus="lower"' in stations["ullava"]  # 33 % of 30 against 89 % of the rest
    assert 'data-versus="similar"' in stations["teerijarvi"]  # 6 of 6 is not evidence of anything
    assert 'data-versus="not compared"' in stations["lohtaja"]
    api = {r["station_id"]: r for r in client.get(f"/api/v1/results/overview?{TODAY}").json()}
    low, high = api["ullava"]["satisfaction_interval"]
    assert low < 1 / 3 < high and api["ullava"]["compared_with_others"] == "lower"
    assert api["lohtaja"]["satisfaction_interval"] is None


def test_group_filter_shows_one_municipality(client):
    client.headers.update(bearer(client, "coordinator"))
    html = client.get(f"/?{TODAY}&group=kruunupyy-municipality").text
    assert set(_rows(html, "data-station")) == {"kruunupyy", "teerijarvi"}
    assert set(_rows(html, "data-group")) == {"kruunupyy-municipality"}
    assert client.get(f"/?{TODAY}&group=nowhere").status_code == 404


def test_staff_given_a_group_see_its_stations_only(client):
    with client.app.state.session_factory() as s:
        from fleet_server.auth.service import add_user
        from tests.support.auth_helpers import PASSWORD
        add_user(s, "kronoby-nurse", "staff", PASSWORD, group_id="kruunupyy-municipality")
        s.commit()
    sign_in(client, "kronoby-nurse")
    html = client.get(f"/?{TODAY}", headers={"Accept-Language": "sv"}).text
    assert set(_rows(html, "data-station")) == {"kruunupyy", "teerijarvi"} and "Kronoby" in html
    assert client.get("/stations/teerijarvi").status_code == 200
    assert client.get("/stations/kalvia").status_code == 403
    assert [s["station_id"] for s in client.get("/api/v1/stations").json()] == ["kruunupyy", "teerijarvi"]


def test_a_staff_user_gets_a_station_or_a_group_not_both(client):
    from fleet_server.auth.service import AuthSetupError, add_user
    from tests.support.auth_helpers import PASSWORD
    with client.app.state.session_factory() as s:
        with pytest.raises(AuthSetupError, match="instead of a station"):
            add_user(s, "both", "staff", PASSWORD, station_id="kalvia", group_id="soite")
        with pytest.raises(AuthSetupError, match="does not exist"):
            add_user(s, "lost", "staff", PASSWORD, group_id="atlantis")
    make_user(client.app.state.session_factory, "plain", "staff", "kalvia")


def test_wilson_interval_and_two_proportion_test():
    low, high = wilson(9, 12)
    assert (round(low, 4), round(high, 4)) == (0.4677, 0.9111)
    assert wilson(0, 0) is None and wilson(5, 5)[1] == 1.0
    assert compare(50, 100, 360, 400) == "lower" and compare(15, 20, 320, 400) == "similar"
    assert compare(390, 400, 50, 100) == "higher"


@pytest.mark.parametrize("kind", [Station, StationGroup, StationName])
def test_stations_groups_and_overview_rows_name_themselves_by_one_rule(kind):
    named = kind(id="kokkola", name="Kokkola", name_sv="Karleby", name_en="")
    assert [named.name_in(lang) for lang in ("fi", "sv", "en")] == ["Kokkola", "Karleby", "Kokkola"]


def test_the_station_list_and_the_overview_name_stations_in_the_readers_language(client):
    with client.app.state.session_factory() as s:
        s.get(Station, "kruunupyy").name_sv = "Kronoby hälsostation"
        s.get(Station, "kruunupyy").name_fi = "Kruunupyyn terveysasema"
        s.commit()
    client.headers.update(bearer(client, "coordinator"))
    names = {lang: {r["station_id"]: r["name"] for r in client.get(
        "/api/v1/stations", headers={"Accept-Language": lang}).json()} for lang in ("fi", "sv", "en")}
    assert [names[lang]["kruunupyy"] for lang in ("fi", "sv", "en")] == [
        "Kruunupyyn terveysasema", "Kronoby hälsostation", "kruunupyy"]  # en: no English name, the base one
    assert "Kronoby hälsostation" in client.get("/status", headers={"Accept-Language": "sv"}).text  # staff's page


def test_names_are_listed_as_finnish_and_swedish_readers_look_for_them():
    from fleet_server.core.i18n import sort_key

    names = ["Övermark", "Ähtäri", "Åland", "Zeta", "alavus", "Kälviä", "Kaustinen"]
    assert sorted(names, key=sort_key) == ["alavus", "Kaustinen", "Kälviä", "Zeta", "Åland", "Ähtäri", "Övermark"]


SWEDISH = {"kalvia": "Kelviå", "kruunupyy": "Kronoby", "lohtaja": "Lochteå", "teerijarvi": "Terjärv",
           "ullava": "Ullava"}
FINNISH = {"kalvia": "Kälviä", "kruunupyy": "Kruunupyy", "lohtaja": "lohtaja", "teerijarvi": "Teerijärvi",
           "ullava": "Ullava"}  # lower case: listed by its letter (by code point after every capital)


def test_lists_of_stations_and_groups_follow_the_readers_language_and_alphabet(client):
    from fleet_server.core import i18n
    from fleet_server.results.figures import stations_visible

    with client.app.state.session_factory() as s:
        for sid, name in FINNISH.items():
            s.get(Station, sid).name = name
            s.get(Station, sid).name_sv = SWEDISH[sid]
        s.add(StationGroup(id="alavus", parent_id="soite", kind="municipality", name="Ähtäri", name_sv="Etseri"))
        s.commit()
        with i18n.using("fi"):
            assert [st.id for st in stations_visible(s)] == ["kruunupyy", "kalvia", "lohtaja", "teerijarvi", "ullava"]
        with i18n.using("sv"):  # Kelviå before Kronoby: by the Swedish names, not the base ones
            assert [st.id for st in stations_visible(s)] == ["kalvia", "kruunupyy", "lohtaja", "teerijarvi", "ullava"]
            assert [st.id for st in stations_visible(s, ["ullava", "kalvia"])] == ["kalvia", "ullava"]

    make_user(client.app.state.session_factory, "it-tuki", "it")
    sign_in(client, "it-tuki")
    for lang, order in (("fi", ["kruunupyy", "kalvia", "lohtaja", "teerijarvi", "ullava"]),
                        ("sv", ["kalvia", "kruunupyy", "lohtaja", "teerijarvi", "ullava"])):
        listing = client.get("/manage/stations", headers={"Accept-Language": lang}).text
        assert re.findall(r'<tr data-station="([a-z]+)">', listing) == order, lang
    # The groups a station can be moved to: Ähtäri after Kruunupyy in Finnish, Etseri first in Swedish.
    edit = {lang: client.get("/manage/stations/kalvia", headers={"Accept-Language": lang}).text for lang in ("fi", "sv")}
    choices = {lang: re.findall(r'<option value="(alavus|kokkola-city|kruunupyy-municipality)"', html)
               for lang, html in edit.items()}
    assert choices == {"fi": ["kokkola-city", "kruunupyy-municipality", "alavus"],
                       "sv": ["alavus", "kokkola-city", "kruunupyy-municipality"]}
