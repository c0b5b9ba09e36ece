"""Message factories for the fleet-server tests: real contract models, encoded as kiosks send them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import count

import uuid6

from fleet_server.ingest.consumer import InboundMessage
from palaute_wire import contract as c
from palaute_wire.opening_hours import LOCAL_TZ

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
_seq = count(1)


def answered_at(ago: timedelta = timedelta(minutes=30), spread: timedelta = timedelta(minutes=15)) -> datetime:
    """A recent time for answers given "today": ``ago`` before now, and with the ``spread`` before it
    on the same local (Helsinki) day. Just after local midnight (22:00 UTC in winter) that is not
    possible, so the answers go one minute before midnight: every one of them on one local day, the
    day ``answer_day`` names for the test to ask for."""
    base = (datetime.now(UTC) - ago).replace(second=0, microsecond=0)
    local = base.astimezone(LOCAL_TZ)
    midnight = local.replace(hour=0, minute=0)
    if local - spread < midnight:
        base = (midnight - timedelta(minutes=1)).astimezone(UTC)
    return base


def answer_day(base: datetime) -> str:
    """The query for the local day of ``base``: ``range=custom&from=D&to=D`` (``range=today`` would
    name another day when the test runs just after local midnight)."""
    day = base.astimezone(LOCAL_TZ).date().isoformat()
    return f"range=custom&from={day}&to={day}"


def event(station="kalvia", device="kalvia-1", value=4, ts=T0, seq=None, kind="smiley", **over) -> c.FeedbackEvent:
    data = {
        "event_id": uuid6.uuid7(), "station_id": station, "device_id": device, "kind": kind, "value": value,
        "question_id": "visit", "lang": "fi", "ts": ts, "seq": seq or next(_seq), "clock_synced": True,
    }
    data.update(over)
    return c.FeedbackEvent(**data)


def batch(events, station="kalvia", device="kalvia-1") -> c.EventBatch:
    return c.EventBatch(station_id=station, device_id=device, sent_at=T0 + timedelta(seconds=1), events=tuple(events))


def events_message(events, station="kalvia", device="kalvia-1", **kw) -> InboundMessage:
    return InboundMessage(c.topic(station, device, "events"), c.encode(batch(events, station, device)), **kw)


def status(station="kalvia", device="kalvia-1", online=True, **over) -> c.StatusHeartbeat:
    return c.StatusHeartbeat(station_id=station, device_id=device, online=online, sent_at=over.pop("sent_at", T0), **over)


def status_message(station="kalvia", device="kalvia-1", online=True, **over) -> InboundMessage:
    return InboundMessage(c.topic(station, device, "status"), c.encode(status(station, device, online, **over)))


def raw_batch(**over) -> bytes:
    """A batch as plain JSON, for building invalid variants."""
    ev = json.loads(c.encode(event()))
    data = {"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "sent_at": "2026-11-27T08:00:01Z", "events": [ev]}
    data.update(over)
    return json.dumps(data).encode()
