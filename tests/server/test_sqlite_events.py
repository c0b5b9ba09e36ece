"""The SQLite ingest's own decoding (fleet_server.ingest.sqlite_events): the contract's rules, other output.

``decode`` must accept only what ``contract.decode`` accepts and make of it exactly the
parameters the generic path makes (``params_of(_event_row(...))``); whatever it declines
still gets stored, or dead-lettered with its reason, by the generic path. And what the
fast path stores (hex ids, time texts, rollups, conflicts) must be what the generic path
stores.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import astuple
from datetime import UTC, datetime, timedelta

import pytest
import uuid6
from sqlalchemy import func, insert, select, text

from fleet_server.ingest import decoder as decoding
from fleet_server.ingest import sqlite_events
from fleet_server.ingest.store import (
    REASON_CONFLICTING_DUPLICATE,
    InboundMessage,
    PreparedBatch,
    _event_row,
    prepare,
    store_batch,
)
from fleet_server.models import ChannelHour, DeadLetter, FeedbackEvent, FollowupHour, StationHour
from fleet_server.results import rollups
from palaute_wire import contract
from tests.support.server_factories import T0, event, events_message
from tests.support.waiting import wait_until

TOPIC = "palaute/v1/kalvia/kalvia-1/events"
RECEIVED = datetime(2026, 11, 27, 8, 0, 5, 123456, tzinfo=UTC)


def _event(**over):
    data = {
        "event_id": str(uuid6.uuid7()), "station_id": "kalvia", "device_id": "kalvia-1", "kind": "smiley",
        "value": 4, "question_id": "visit", "lang": "fi", "ts": "2026-11-27T08:00:00.250000Z", "seq": 7,
        "clock_synced": True, "survey_version": 0, "answer_to": None, "flags": [], "epoch": str(uuid6.uuid7()),
        "boot_id": str(uuid6.uuid7()), "mono_s": 960.25, "ts_offset_s": None,
    }
    data.update(over)
    return {k: v for k, v in data.items() if v is not DROP}


DROP = object()


def _payload(events, **over) -> bytes:
    data = {"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "sent_at": "2026-11-27T08:00:01Z", "events": events}
    data.update(over)
    return json.dumps({k: v for k, v in data.items() if v is not DROP}).encode()


def _generic(payload: bytes) -> list[dict] | None:
    """What the generic path makes of ``payload``, as parameters (None: the contract refuses it)."""
    try:
        _, batch = contract.decode(TOPIC, payload)
    except contract.ContractError:
        return None
    return [sqlite_events.params_of(_event_row(e, RECEIVED)) for e in batch.events]


def _fast(payload: bytes, topic: str = TOPIC) -> list[dict] | None:
    params = sqlite_events.decode(contract.parse_topic(topic), payload, sqlite_events.time_text(RECEIVED))
    return None if params is None else params.events


def _comparable(params: list[dict]) -> list[dict]:
    # flags (a tuple or a list) and ts (a datetime) are not parameters of the INSERT
    return [{k: v for k, v in p.items() if k not in ("flags", "ts", "option_id")} for p in params]


FOLLOWUP = {"kind": "followup", "value": "queue", "question_id": "what-went-wrong", "answer_to": str(uuid6.uuid7())}

ACCEPTED_HERE = {
    "a kiosk's smiley": [_event()],
    "on the second": [_event(ts="2026-11-27T08:00:00Z")],
    "a followup": [_event(**FOLLOWUP)],
    "flags": [_event(flags=["burst"]), _event(flags=["out_of_hours", "burst"])],
    "optional fields left out": [_event(survey_version=DROP, answer_to=DROP, flags=DROP, epoch=DROP, boot_id=DROP,
                                        mono_s=DROP, ts_offset_s=DROP)],
    "another channel": [_event(channel="web")],
    "clock corrected": [_event(clock_synced=False, ts_offset_s=-3600.5)],
}

DECLINED_HERE_ACCEPTED_THERE = {
    "an uppercase uuid": [_event(event_id=str(uuid6.uuid7()).upper())],
    "a uuid without dashes": [_event(epoch=uuid6.uuid7().hex)],
    "an offset spelled out": [_event(ts="2026-11-27T10:00:00.250000+02:00")],
    "milliseconds": [_event(ts="2026-11-27T08:00:00.250Z")],
}

REFUSED = {
    "no events": [],
    "a smiley value 5": [_event(value=5)],
    "a smiley value as text": [_event(value="4")],
    "a followup value 3": [_event(**{**FOLLOWUP, "value": 3})],
    "a smiley answering": [_event(answer_to=str(uuid6.uuid7()))],
    "a day that does not exist": [_event(ts="2026-02-30T08:00:00.000000Z")],
    "a time before 2020": [_event(ts="2019-12-31T23:59:59.999999Z")],
    "a naive time": [_event(ts="2026-11-27T08:00:00.250000")],
    "an unknown field": [_event(colour="red")],
    "an unknown flag": [_event(flags=["loud"])],
    "another device's event": [_event(device_id="kalvia-2")],
    "seq 0": [_event(seq=0)],
    "mono_s NaN": [_event(mono_s=float("nan"))],
    "a bad channel": [_event(channel="fax")],
    "an uppercase slug": [_event(question_id="Visit")],
}


@pytest.mark.parametrize("events", ACCEPTED_HERE.values(), ids=ACCEPTED_HERE.keys())
def test_decode_makes_the_generic_paths_parameters(events):
    payload = _payload(events)
    fast = _fast(payload)
    assert fast is not None
    assert _comparable(fast) == _comparable(_generic(payload))


@pytest.mark.parametrize("events", DECLINED_HERE_ACCEPTED_THERE.values(), ids=DECLINED_HERE_ACCEPTED_THERE.keys())
def test_decode_leaves_other_spellings_to_the_generic_path(events):
    payload = _payload(events)
    assert _generic(payload) is not None
    assert _fast(payload) is None


@pytest.mark.parametrize("events", REFUSED.values(), ids=REFUSED.keys())
def test_decode_refuses_what_the_contract_refuses(events):
    payload = _payload(events)
    assert _generic(payload) is None
    assert _fast(payload) is None


@pytest.mark.parametrize(("topic", "over"), [
    (TOPIC, {"v": DROP}), (TOPIC, {"v": 2}), (TOPIC, {"sent_at": "yesterday"}), (TOPIC, {"extra": 1}),
    ("palaute/v1/kalvia/kalvia-9/events", {}),
], ids=["no version", "version 2", "bad sent_at", "unknown batch field", "topic of another device"])
def test_decode_refuses_a_bad_batch(topic, over):
    payload = _payload([_event()], **over)
    assert _fast(payload, topic) is None
    with pytest.raises(contract.ContractError):
        contract.decode(topic, payload)


def test_the_insert_fills_every_column_the_generic_row_has():
    assert sqlite_events.COLUMNS == tuple(_event_row(event(), RECEIVED))


@pytest.fixture
def db_url(sqlite_url):
    """This module's ``sessions`` are on SQLite only: the path it tests is SQLite's."""
    return sqlite_url


def _message(events, received_at=RECEIVED) -> InboundMessage:
    return InboundMessage(TOPIC, _payload(events), received_at=received_at)


def test_most_messages_take_the_sqlite_path(sessions):
    ready = prepare([_message([_event()]), _message(DECLINED_HERE_ACCEPTED_THERE["an uppercase uuid"])], "sqlite")
    assert [type(p).__name__ for _, p in ready.payloads] == ["EventParams", "EventBatch"]


def test_rows_stored_by_the_sqlite_path_are_what_sqlalchemy_stores(sessions):
    def stored(s, event_id):
        return s.execute(text("SELECT * FROM feedback_events WHERE event_id = :id"),
                         {"id": uuid.UUID(event_id).hex}).mappings().one()

    for events in ([_event()], [_event(**FOLLOWUP, seq=8, flags=["burst", "out_of_hours"], channel="phone")],
                   [_event(ts="2026-11-27T08:00:00Z", epoch=DROP, boot_id=DROP, mono_s=DROP)]):
        message = _message(events)
        store_batch(sessions, PreparedBatch([message], "sqlite"))
        (row,) = (_event_row(e, RECEIVED) for e in contract.decode(TOPIC, message.payload)[1].events)
        row["event_id"] = uuid6.uuid7()
        with sessions() as s:
            s.execute(insert(FeedbackEvent.__table__), [row])
            fast, orm = stored(s, events[0]["event_id"]), stored(s, str(row["event_id"]))
        assert {k: v for k, v in fast.items() if k not in ("id", "event_id")} == \
               {k: v for k, v in orm.items() if k not in ("id", "event_id")}
        assert fast["event_id"] == uuid.UUID(events[0]["event_id"]).hex


def _rollup_rows(sessions):
    """The rollup tables as SQLite stores them (the hours' text too: a cell written in another spelling
    of its hour would be a second cell, and would fall out of the dashboard's ranges)."""
    with sessions() as s:
        return [sorted(tuple(r) for r in s.execute(text(f"SELECT * FROM {t}")).all()) for t in
                (StationHour.__tablename__, ChannelHour.__tablename__, FollowupHour.__tablename__)]


def test_rollups_from_the_sqlite_path_are_a_rebuild_of_the_events(sessions):
    smiley = _event(value=2, ts="2026-11-27T08:59:59.999999Z", seq=1)
    messages = [
        _message([smiley, _event(value=3, ts="2026-11-27T09:00:00Z", seq=2, flags=["burst"]),
                  _event(value=1, seq=3, flags=["burst", "out_of_hours"], channel="web")]),
        _message([_event(**{**FOLLOWUP, "answer_to": smiley["event_id"]}, seq=4)]),  # its smiley in the same batch
    ]
    store_batch(sessions, PreparedBatch(messages, "sqlite"))
    later = _message([_event(**{**FOLLOWUP, "answer_to": smiley["event_id"]}, seq=5),  # its smiley stored before
                      _event(**FOLLOWUP, seq=6)])  # its smiley never seen: smiley 0
    store_batch(sessions, PreparedBatch([later, later], "sqlite"))  # twice: counted once
    counted = _rollup_rows(sessions)
    with sessions() as s:
        assert rollups.rebuild(s) == 6
        s.commit()
    assert counted == _rollup_rows(sessions)
    with sessions() as s:
        assert s.scalar(select(func.sum(FollowupHour.n)).where(FollowupHour.smiley == 2)) == 2


def test_a_redelivery_stored_twice_in_one_transaction_is_counted_once(sessions):
    first = _message([_event(seq=1), _event(seq=2)])
    again = _message([json.loads(first.payload)["events"][1], _event(seq=3)],
                     received_at=RECEIVED + timedelta(minutes=1))
    with sessions() as s:
        from fleet_server.ingest.store import handle_batch

        one = handle_batch(s, PreparedBatch([first], "sqlite"))
        two = handle_batch(s, PreparedBatch([again], "sqlite"))
        s.commit()
    assert (one.inserted, two.inserted, two.duplicates, two.dead_lettered) == (2, 1, 1, 0)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(FeedbackEvent)) == 3
        assert s.scalar(select(func.sum(StationHour.c4))) == 3


