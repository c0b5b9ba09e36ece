"""The wire contract round-trips and rejects what it must."""

import json
from datetime import UTC, datetime

import pytest
import uuid6

from palaute_wire import contract as c


def _event(**over):
    base = dict(
        event_id=str(uuid6.uuid7()), station_id="kalvia", device_id="kalvia-1", kind="smiley", value=4,
        question_id="visit", lang="fi", ts="2026-11-27T10:00:00+02:00", seq=1, clock_synced=True,
    )
    base.update(over)
    return base


def _batch(events, **over):
    base = dict(v=1, station_id="kalvia", device_id="kalvia-1", sent_at="2026-11-27T08:00:01Z", events=events)
    base.update(over)
    return json.dumps(base).encode()


TOPIC = "palaute/v1/kalvia/kalvia-1/events"


def test_batch_round_trips_through_encode_and_decode():
    raw = _batch([_event(), _event(seq=2, kind="followup", value="waiting-time", question_id="what-went-wrong")])
    parts, batch = c.decode(TOPIC, raw)
    assert parts == c.TopicParts("kalvia", "kalvia-1", "events")
    assert c.decode(TOPIC, c.encode(batch))[1] == batch
    assert batch.events[0].ts == datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def test_status_config_and_command_round_trip():
    now = c.now_utc()
    status = c.StatusHeartbeat(station_id="kalvia", device_id="kalvia-1", online=True, sent_at=now, queue_depth=3)
    config = c.StationConfig(
        config_version=2, station_id="kalvia",
        survey=c.Survey(question={"fi": "Miten käyntisi meni?", "sv": "Hur gick besöket?", "en": "How was your visit?"}),
    )
    cmd = c.Command(cmd_id="c1", name="resend", from_seq=10, issued_at=now)
    for channel, message in (("status", status), ("config", config), ("cmd", cmd)):
        topic = c.topic("kalvia", "kalvia-1", channel)
        assert c.decode(topic, c.encode(message))[1] == message


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"{not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        (b"[1, 2]", "bad_json"),
        (_batch([_event()], v=2), "unsupported_version"),
        (json.dumps({"station_id": "kalvia"}).encode(), "unsupported_version"),
        (_batch([_event(value=5)]), "schema"),
        (_batch([_event(value=True)]), "schema"),
        (_batch([_event(kind="followup", value=3)]), "schema"),
        (_batch([_event(seq=0)]), "schema"),
        (_batch([_event(ts="2026-11-27T10:00:00")]), "schema"),
        (_batch([_event(event_id="not-a-uuid")]), "schema"),
        (_batch([_event(lang="de")]), "schema"),
        (_batch([]), "schema"),
        (_batch([_event(extra="field")]), "schema"),
        (_batch([_event(device_id="kalvia-2")]), "schema"),
        (_batch([_event(station_id="lohtaja")], station_id="lohtaja"), "topic_mismatch"),
        (b"{" + b" " * (c.MAX_PAYLOAD_BYTES + 1) + b"}", "oversize"),
    ],
)
def test_decode_rejects_with_reason(payload, reason):
    with pytest.raises(c.ContractError) as info:
        c.decode(TOPIC, payload)
    assert info.value.reason == reason


@pytest.mark.parametrize("name", ["palaute/v1/kalvia/events", "palaute/v2/a/b/events", "palaute/v1/A/b/events",
                                  "palaute/v1/a/b/other", "palaute/v1/a/b/events/x"])
def test_malformed_topics_are_rejected(name):
    with pytest.raises(c.ContractError) as info:
        c.decode(name, _batch([_event()]))
    assert info.value.reason == "bad_topic"


def test_topic_builder_refuses_non_slugs():
    assert c.topic("kalvia", "k-1", "status") == "palaute/v1/kalvia/k-1/status"
    with pytest.raises(ValueError):
        c.topic("Kälviä", "k-1", "status")
    with pytest.raises(ValueError):
        c.topic("kalvia", "k-1", "nope")
