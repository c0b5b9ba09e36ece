"""POST /api/v1/answers: phone and SMS answers, idempotent on the sender's id, every bad input a 4xx."""

from __future__ import annotations

import csv
import json
import uuid

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.models import DeadLetter, FeedbackEvent, StationHour
from fleet_server.results.rollups import rebuild
from tests.support.auth_helpers import bearer, ensure_station


@pytest.fixture
def client(db_url):
    settings = load_settings(environ={}, database_url=db_url, mode="development")
    with TestClient(create_app(settings, start_ingest=False)) as c:
        with c.app.state.session_factory() as s:
            ensure_station(s, "kalvia")
            s.commit()
        c.headers.update(bearer(c, "import"))
        yield c


def answer(**over):
    return {"answer_id": str(uuid.uuid4()), "station_id": "kalvia", "channel": "phone", "kind": "smiley",
            "value": 3, "lang": "fi", "ts": "2026-11-27T09:15:00+02:00", **over}


def _rows(client):
    with client.app.state.session_factory() as s:
        return {(str(e.event_id), e.channel, e.value, e.option_id, e.device_id, e.seq)
                for e in s.scalars(select(FeedbackEvent))}


def _letters(client):
    with client.app.state.session_factory() as s:
        return [(d.topic, d.reason) for d in s.scalars(select(DeadLetter).order_by(DeadLetter.id))]


def test_a_resent_answer_is_stored_once_and_counted_once(client):
    smiley = answer(value=1)
    followup = answer(kind="followup", value="waiting-time", question_id="what-went-wrong", channel="sms",
                      answer_to=smiley["answer_id"])
    first = client.post("/api/v1/answers", json={"v": 1, "answers": [smiley, followup]})
    assert first.status_code == 200, first.text
    assert (first.json()["stored"], first.json()["duplicates"]) == (2, 0)
    again = client.post("/api/v1/answers", json={"v": 1, "answers": [smiley, followup, smiley]})
    assert again.status_code == 200
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 3)
    assert _rows(client) == {(smiley["answer_id"], "phone", 1, None, None, None),
                             (followup["answer_id"], "sms", None, "waiting-time", None, None)}
    with client.app.state.session_factory() as s:
        assert s.scalar(select(func.sum(StationHour.c1))) == 1
        before = [(r.station_id, r.hour, r.c1) for r in s.scalars(select(StationHour))]
        rebuild(s)  # the rollups equal a fresh count
        assert [(r.station_id, r.hour, r.c1) for r in s.scalars(select(StationHour))] == before
    assert _letters(client) == []


def test_the_same_answer_id_with_other_content_is_refused_and_the_first_copy_kept(client):
    a = answer(value=4)
    assert client.post("/api/v1/answers", json={"v": 1, "answers": [a]}).status_code == 200
    r = client.post("/api/v1/answers", json={"v": 1, "answers": [{**a, "value": 1}]})
    assert r.status_code == 422
    assert r.json()["results"][0]["reason"] == "conflicting_duplicate" and "value" in r.json()["detail"]
    assert _rows(client) == {(a["answer_id"], "phone", 4, None, None, None)}
    assert _letters(client) == [("api/v1/answers", "conflicting_duplicate")]


@pytest.mark.parametrize(("bad", "reason", "words"), [
    ({"value": 5}, "schema", "1..4"),
    ({"value": True}, "schema", "value"),
    ({"kind": "followup", "value": 3}, "schema", "option id"),
    ({"channel": "web"}, "schema", "phone, sms"),
    ({"channel": "kiosk"}, "schema", "phone, sms"),
    ({"channel": None}, "schema", "channel"),
    ({"lang": "de"}, "schema", "lang"),
    ({"ts": "2026-11-27T09:15:00"}, "schema", "offset"),
    ({"ts": "1970-01-01T00:00:00Z"}, "schema", "2020"),
    ({"answer_id": "not-a-uuid"}, "schema", "event_id"),
    ({"answer_id": None}, "schema", "event_id"),
    ({"station_id": "Kalvia!"}, "schema", "station_id"),
    ({"station_id": "nowhere"}, "unknown_station", "nowhere"),
    ({"device_id": "kalvia-1"}, "schema", "unknown field"),
    ({"seq": 3}, "schema", "unknown field"),
])
def test_each_bad_answer_is_refused_with_its_reason_and_the_valid_ones_are_stored(client, bad, reason, words):
    good = answer()
    wrong = {**answer(), **bad}
    r = client.post("/api/v1/answers", json={"v": 1, "answers": [good, wrong]})
    assert r.status_code == 422, r.text
    body = r.json()
    assert (body["stored"], body["refused"]) == (1, 1)
    assert body["results"][0]["outcome"] == "stored"
    assert body["results"][1]["reason"] == reason and words in body["results"][1]["detail"], body
    assert words in body["detail"]
    assert {row[0] for row in _rows(client)} == {good["answer_id"]}
    assert _letters(client) == [("api/v1/answers", reason)]


