"""decode's fast path (pydantic-core alone) accepts only what the contract's rules accept, as the same message.

``contract._validate`` applies the rules in order and names the reason of a
refusal; ``contract._validate_fast`` is what valid events and statuses take. If the
fast path accepted something the rules refuse, or made another message of it, a
bad message could be stored instead of dead-lettered: so the two are compared on
valid payloads, on every kind of broken field, and on generated ones.
"""

import json
from datetime import UTC, datetime

import pytest
import uuid6
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from palaute_wire import contract as c
from palaute_wire.errors import ContractError

TOPIC = "palaute/v1/kalvia/kalvia-1/events"
STATUS_TOPIC = "palaute/v1/kalvia/kalvia-1/status"


def _event(**over):
    base = {
        "event_id": str(uuid6.uuid7()), "station_id": "kalvia", "device_id": "kalvia-1", "kind": "smiley", "value": 4,
        "question_id": "visit", "lang": "fi", "ts": "2026-11-27T08:00:00Z", "seq": 1, "clock_synced": True,
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not _DROP}


def _batch(events, **over):
    base = {"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "sent_at": "2026-11-27T08:00:01Z", "events": events}
    base.update(over)
    return json.dumps({k: v for k, v in base.items() if v is not _DROP}).encode()


def _status(**over):
    base = {"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "online": True, "sent_at": "2026-11-27T08:00:01Z"}
    base.update(over)
    return json.dumps({k: v for k, v in base.items() if v is not _DROP}).encode()


_DROP = object()


def _same(channel: str, payload: bytes) -> bool:
    """The fast path agrees with the rules on ``payload``; True if it accepted it."""
    fast = c._validate_fast(channel, payload)
    try:
        slow = c._validate(channel, payload)
    except ContractError as exc:
        assert fast is None, f"fast path accepted what the rules refuse ({exc.reason}: {exc.detail})"
        return False
    if fast is None:
        return False
    assert type(fast) is type(slow)
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert c.encode(fast) == c.encode(slow)
    assert fast.model_fields_set == slow.model_fields_set
    if isinstance(fast, c.EventBatch):
        for a, b in zip(fast.events, slow.events, strict=True):
            assert type(a) is type(b) and a.model_fields_set == b.model_fields_set
            assert a.ts.utcoffset() == b.ts.utcoffset() and a.ts.hour == b.ts.hour
    return True


def test_valid_events_and_statuses_take_the_fast_path():
    events = [_event(seq=1), _event(seq=2, kind="followup", value="waiting-time", question_id="what-went-wrong",
                                    answer_to=str(uuid6.uuid7()), flags=["burst"], channel="web"),
              _event(seq=3, epoch=str(uuid6.uuid7()), boot_id=str(uuid6.uuid7()), mono_s=12.5, ts_offset_s=-3.0,
                     clock_synced=False, survey_version=7, flags=["out_of_hours", "burst"])]
    assert _same("events", _batch(events))
    status = _status(software_version="0.2.0", uptime_s=10, queue_depth=0, last_seq=3, epoch=str(uuid6.uuid7()),
                     connected_at="2026-11-27T07:00:00Z", held_from_seq=4, clock_synced=True, cpu_temp_c=45.5,
                     clock_corrections=[{"boot_id": str(uuid6.uuid7()), "first_seq": 1, "last_seq": 2,
                                         "offset_s": 60.0, "synced_at": "2026-11-27T07:30:00Z"}],
                     last_command={"cmd_id": "c1", "name": "identify", "ok": True, "at": "2026-11-27T07:10:00Z"},
                     update_state="idle")
    assert _same("status", status)
    assert _same("status", c.encode(c.StatusHeartbeat(station_id="kalvia", device_id="kalvia-1", online=False,
                                                      sent_at=c.now_utc())))


@pytest.mark.parametrize("payload", [
    _batch([_event(ts="2026-11-27T10:00:00+02:00")]),  # another offset: the rules convert it to UTC
    _batch([_event()], sent_at="2026-11-27T10:00:01+02:00"),
    _batch([_event()], v=_DROP),  # a missing v is an unsupported version, not the default
    _batch([_event(device_id="kalvia-2")]),
    _batch([_event(value=True)]), _batch([_event(value=1.0)]), _batch([_event(value=0)]), _batch([_event(value=5)]),
    _batch([_event(value="4")]), _batch([_event(kind="followup", value=3)]),
    _batch([_event(answer_to=str(uuid6.uuid7()))]), _batch([_event(kind="other")]), _batch([_event(kind=_DROP)]),
    _batch([_event(ts="2026-11-27T08:00:00")]), _batch([_event(ts="2019-12-31T23:59:59.999999Z")]),
    _batch([_event(ts="2100-01-01T00:00:00Z")]), _batch([_event(ts="9999-12-31T23:59:59-05:00")]),
    _batch([_event(ts="0001-01-01T00:00:00+02:00")]),
    _batch([_event(seq=0)]), _batch([_event(seq=2**53)]), _batch([_event(extra=1)]), _batch([]),
    _batch([_event()], v=True), _batch([_event()], v=1.0), _batch([_event()], v="1"), _batch([_event()], v=2),
    _status(v=_DROP), _status(uptime_s=1e300), _status(sent_at="1970-01-01T00:00:00Z"),
    _status(connected_at="2026-11-27T09:00:00+01:00"),
    _status(last_command={"cmd_id": "c1", "name": "x", "ok": True, "at": "2026-11-27T09:00:00+01:00"}),
    _status().replace(b"}", b', "uptime_s": NaN}'),
    _status().replace(b"}", b', "ip": "\\ud800"}'),
    b'\xef\xbb\xbf' + _status(), _status().decode().encode("utf-16"), b"{not json", b"[1]",
    _status().replace(b'"online": true', b'"online": true, "online": 7'),
    _status().replace(b'"online": true', b'"online": 7, "online": true'),
])
def test_the_fast_path_agrees_with_the_rules(payload):
    channel = "status" if b'"online"' in payload or b"o\x00n\x00" in payload else "events"
    _same(channel, payload)


def test_times_in_the_window_edges_and_offsets_agree():
    for ts in ("2020-01-01T00:00:00Z", "2099-12-31T23:59:59.999999Z", "2026-03-29T01:00:00+00:00",
               "2026-10-25T00:59:59.5Z", "2026-10-25T03:30:00+03:00", "2026-10-25T03:30:00+02:00", 1764000000):
        _same("events", _batch([_event(ts=ts)]))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8) | st.sampled_from(["2026-11-27T08:00:00Z", "2026-11-27T10:00:00+02:00", "visit", "web",
                                             "burst", "smiley", "followup", str(uuid6.uuid7()), "1", "fi"]),
    lambda children: st.lists(children, max_size=3), max_leaves=5,
)
EVENT_FIELDS = sorted(set(c.FeedbackEvent.model_fields) | {"extra"})
STATUS_FIELDS = sorted(set(c.StatusHeartbeat.model_fields) | {"extra"})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(st.sampled_from(EVENT_FIELDS), JSON_VALUES | st.just(_DROP), max_size=3),
       kind=st.sampled_from(["smiley", "followup"]))
def test_generated_events_agree(changes, kind):
    base = _event() if kind == "smiley" else _event(kind="followup", value="waiting-time", question_id="why")
    base.update(changes)
    _same("events", _batch([_event(seq=1), {k: v for k, v in base.items() if v is not _DROP}]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.dictionaries(st.sampled_from(STATUS_FIELDS), JSON_VALUES | st.just(_DROP), max_size=3))
def test_generated_statuses_agree(changes):
    _same("status", _status(**changes))


def test_decode_takes_the_rules_for_what_the_fast_path_leaves():
    _, batch = c.decode(TOPIC, _batch([_event(ts="2026-11-27T10:00:00+02:00")]))
    assert batch.events[0].ts == datetime(2026, 11, 27, 8, tzinfo=UTC) and batch.events[0].ts.tzinfo is UTC
    with pytest.raises(ContractError) as info:
        c.decode(STATUS_TOPIC, _status(v=_DROP))
    assert info.value.reason == "unsupported_version"