def test_the_same_event_in_both_spellings_is_one_event_not_a_conflict(sessions):
    ours = _event(seq=1)
    shouted = {**ours, "epoch": ours["epoch"].upper()}
    result = store_batch(sessions, PreparedBatch([_message([ours]), _message([shouted])], "sqlite"))
    assert (result.inserted, result.duplicates, result.dead_lettered) == (1, 1, 0)
    result = store_batch(sessions, PreparedBatch([_message([shouted])], "sqlite"))
    assert (result.inserted, result.duplicates, result.dead_lettered) == (0, 1, 0)


def test_a_conflicting_copy_on_the_sqlite_path_is_dead_lettered_with_both(sessions):
    kept = _event(seq=1, value=4)
    store_batch(sessions, PreparedBatch([_message([kept])], "sqlite"))
    forged = {**kept, "value": 1}
    twice = {**kept, "event_id": str(uuid6.uuid7()), "seq": 2}
    result = store_batch(sessions, PreparedBatch(
        [_message([forged]), _message([twice]), _message([{**twice, "lang": "sv"}])], "sqlite"))
    assert (result.inserted, result.dead_lettered) == (1, 2)
    with sessions() as s:
        letters = list(s.scalars(select(DeadLetter).order_by(DeadLetter.id)))
    assert {d.reason for d in letters} == {REASON_CONFLICTING_DUPLICATE}
    by_field = {("value" in d.detail, "lang" in d.detail): d for d in letters}
    stored_before, in_batch = by_field[(True, False)], by_field[(False, True)]
    assert "was stored before" in stored_before.detail and json.loads(stored_before.stored_payload)["value"] == 4
    assert "came twice in one batch" in in_batch.detail and json.loads(in_batch.payload)["lang"] == "sv"


