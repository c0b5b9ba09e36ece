"""Every answer carries its channel (kiosk | web | phone | sms); old kiosks' payloads mean kiosk."""

from __future__ import annotations

import json

from sqlalchemy import select

from fleet_server.ingest.consumer import InboundMessage, store_batch
from fleet_server.models import FeedbackEvent
from palaute_wire import contract as c

# A kiosk from before channels: its events carry no "channel" field.
OLD_EVENT = {
    "event_id": "0192f0c4-7c1e-7d3a-9b1e-3f5a2c9d8e71", "station_id": "kalvia", "device_id": "kalvia-1",
    "kind": "smiley", "value": 4, "question_id": "visit", "lang": "fi", "ts": "2026-11-27T08:00:00Z",
    "seq": 1, "clock_synced": True, "survey_version": 1, "flags": [],
}
OLD_BATCH = json.dumps({"v": 1, "station_id": "kalvia", "device_id": "kalvia-1",
                        "sent_at": "2026-11-27T08:00:01Z", "events": [OLD_EVENT]}).encode()


def test_an_old_kiosks_event_without_channel_round_trips_as_kiosk_and_is_stored_as_kiosk(sessions):
    topic = c.topic("kalvia", "kalvia-1", "events")
    _, batch = c.decode(topic, OLD_BATCH)
    assert isinstance(batch, c.EventBatch)
    assert batch.events[0].channel == "kiosk"
    assert c.decode(topic, c.encode(batch))[1] == batch
    assert b"channel" not in c.encode(batch), "a kiosk answer leaves channel out (older servers refuse it)"
    assert json.loads(batch.events[0].model_dump_json()) == OLD_EVENT | {"answer_to": None, "epoch": None,
                                                                         "boot_id": None, "mono_s": None,
                                                                         "ts_offset_s": None}
    result = store_batch(sessions, [InboundMessage(topic, OLD_BATCH)])
    assert (result.inserted, result.dead_lettered) == (1, 0)
    with sessions() as s:
        assert [e.channel for e in s.scalars(select(FeedbackEvent))] == ["kiosk"]


def test_an_unknown_channel_is_a_schema_error():
    raw = json.dumps({"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "sent_at": "2026-11-27T08:00:01Z",
                      "events": [{**OLD_EVENT, "channel": "fax"}]}).encode()
    try:
        c.decode(c.topic("kalvia", "kalvia-1", "events"), raw)
    except c.ContractError as exc:
        assert exc.reason == "schema" and "channel" in exc.detail
    else:
        raise AssertionError("channel fax was accepted")
