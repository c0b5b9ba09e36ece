"""The web page's national questionnaire and open comment: per-station choices (off by default),
stored item by item under the page's submission id, comments masked before they are stored."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet_server.app import create_app
from fleet_server.channels import web_settings
from fleet_server.channels.questionnaire import ITEM_IDS, VERSION
from fleet_server.channels.web_survey import survey_path
from fleet_server.core.settings import load_settings
from fleet_server.models import FeedbackEvent, QuestionnaireAnswer, QuestionnaireResponse, WebComment
from tests.support.auth_helpers import ensure_station

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _client(db_url, **over):
    settings = load_settings(environ={}, database_url=db_url, mode="development", **over)
    return TestClient(create_app(settings, start_ingest=False))


def _choose(client, station="kalvia", *, questionnaire=False, comments=False):
    with client.app.state.session_factory() as s:
        web_settings.set_choices(s, station, questionnaire=questionnaire, comments=comments, by="test", now=NOW)
        s.commit()


@pytest.fixture
def client(db_url):
    with _client(db_url) as c:
        with c.app.state.session_factory() as s:
            ensure_station(s, "kalvia", "Kälviä")
            s.commit()
        yield c


def _link(client, station="kalvia"):
    return survey_path(client.app.state.web_links, station)


def _form(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))


def _responses(client):
    with client.app.state.session_factory() as s:
        out = []
        for r in s.scalars(select(QuestionnaireResponse).order_by(QuestionnaireResponse.id)):
            answers = dict(s.execute(select(QuestionnaireAnswer.question_id, QuestionnaireAnswer.value)
                                     .where(QuestionnaireAnswer.response_id == r.id)).all())
            out.append((str(r.submission_id), r.questionnaire, r.version, r.channel, r.lang, answers))
        return out


def _comments(client):
    with client.app.state.session_factory() as s:
        return [(str(c.submission_id), c.text, c.masked) for c in s.scalars(select(WebComment).order_by(WebComment.id))]


def test_a_station_asks_the_smiley_until_a_coordinator_switches_the_questionnaire_on(client):
    page = client.get(_link(client))
    assert 'data-mode="smiley"' in page.text and "thl.recommend" not in page.text
    _choose(client, questionnaire=True)
    page = client.get(_link(client) + "&lang=fi")
    assert 'data-mode="questionnaire"' in page.text
    for item in ITEM_IDS:
        assert f'name="{item}"' in page.text
    assert page.text.count("<fieldset") == len(ITEM_IDS) and page.text.count("<legend>") == len(ITEM_IDS)
    assert 'name="comment"' not in page.text  # comments are a choice of their own
    assert "set-cookie" not in page.headers


@pytest.mark.parametrize(("lang", "recommend", "statement", "thanks"), [
    ("fi", "Kuinka todennäköisesti suosittelisit", "Minua kohdeltiin arvostavasti.", "Kiitos palautteestasi!"),
    ("sv", "Hur sannolikt är det att du skulle rekommendera", "Jag blev bemött med respekt.", "Tack för din respons!"),
    ("en", "How likely would you be to recommend", "I was treated with respect.", "Thank you for your feedback!"),
])
def test_the_questionnaire_is_stored_item_by_item_with_its_version_in_each_language(
        client, lang, recommend, statement, thanks):
    _choose(client, questionnaire=True)
    page = client.get(_link(client) + f"&lang={lang}")
    assert recommend in page.text and statement in page.text
    form = _form(page.text)
    done = client.post("/s/kalvia/questionnaire", data={
        **form, "thl.recommend": "9", "thl.access": "4", "thl.treatment": "5", "thl.safety": "cannot-say"})
    assert done.status_code == 200 and thanks in done.text
    assert _responses(client) == [(form["sid"], "thl", VERSION, "web", lang, {
        "thl.recommend": 9, "thl.access": 4, "thl.treatment": 5, "thl.safety": None})]
    with client.app.state.session_factory() as s:  # the smiley's figures are not touched
        assert s.scalar(select(FeedbackEvent.id)) is None


def test_the_same_questionnaire_sent_twice_is_one_response_and_the_first_holds(client):
    _choose(client, questionnaire=True)
    form = _form(client.get(_link(client)).text)
    client.post("/s/kalvia/questionnaire", data={**form, "thl.recommend": "10"})
    again = client.post("/s/kalvia/questionnaire", data={**form, "thl.recommend": "0", "thl.access": "1"})
    assert again.status_code == 200 and "already saved" in again.text
    assert [r[5] for r in _responses(client)] == [{"thl.recommend": 10}]


@pytest.mark.parametrize("bad", [{"thl.recommend": "11"}, {"thl.recommend": "-1"}, {"thl.access": "0"},
                                 {"thl.access": "6"}, {"thl.recommend": "cannot-say"}, {"thl.safety": "x"}])
def test_a_value_outside_an_items_scale_is_refused_and_nothing_is_stored(client, bad):
    _choose(client, questionnaire=True)
    form = _form(client.get(_link(client)).text)
    r = client.post("/s/kalvia/questionnaire", data={**form, "thl.treatment": "5", **bad})
    assert r.status_code == 400 and _responses(client) == []


def test_an_empty_questionnaire_asks_again_and_stores_nothing(client):
    _choose(client, questionnaire=True)
    form = _form(client.get(_link(client)).text)
    r = client.post("/s/kalvia/questionnaire", data=form)
    assert r.status_code == 400 and 'role="alert"' in r.text and 'data-mode="questionnaire"' in r.text
    assert _responses(client) == []


def test_a_forged_link_or_a_station_without_the_questionnaire_stores_nothing(client):
    form = _form(client.get(_link(client)).text)  # the smiley page: questionnaire off
    assert client.post("/s/kalvia/questionnaire", data={**form, "thl.recommend": "5"}).status_code == 403
    _choose(client, questionnaire=True)
    assert client.post("/s/kalvia/questionnaire",
                       data={**form, "t": "forged", "thl.recommend": "5"}).status_code == 403
    assert _responses(client) == []


def test_the_questionnaire_counts_against_the_per_address_limit(db_url):
    with _client(db_url, web_answers_per_address_hour=2) as client:
        with client.app.state.session_factory() as s:
            ensure_station(s, "kalvia")
            s.commit()
        _choose(client, questionnaire=True)
        codes = [client.post("/s/kalvia/questionnaire", data={**_form(client.get(_link(client)).text),
                                                               "thl.recommend": "8"}).status_code for _ in range(3)]
        assert codes == [200, 200, 429] and len(_responses(client)) == 2


def test_a_comment_at_the_end_of_the_questionnaire_is_masked_before_it_is_stored(client):
    _choose(client, questionnaire=True, comments=True)
    page = client.get(_link(client))
    assert 'name="comment"' in page.text and 'maxlength="500"' in page.text
    form = _form(page.text)
    client.post("/s/kalvia/questionnaire", data={
        **form, "thl.recommend": "3",
        "comment": "Odotin 45 min 1.12.2026 klo 14:30. Soittakaa 040 123 4567, hetu 131052-308T, a@b.fi"})
    expected = "Odotin 45 min 1.12.2026 klo 14:30. Soittakaa [PHONE], hetu [HETU], [EMAIL]"
    assert _comments(client) == [(form["sid"], expected, 3)]


def test_a_comment_alone_is_a_response_too(client):
    _choose(client, questionnaire=True, comments=True)
    form = _form(client.get(_link(client)).text)
    assert client.post("/s/kalvia/questionnaire", data={**form, "comment": "Hyvä palvelu"}).status_code == 200
    assert _responses(client) == [] and [c[1] for c in _comments(client)] == ["Hyvä palvelu"]


def test_after_the_smiley_a_station_with_comments_asks_for_one_and_stores_it_masked(client):
    _choose(client, comments=True)
    form = _form(client.get(_link(client)).text)
    followup = client.post("/s/kalvia", data={**form, "value": "4"})
    step = client.post("/s/kalvia/followup", data={**_form(followup.text), "option": "skip"})
    assert 'data-mode="comment"' in step.text and 'name="comment"' in step.text
    done = client.post("/s/kalvia/comment", data={**_form(step.text), "comment": "Kiitos! p. +358 50 765 4321",
                                                   "action": "send"})
    assert done.status_code == 200 and 'data-testid="thanks"' in done.text
    assert _comments(client) == [(form["sid"], "Kiitos! p. [PHONE]", 1)]
    again = client.post("/s/kalvia/comment", data={**_form(step.text), "comment": "toinen", "action": "send"})
    assert "already saved" in again.text or "jo tallennettu" in again.text
    assert len(_comments(client)) == 1


def test_after_the_follow_up_the_comment_comes_last_and_no_comment_stores_nothing(client):
    _choose(client, comments=True)
    form = _form(client.get(_link(client)).text)
    step = client.post("/s/kalvia", data={**form, "value": "1"})
    assert 'data-mode="followup"' in step.text
    last = client.post("/s/kalvia/followup", data={**_form(step.text), "option": "waiting-time"})
    assert 'data-mode="comment"' in last.text
    client.post("/s/kalvia/comment", data={**_form(last.text), "comment": "ei tallenneta", "action": "skip"})
    assert _comments(client) == []


def test_a_comment_is_taken_only_for_a_page_whose_answer_was_stored(client):
    _choose(client, comments=True)
    form = _form(client.get(_link(client)).text)  # the page was opened but never answered
    r = client.post("/s/kalvia/comment", data={**form, "comment": "spam", "action": "send"})
    assert r.status_code == 400 and _comments(client) == []


def test_a_long_comment_is_cut_to_the_setting_after_masking(db_url):
    with _client(db_url, web_comment_max_chars=60) as client:
        with client.app.state.session_factory() as s:
            ensure_station(s, "kalvia")
            s.commit()
        _choose(client, questionnaire=True, comments=True)
        form = _form(client.get(_link(client)).text)
        text = "x" * 50 + " 131052-308T " + "y" * 100
        client.post("/s/kalvia/questionnaire", data={**form, "comment": text})
        [(_sid, stored, masked)] = _comments(client)
        assert len(stored) <= 60 and "131052" not in stored and "308T" not in stored and masked == 1