def test_a_seq_jump_on_the_sqlite_path_is_dead_lettered_and_the_rest_stored(sessions):
    store_batch(sessions, [events_message([event(seq=10, ts=T0)])])
    result = store_batch(sessions, PreparedBatch([_message([_event(seq=11), _event(seq=10**7)])], "sqlite"))
    assert (result.inserted, result.dead_lettered) == (1, 1)


def _rebuilt(sessions) -> list:
    with sessions() as s:
        rollups.rebuild(s)
        s.commit()
    return _rollup_rows(sessions)


def test_the_writer_uses_what_the_preparer_counted(sessions, monkeypatch):
    smiley = _event(value=2, seq=1)
    ready = PreparedBatch([_message([smiley, _event(value=4, seq=2, flags=["burst"])]),
                           _message([_event(**{**FOLLOWUP, "answer_to": smiley["event_id"]}, seq=3)])], "sqlite")
    assert ready.decoded.ahead is not None and ready.decoded.ahead.events == 3

    def not_in_the_writer(*_a):
        raise AssertionError("the writer counted again what the preparer had counted")

    monkeypatch.setattr(sqlite_events, "count", not_in_the_writer)
    monkeypatch.setattr(sqlite_events, "flat_params", not_in_the_writer)
    assert store_batch(sessions, ready).inserted == 3
    monkeypatch.undo()
    counted = _rollup_rows(sessions)
    assert counted == _rebuilt(sessions)


