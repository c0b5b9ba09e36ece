"""The national questionnaire's results item by item (distribution, mean, recommendation index,
share who agree) under the small-count rule, on the station's page and in an export."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from fleet_server.app import create_app
from fleet_server.channels.questionnaire import BY_ID, store_response
from fleet_server.core.settings import load_settings
from fleet_server.results.questionnaire import item_result, results
from tests.support.auth_helpers import bearer, ensure_station
from tests.support.server_factories import answer_day, answered_at

NOW = answered_at(ago=timedelta(minutes=5), spread=timedelta(0))  # on the local day TODAY names
TODAY = answer_day(NOW)


def _seed(session_factory, answers_list, station="kalvia", at=NOW, version=None):
    with session_factory() as s:
        ensure_station(s, station)
        for answers in answers_list:
            store_response(s, station_id=station, submission_id=uuid.uuid4(), lang="fi", answers=answers, now=at)
        if version is not None:
            from fleet_server.models import QuestionnaireResponse

            for r in s.query(QuestionnaireResponse).all():
                r.version = version
        s.commit()


def test_the_recommendation_index_is_promoters_minus_detractors_and_cannot_say_is_left_out():
    raw = {10: 3, 9: 1, 8: 1, 7: 1, 6: 2, 0: 2}  # 10 rated: 4 promoters, 4 detractors
    r = item_result(BY_ID["thl.recommend"], raw, minimum=5)
    assert (r.answers, r.rated, r.index, r.agree) == (10, 10, 0.0, None)
    assert r.mean == pytest.approx((30 + 9 + 8 + 7 + 12) / 10)
    s = item_result(BY_ID["thl.access"], {5: 3, 4: 2, 2: 1, None: 4}, minimum=5)
    assert (s.answers, s.rated, s.cannot_say, s.index) == (10, 6, 4, None)
    assert s.agree == pytest.approx(5 / 6) and s.mean == pytest.approx((15 + 8 + 2) / 6)


def test_an_item_below_the_minimum_is_hidden_whole_and_its_mean_needs_enough_rated_answers():
    hidden = item_result(BY_ID["thl.safety"], {5: 3, 4: 1}, minimum=5)
    assert hidden.hidden and set(hidden.counts.values()) == {None} and hidden.mean is None and hidden.agree is None
    few_rated = item_result(BY_ID["thl.safety"], {5: 2, 4: 1, None: 3}, minimum=5)
    assert not few_rated.hidden and few_rated.counts[5] == 2 and few_rated.cannot_say == 3
    assert few_rated.mean is None and few_rated.agree is None and few_rated.shares[5] is None


def test_figures_count_one_version_of_the_wording(sessions):
    _seed(sessions, [{"thl.recommend": 10}] * 6)
    _seed(sessions, [{"thl.recommend": 0}] * 2, version=0)  # an older wording's responses (all rows, then 6 more)
    _seed(sessions, [{"thl.recommend": 10}] * 6)
    with sessions() as s:
        res = results(s, ["kalvia"], NOW - timedelta(hours=1), NOW + timedelta(hours=1), minimum=5, version=1)
    assert res.responses == 6 and res.other_versions == 8 and res.items[0].index == 100.0


@pytest.fixture
def client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        with c.app.state.session_factory() as s:
            ensure_station(s, "kalvia", "Kälviä")
            ensure_station(s, "lohtaja", "Lohtaja")
            s.commit()
        yield c


def test_the_station_page_shows_each_item_and_hides_small_ones(client):
    _seed(client.app.state.session_factory, [{"thl.recommend": 9, "thl.access": 5, "thl.safety": 4}] * 4 +
          [{"thl.recommend": 3, "thl.access": 2}] * 2)
    page = client.get(f"/stations/kalvia/questionnaire?{TODAY}", headers=bearer(client, "coordinator"))
    assert page.status_code == 200
    html = page.text
    assert 'data-testid="answers-thl.recommend">6<' in html
    assert 'data-testid="index-thl.recommend">33' in html  # (4 - 2) / 6 = 33.3 points
    assert 'data-testid="answers-thl.safety"><span class="too-few"' in html  # 4 answers: hidden
    assert "Minua kohdeltiin arvostavasti" in html or "I was treated with respect" in html


def test_staff_see_their_own_stations_items_only(client):
    staff = bearer(client, "staff", "kalvia")
    assert client.get("/stations/kalvia/questionnaire", headers=staff).status_code == 200
    assert client.get("/stations/lohtaja/questionnaire", headers=staff).status_code == 403
    assert client.get("/stations/kalvia/questionnaire", headers=bearer(client, "it")).status_code == 403


def test_the_export_has_one_row_per_item_with_hidden_figures_in_words(client):
    _seed(client.app.state.session_factory, [{"thl.recommend": 10, "thl.access": 5}] * 5 + [{"thl.recommend": 6}])
    coordinator = bearer(client, "coordinator")
    r = client.get(f"/stations/kalvia/questionnaire.csv?{TODAY}&lang=en", headers=coordinator)
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    by_id = {row["question_id"]: row for row in rows}
    assert list(by_id) == ["thl.recommend", "thl.access", "thl.treatment", "thl.safety", "thl.information",
                           "thl.usefulness"]
    rec = by_id["thl.recommend"]
    assert (rec["answers"], rec["point_10"], rec["point_6"], rec["recommendation_index"]) == ("6", "5", "1", "66.7")
    assert by_id["thl.access"]["agree_share"] == "1.0" and by_id["thl.access"]["point_0"] == ""
    assert by_id["thl.safety"]["answers"] == "too few responses"
    assert client.get("/stations/kalvia/questionnaire.xlsx", headers=coordinator).status_code == 200


def test_the_api_gives_each_item_as_json_under_the_small_count_rule(client):
    _seed(client.app.state.session_factory, [{"thl.recommend": 10, "thl.access": 5}] * 5 + [{"thl.recommend": 6}])
    coordinator = bearer(client, "coordinator")
    r = client.get(f"/api/v1/results/stations/kalvia/questionnaire?{TODAY}", headers=coordinator)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["station_id"], body["responses"], body["version"], body["period"]["days"]) == ("kalvia", 6, 1, 1)
    items = {i["question_id"]: i for i in body["items"]}
    rec = items["thl.recommend"]
    assert (rec["suppressed"], rec["answers"], rec["counts"]["10"], rec["counts"]["6"]) == (False, 6, 5, 1)
    assert (rec["recommendation_index"], rec["agree_share"], rec["scale"]) == (66.7, None, "recommend")
    assert items["thl.access"]["agree_share"] == 1.0 and items["thl.access"]["recommendation_index"] is None
    safety = items["thl.safety"]
    assert safety["suppressed"] and safety["answers"] is None and set(safety["counts"].values()) == {None}
    staff = bearer(client, "staff", "kalvia")
    assert client.get("/api/v1/results/stations/lohtaja/questionnaire", headers=staff).status_code == 403
    assert client.get("/api/v1/results/stations/nowhere/questionnaire", headers=coordinator).status_code == 404
    bad = client.get("/api/v1/results/stations/kalvia/questionnaire?range=custom&from=2026-13-01",
                     headers=coordinator)
    assert bad.status_code == 400 and bad.json()["detail"]
