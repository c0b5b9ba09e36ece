"""The wire contract round-trips and rejects what it must."""

import json
from datetime import UTC, datetime

import pytest
import uuid6

from palaute_wire import contract as c


def _event(**over):
    base = {
        "event_id": str(uuid6.uuid7()), "station_id": "kalvia", "device_id": "kalvia-1", "kind": "smiley", "value": 4,
        "question_id": "visit", "lang": "fi", "ts": "2026-11-27T10:00:00+02:00", "seq": 1, "clock_synced": True,
    }
    base.update(over)
    return base


def _batch(events, **over):
    base = {"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "sent_at": "2026-11-27T08:00:01Z", "events": events}
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


STATUS_TOPIC = "palaute/v1/kalvia/kalvia-1/status"


def _status(**over):
    base = {"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "online": True, "sent_at": "2026-11-27T08:00:01Z"}
    base.update(over)
    return json.dumps(base).encode()


@pytest.mark.parametrize(
    "payload",
    [
        _status(uptime_s=1e300),
        (b'{"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "online": true, '
        b'"sent_at": "2026-11-27T08:00:01Z", "uptime_s": 1e999}'),
        _status(cpu_temp_c=1e6),
        _status(cpu_temp_c=-300.0),
        _status(disk_free_mb=1e12),
        _status(queue_depth=2**31),
        _status(shed_count=2**40),
        _status(oldest_queued_age_s=1e18),
        _status(last_seq=2**62),
        _status(config_version=2**40),
        _status(sent_at="1970-01-01T00:00:00Z"),
        _status(sent_at="9999-12-31T23:59:59Z"),
        _batch([_event(seq=2**62)]),
        _batch([_event(seq=2**63)]),
        _batch([_event(survey_version=2**40)]),
        _batch([_event(ts="0001-01-01T00:00:00Z")]),
        _batch([_event(ts="0001-01-01T00:00:00+02:00")]),
        _batch([_event(ts="1970-01-01T00:00:00Z")]),
        _batch([_event(ts="9999-12-31T23:59:59Z")]),
        _batch([_event()], sent_at="9999-12-31T23:59:59-05:00"),
    ],
)
def test_numbers_and_times_out_of_their_bounds_are_schema_errors(payload):
    topic = STATUS_TOPIC if b'"online"' in payload else TOPIC
    with pytest.raises(c.ContractError) as info:
        c.decode(topic, payload)
    assert info.value.reason == "schema", info.value


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_tokens_are_not_json(token):
    payload = _status().replace(b"}", b', "uptime_s": ' + token + b"}")
    with pytest.raises(c.ContractError) as info:
        c.decode(STATUS_TOPIC, payload)
    assert info.value.reason == "bad_json"


def test_the_largest_values_in_bounds_are_accepted():
    _, status = c.decode(STATUS_TOPIC, _status(uptime_s=c.MAX_DURATION_S, last_seq=c.MAX_SEQ, cpu_temp_c=-40.5,
                                               queue_depth=c.MAX_COUNT, sent_at="2099-12-31T23:59:59Z"))
    assert status.last_seq == 2**53 - 1
    _, batch = c.decode(TOPIC, _batch([_event(seq=c.MAX_SEQ, survey_version=c.MAX_COUNT, ts="2020-01-01T00:00:00Z")]))
    assert batch.events[0].seq == c.MAX_SEQ


def test_a_kiosk_clock_outside_the_window_is_clamped_for_the_wire():
    assert c.clamp_time(datetime(1970, 1, 1, tzinfo=UTC)) == c.TIME_MIN
    assert c.clamp_time(datetime(9999, 1, 1, tzinfo=UTC)) < c.TIME_MAX
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert c.clamp_time(now) == now


def test_status_storage_error_is_optional_and_round_trips():
    """Old kiosks never send storage_error (it defaults to None); new ones say why answers wait in memory."""
    from palaute_wire import contract as c

    old = c.StatusHeartbeat.model_validate_json(
        '{"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "online": true, "sent_at": "2026-12-01T10:00:00Z"}')
    assert old.storage_error is None
    new = old.model_copy(update={"storage_error": "disk_full: 3 answers kept in memory until the disk has room"})
    assert c.decode(c.topic("kalvia", "kalvia-1", "status"), c.encode(new))[1] == new
    assert "storage_error" not in c.encode(old).decode(), "an old server never sees the field from a healthy kiosk"