def test_a_message_dropped_by_the_writer_is_not_in_the_rollups(sessions):
    store_batch(sessions, PreparedBatch([_message([_event(seq=1)])], "sqlite"))  # kalvia-1 is kalvia's
    elsewhere = _event(station_id="ullava", seq=2, value=1)
    topic = TOPIC.replace("kalvia/", "ullava/")
    ready = PreparedBatch([_message([_event(seq=3, value=3)]),
                           InboundMessage(topic, _payload([elsewhere], station_id="ullava"), received_at=RECEIVED)],
                          "sqlite")
    assert ready.decoded.ahead.events == 2  # counted ahead, then one message dead-lettered by the writer
    result = store_batch(sessions, ready)
    assert (result.inserted, result.dead_lettered) == (1, 1)
    counted = _rollup_rows(sessions)
    assert counted == _rebuilt(sessions)
    with sessions() as s:
        assert s.scalar(select(func.sum(StationHour.c1))) == 0


def test_a_transaction_tried_again_counts_its_answers_once(sessions):
    from fleet_server.ingest.store import handle_batch

    stored = _event(value=1, seq=1)
    store_batch(sessions, PreparedBatch([_message([stored])], "sqlite"))
    ready = PreparedBatch([_message([_event(**{**FOLLOWUP, "answer_to": stored["event_id"]}, seq=2),
                                     _event(value=3, seq=3)])], "sqlite")
    with sessions() as s:  # the first attempt fails before its commit (the database went away, say)
        handle_batch(s, ready)
        s.rollback()
    assert store_batch(sessions, ready).inserted == 2
    counted = _rollup_rows(sessions)
    assert counted == _rebuilt(sessions)
    with sessions() as s:
        assert s.scalar(select(func.sum(FollowupHour.n)).where(FollowupHour.smiley == 1)) == 1


# ---- a backlog decoded by the ingest's decoding process (fleet_server/ingest/decoder.py)


@pytest.fixture
def decoder(monkeypatch):
    """A running decoding process that takes every transaction (not only those of a full message)."""
    monkeypatch.setattr(decoding, "MIN_EVENTS", 1)
    process = decoding.Decoder("test-decoder").start()
    wait_until(lambda: process.decode([]) is not None, 30.0, "the decoding process up")
    yield process
    process.close()


def test_the_decoding_process_decodes_as_the_server_does(decoder):
    smiley = _event(value=2, seq=1)
    messages = [
        _message([smiley, _event(value=4, seq=2, flags=["burst"])]),
        _message([_event(**{**FOLLOWUP, "answer_to": smiley["event_id"]}, seq=3),  # its smiley in another message
                  _event(**FOLLOWUP, seq=4)]),  # its smiley stored before, if at all: looked up by the writer
        _message(DECLINED_HERE_ACCEPTED_THERE["an uppercase uuid"]),
        InboundMessage(TOPIC, b"{not json", received_at=RECEIVED),
    ]
    apart, ahead = decoder.decode([(m.topic, m.payload, m.received_at) for m in messages])
    here = [sqlite_events.decode(contract.parse_topic(m.topic), m.payload, sqlite_events.time_text(RECEIVED))
            for m in messages]
    assert [p is None for p in apart] == [p is None for p in here] == [False, False, True, True]
    for got, want in zip(apart[:2], here[:2], strict=True):
        assert (got.station_id, got.device_id, got.max_seq, got.ids) == \
               (want.station_id, want.device_id, want.max_seq, want.ids)
        assert got.events == [{k: e[k] for k in sqlite_events.PARAMS} for e in want.events]
    assert ahead == sqlite_events.ahead(here[:2])
    assert decoder.batches == 1