def test_a_missing_answer_id_is_refused_with_what_to_send(client):
    a = answer()
    del a["answer_id"]
    r = client.post("/api/v1/answers", json={"v": 1, "answers": [a]})
    assert r.status_code == 422 and "answer_id" in r.json()["detail"]


@pytest.mark.parametrize(("body", "code", "reason"), [
    (b"{not json", 400, "bad_json"),
    (b"\xff\xfe", 400, "bad_json"),
    (b'{"v": 1, "answers": [{"value": NaN}]}', 400, "bad_json"),
    (b"[]", 400, "bad_json"),
    (b'{"v": 2, "answers": []}', 400, "unsupported_version"),
    (b'{"answers": []}', 400, "unsupported_version"),
    (b'{"v": 1, "answers": []}', 400, "schema"),
    (b'{"v": 1, "answers": {}}', 400, "schema"),
    (b'{"v": 1, "answers": [], "extra": 1}', 400, "schema"),
    (json.dumps({"v": 1, "answers": [answer() for _ in range(501)]}).encode(), 400, "schema"),
    (b'{"v": 1, "answers": ["' + b"x" * (256 * 1024) + b'"]}', 413, "oversize"),
])
def test_an_unusable_body_is_a_4xx_with_its_reason_and_dead_lettered(client, body, code, reason):
    r = client.post("/api/v1/answers", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == code, r.text
    assert r.json()["reason"] == reason and r.json()["detail"].startswith(reason)
    assert _rows(client) == set()
    assert _letters(client) == [("api/v1/answers", reason)]


def test_only_an_import_token_may_deliver_answers(client):
    body = {"v": 1, "answers": [answer()]}
    anonymous = client.post("/api/v1/answers", json=body, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    for role in ("coordinator", "admin", "it"):
        r = client.post("/api/v1/answers", json=body, headers=bearer(client, role))
        assert r.status_code == 403 and "import" in r.json()["detail"]
    assert _rows(client) == set()


def test_a_person_cannot_be_given_the_import_role(client):
    from fleet_server.auth.service import add_user
    from fleet_server.core.errors import AuthSetupError

    with client.app.state.session_factory() as s, pytest.raises(AuthSetupError, match="API tokens"):
        add_user(s, "phone-robot", "import", "correct horse battery")


CSV_HEADER = "answer_id;station_id;channel;kind;value;question_id;lang;ts;answer_to\n"


def test_a_csv_import_stores_the_good_rows_reports_each_bad_one_by_line_and_is_harmless_twice(tmp_path):
    from typer.testing import CliRunner

    from fleet_server.cli import app
    from fleet_server.core.db import make_engine, make_session_factory, migrate

    db = tmp_path / "db.sqlite"
    engine = make_engine(f"sqlite:///{db}")
    migrate(engine)
    with make_session_factory(engine)() as s:
        ensure_station(s, "kalvia")
        s.commit()
    smiley = str(uuid.uuid4())
    lines = [
        f"{smiley};kalvia;phone;smiley;2;visit;fi;2026-11-27T09:00:00Z;",
        f"{uuid.uuid4()};kalvia;phone;followup;waiting-time;what-went-wrong;fi;2026-11-27T09:00:05Z;{smiley}",
        f"{uuid.uuid4()};kalvia;sms;smiley;9;visit;sv;2026-11-27T10:00:00Z;",           # line 4: value
        f"{uuid.uuid4()};nowhere;sms;smiley;3;visit;sv;2026-11-27T10:00:00Z;",          # line 5: station
        ";kalvia;sms;smiley;3;visit;sv;2026-11-27T10:00:00Z;",                         # line 6: no id
        f"{uuid.uuid4()};kalvia;sms;smiley;4;;en;2026-11-27T11:00:00Z;",
    ]
    file = tmp_path / "phone.csv"
    file.write_text("\ufeff" + CSV_HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    env = {"PALAUTE_DATABASE_URL": f"sqlite:///{db}"}
    report = tmp_path / "errors.csv"
    first = CliRunner().invoke(app, ["import", "answers", str(file), "--errors", str(report)], env=env)
    assert first.exit_code == 1, first.output
    assert "6 rows: 3 stored, 0 already stored, 3 refused" in first.output
    assert "phone.csv:4: schema: <root>: Value error, a smiley value is an integer 1..4" in first.output
    assert "phone.csv:5: unknown_station" in first.output
    assert "phone.csv:6: schema: answer_id" in first.output
    rows = list(csv.reader(report.open(encoding="utf-8")))
    assert rows[0] == ["line", "answer_id", "reason", "detail"]
    assert [(r[0], r[2]) for r in rows[1:]] == [("4", "schema"), ("5", "unknown_station"), ("6", "schema")]
    again = CliRunner().invoke(app, ["import", "answers", str(file)], env=env)
    assert "6 rows: 0 stored, 3 already stored, 3 refused" in again.output
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(FeedbackEvent)) == 3
        assert set(s.scalars(select(FeedbackEvent.channel))) == {"phone", "sms"}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,score\n1,2\n")
    refused = CliRunner().invoke(app, ["import", "answers", str(bad)], env=env)
    assert refused.exit_code == 2 and "header row" in refused.output
    engine.dispose()
