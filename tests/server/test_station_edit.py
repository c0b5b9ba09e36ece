"""The station editing page: names in fi/sv/en and the group, for IT and coordinators, behind
CSRF, with every saved change kept (who, when, old and new)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.models import Station, StationEdit, StationGroup
from tests.support.auth_helpers import make_user, page_csrf, sign_in


@pytest.fixture
def client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        with c.app.state.session_factory() as s:
            s.add(StationGroup(id="soite", kind="county", name="Soite"))
            s.flush()
            s.add_all([StationGroup(id="kokkola", parent_id="soite", kind="municipality", name="Kokkola"),
                       StationGroup(id="kruunupyy", parent_id="soite", kind="municipality", name="Kruunupyy",
                                    name_sv="Kronoby")])
            s.flush()
            s.add(Station(id="kalvia", name="Kälviä health station", group_id="kruunupyy"))
            s.commit()
        yield c


def _form(client: TestClient, **changes) -> dict[str, str]:
    page = client.get("/manage/stations/kalvia")
    assert page.status_code == 200
    data = {"csrf_token": page_csrf(page.text), "name": "Kälviä health station", "name_fi": "", "name_sv": "",
            "name_en": "", "group_id": "kruunupyy"}
    data.update(changes)
    return data


def test_a_coordinator_names_a_station_in_three_languages_and_moves_it(client):
    make_user(client.app.state.session_factory, "koordinaattori", "coordinator")
    sign_in(client, "koordinaattori")
    saved = client.post("/manage/stations/kalvia", data=_form(
        client, name_fi="Kälviän terveysasema", name_sv="Kelviå hälsostation", name_en="Kälviä health station",
        group_id="kokkola"), follow_redirects=False)
    assert saved.status_code == 303
    with client.app.state.session_factory() as s:
        st = s.get(Station, "kalvia")
        assert (st.name_fi, st.name_sv, st.group_id) == ("Kälviän terveysasema", "Kelviå hälsostation", "kokkola")
        (edit,) = s.scalars(select(StationEdit)).all()
    assert edit.by == "koordinaattori" and edit.station_id == "kalvia"
    assert edit.changes["group_id"] == ["kruunupyy", "kokkola"]
    assert edit.changes["name_sv"] == [None, "Kelviå hälsostation"]
    page = client.get(saved.headers["location"]).text
    assert "koordinaattori" in page and "kruunupyy → kokkola" in page
    assert "Kelviå hälsostation" in client.get("/?range=7d", headers={"Accept-Language": "sv"}).text
    listing = client.get("/manage/stations", headers={"Accept-Language": "sv"}).text
    assert "Kelviå hälsostation" in listing and "Soite › Kokkola" in listing


def test_saving_without_a_change_keeps_no_trail_and_a_bad_group_changes_nothing(client):
    make_user(client.app.state.session_factory, "it", "it")
    sign_in(client, "it")
    same = client.post("/manage/stations/kalvia", data=_form(client))
    assert same.status_code == 200 and "Nothing changed." in same.text
    bad = client.post("/manage/stations/kalvia", data=_form(client, group_id="nowhere", name_fi="X"))
    assert bad.status_code == 400 and "no group nowhere" in bad.text
    empty = client.post("/manage/stations/kalvia", data=_form(client, name="  "))
    assert empty.status_code == 400
    with client.app.state.session_factory() as s:
        assert s.scalars(select(StationEdit)).all() == []
        assert s.get(Station, "kalvia").name_fi is None
    assert '<a href="/stations/kalvia/config">' in client.get("/manage/stations/kalvia").text  # IT keeps the hours


def test_a_post_without_the_form_token_is_refused(client):
    make_user(client.app.state.session_factory, "koordinaattori", "coordinator")
    sign_in(client, "koordinaattori")
    data = _form(client, name_fi="Kälviän terveysasema")
    for token in (None, "forged"):
        sent = dict(data)
        if token is None:
            del sent["csrf_token"]
        else:
            sent["csrf_token"] = token
        assert client.post("/manage/stations/kalvia", data=sent).status_code == 403
    with client.app.state.session_factory() as s:
        assert s.get(Station, "kalvia").name_fi is None


def test_staff_and_anonymous_visitors_cannot_edit_stations(client):
    assert client.get("/manage/stations", follow_redirects=False).status_code in (303, 307, 302)
    make_user(client.app.state.session_factory, "hoitaja", "staff", "kalvia")
    sign_in(client, "hoitaja")
    assert client.get("/manage/stations").status_code == 403
    assert client.get("/manage/stations/kalvia").status_code == 403
    csrf = page_csrf(client.get("/").text) if 'name="csrf_token"' in client.get("/").text else "x"
    assert client.post("/manage/stations/kalvia", data={"csrf_token": csrf, "name": "Hacked"}).status_code == 403
    with client.app.state.session_factory() as s:
        assert s.get(Station, "kalvia").name == "Kälviä health station"