def _store_all(sessions, transactions, decoder=None) -> list[tuple]:
    return [astuple(store_batch(sessions, PreparedBatch(messages, "sqlite", decoder))) for messages in transactions]


def _contents(sessions) -> tuple:
    with sessions() as s:
        events = sorted(tuple(v for k, v in r.items() if k != "id")
                        for r in s.execute(text("SELECT * FROM feedback_events")).mappings())
        letters = sorted((d.reason, d.detail, d.count) for d in s.scalars(select(DeadLetter)))
    return events, letters, _rollup_rows(sessions)


def test_what_the_decoding_process_decoded_is_stored_as_what_the_server_decoded(sessions, decoder, tmp_path):
    from fleet_server.core.db import make_engine, make_session_factory, migrate

    here_url = f"sqlite:///{tmp_path / 'decoded-here.db'}"
    migrate(here_url)
    here = make_session_factory(make_engine(here_url))
    first, stored = _event(value=2, seq=1), _event(value=4, seq=2)
    transactions = [
        [_message([first, _event(value=3, seq=3, flags=["burst"])]),
         _message([_event(**{**FOLLOWUP, "answer_to": first["event_id"]}, seq=4)]),
         InboundMessage(TOPIC.replace("kalvia/", "ullava/"),  # another station's: dropped by the writer
                        _payload([_event(station_id="ullava", seq=5)], station_id="ullava"), received_at=RECEIVED)],
        [_message([stored])],
        [_message([first, _event(value=1, seq=6)]),  # a redelivery, in part
         _message([{**stored, "value": 1}]),  # a forged copy of one stored before
         _message([_event(**{**FOLLOWUP, "answer_to": stored["event_id"]}, seq=7)]),  # its smiley stored before
         _message(DECLINED_HERE_ACCEPTED_THERE["an uppercase uuid"]),  # the generic path
         InboundMessage(TOPIC, b"{not json", received_at=RECEIVED),
         _message([_event(seq=8), _event(seq=8, event_id=first["event_id"], value=4)])],  # an id twice, other content
        [_message([_event(seq=9), _event(seq=10**7)])],  # a seq jump
    ]
    assert _store_all(sessions, transactions, decoder) == _store_all(here, transactions)
    assert decoder.batches == len(transactions)
    assert _contents(sessions) == _contents(here)
    assert _rollup_rows(sessions) == _rebuilt(sessions)


def test_without_its_decoding_process_the_server_decodes_and_loses_nothing(sessions, decoder, monkeypatch, caplog):
    decoder._process.kill()
    decoder._process.join(10)
    messages = [_message([_event(seq=1), _event(seq=2)]), _message([_event(seq=3)])]
    ready = PreparedBatch(messages, "sqlite", decoder)
    assert decoder.batches == 0 and "the ingest's decoding process failed" in caplog.text
    assert store_batch(sessions, ready).inserted == 3
    assert _rollup_rows(sessions) == _rebuilt(sessions)
    monkeypatch.setattr(decoding, "RESTART_AFTER_S", 0.0)  # then a new process takes over
    wait_until(lambda: decoder.decode([]) is not None, 30.0, "a new decoding process")
    assert store_batch(sessions, PreparedBatch([_message([_event(seq=4)])], "sqlite", decoder)).inserted == 1
    assert decoder.batches == 1


def test_the_writer_binds_what_the_decoding_process_made_and_makes_no_dict_per_answer(sessions, decoder, monkeypatch):
    smiley = _event(value=2, seq=1)
    ready = PreparedBatch([_message([smiley, _event(value=4, seq=2)]),
                           _message([_event(**{**FOLLOWUP, "answer_to": smiley["event_id"]}, seq=3)])], "sqlite", decoder)
    assert decoder.batches == 1

    def not_in_the_server(*_a):
        raise AssertionError("the server decoded, flattened or counted what the decoding process had")

    for name in ("decode", "count", "flat_params"):
        monkeypatch.setattr(sqlite_events, name, not_in_the_server)
    monkeypatch.setattr(sqlite_events.EventParams, "events", property(not_in_the_server))
    assert store_batch(sessions, ready).inserted == 3
    monkeypatch.undo()
    assert _rollup_rows(sessions) == _rebuilt(sessions)
