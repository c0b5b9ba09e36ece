"""Retention: each kind of history goes after its own window, rollups stay; on PostgreSQL whole
months of answers are dropped as partitions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from fleet_server.core.partitions import ensure_partitions
from fleet_server.core.settings import load_settings
from fleet_server.fleet.retention import apply_retention
from fleet_server.ingest.store import store_batch
from fleet_server.models import Alert, DeadLetter, DevicePresence, FeedbackEvent, SeqGap, StationHour
from tests.support.server_factories import event, events_message

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _uuid7_at(at: datetime) -> uuid.UUID:
    return uuid.UUID(int=(int(at.timestamp() * 1000) << 80) | (7 << 76) | (uuid.uuid4().int & ((1 << 62) - 1)))


def test_each_history_goes_after_its_window_and_the_rollups_stay(sessions):
    old, recent = NOW - timedelta(days=400), NOW - timedelta(days=5)
    engine = sessions.kw["bind"]
    with engine.begin() as conn:  # PostgreSQL: months back to the old answer's (SQLite: nothing to do)
        ensure_partitions(conn, NOW, since=old)
    store_batch(sessions, [events_message([event(seq=1, ts=old, event_id=_uuid7_at(old)),
                                           event(seq=2, ts=recent, event_id=_uuid7_at(recent))])])
    with sessions() as s, s.begin():
        s.add_all([
            DeadLetter(received_at=NOW - timedelta(days=31), topic="t", reason="bad_json", payload=b"x", size=1),
            DeadLetter(received_at=NOW - timedelta(days=1), topic="t", reason="bad_json", payload=b"y", size=1),
            DevicePresence(device_id="kalvia-1", at=NOW - timedelta(days=91), online=True),
            DevicePresence(device_id="kalvia-1", at=NOW - timedelta(days=1), online=False),
            Alert(key="clock:kalvia/kalvia-1", rule="clock", station_id="kalvia", device_id="kalvia-1", message="m",
                  started_at=NOW - timedelta(days=500), cleared_at=NOW - timedelta(days=366)),
            Alert(key="disk:kalvia/kalvia-1", rule="disk", station_id="kalvia", device_id="kalvia-1", message="m",
                  started_at=NOW - timedelta(days=500)),  # still open: kept however old
            SeqGap(device_id="kalvia-1", first_seq=5, last_seq=6, kind="internal", detected_at=NOW,
                   resolved_at=NOW - timedelta(days=91)),
            SeqGap(device_id="kalvia-1", first_seq=8, last_seq=9, kind="internal", detected_at=NOW),
        ])
    settings = load_settings(environ={}, retention_answers_days=365)
    result = apply_retention(engine, settings, NOW)
    assert {k: v for k, v in result.removed.items() if k not in ("answers", "questionnaires")} == {
        "dead_letters": 1, "presence": 1, "alerts": 1, "gaps": 1, "comments": 0}
    with sessions() as s:
        assert s.scalars(select(FeedbackEvent.seq)).all() == [2]
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 1
        assert s.scalar(select(func.count()).select_from(DevicePresence)) == 1
        assert s.scalars(select(Alert.rule)).all() == ["disk"]
        assert s.scalars(select(SeqGap.first_seq)).all() == [8]
        assert s.scalar(select(func.sum(StationHour.c4))) == 2  # the figures keep the old answer
    if engine.dialect.name == "postgresql":  # whole months before the cutoff went as partitions
        assert result.dropped_partitions[0] == f"feedback_events_{old:%Y_%m}"
        assert f"feedback_events_{recent:%Y_%m}" not in result.dropped_partitions
    assert apply_retention(engine, load_settings(environ={}), NOW).removed.get("answers") is None  # 0: for ever


def test_open_comments_go_after_their_own_window_by_the_injected_clock(sessions):
    from fleet_server.models import Station, WebComment

    with sessions() as s, s.begin():
        if s.get(Station, "kalvia") is None:
            s.add(Station(id="kalvia", name="Kälviä"))
            s.flush()
        s.add_all([WebComment(submission_id=uuid.uuid4(), station_id="kalvia", text=f"c{days}", masked=0, lang="fi",
                              received_at=NOW - timedelta(days=days)) for days in (1, 29, 31, 89, 91)])
    engine = sessions.kw["bind"]
    assert apply_retention(engine, load_settings(environ={}), NOW).removed["comments"] == 1  # default: 90 days
    assert apply_retention(engine, load_settings(environ={}, retention_comments_days=30), NOW).removed["comments"] == 2
    with sessions() as s:
        assert sorted(s.scalars(select(WebComment.text))) == ["c1", "c29"]
    later = NOW + timedelta(days=2)  # the same pass two days on: c29 is past 30 days now, c1 is not
    assert apply_retention(engine, load_settings(environ={}, retention_comments_days=30), later).removed["comments"] == 1


def test_questionnaire_responses_go_with_the_raw_answers_and_stay_by_default(sessions):
    from fleet_server.channels.questionnaire import store_response
    from fleet_server.models import QuestionnaireAnswer, QuestionnaireResponse, Station

    with sessions() as s, s.begin():
        if s.get(Station, "kalvia") is None:
            s.add(Station(id="kalvia", name="Kälviä"))
            s.flush()
        for days in (10, 400):
            store_response(s, station_id="kalvia", submission_id=uuid.uuid4(), lang="fi",
                           answers={"thl.recommend": 9, "thl.access": None}, now=NOW - timedelta(days=days))
    engine = sessions.kw["bind"]
    assert apply_retention(engine, load_settings(environ={}), NOW).removed.get("questionnaires") is None
    assert apply_retention(engine, load_settings(environ={}, retention_answers_days=365), NOW).removed[
        "questionnaires"] == 1
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(QuestionnaireResponse)) == 1
        assert s.scalar(select(func.count()).select_from(QuestionnaireAnswer)) == 2
