"""One path into the answers for every channel that is not a kiosk: validate like the MQTT
ingest, store once by id, roll up, dead-letter what is refused.

The contract is the kiosk's (palaute_wire.contract.FeedbackEvent): an answer here is checked by
the same model (the same messages, the same ``schema`` reason), only without a device or a seq,
which belong to a kiosk. ``answer_id`` is the sender's own UUID for the answer and becomes the
``event_id``: sending the same answer again changes nothing (``duplicate``); the same id with other
content is refused (``conflicting_duplicate``, dead-lettered with both copies) and the first copy kept.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.core.clock import utcnow
from fleet_server.core.errors import ChannelRefused
from fleet_server.ingest.store import (
    REASON_CONFLICTING_DUPLICATE,
    InboundMessage,
    _event_row,
    store_channel_dead_letter,
    store_channel_rows,
)
from fleet_server.models import Station
from palaute_wire import contract
from palaute_wire.contract import MAX_BATCH_EVENTS, MAX_PAYLOAD_BYTES, PROTOCOL_VERSION

IMPORT_TOPIC = "api/v1/answers"
"""What dead letters of the import API name as their topic."""
WEB_TOPIC = "web/survey"
"""... and those of the web survey."""

REASON_UNKNOWN_STATION = "unknown_station"
REASON_WRONG_CHANNEL = "wrong_channel"

IMPORT_CHANNELS = ("phone", "sms")
"""The channels an import token may deliver (web answers come only from the web survey)."""

Outcome = Literal["stored", "duplicate", "refused"]

# The fields a sender gives; the kiosk-only ones (device_id, seq, epoch, boot clock) are not theirs.
ANSWER_FIELDS = ("answer_id", "station_id", "channel", "kind", "value", "question_id", "lang", "ts",
                 "answer_to", "survey_version")


@dataclass(frozen=True)
class AnswerResult:
    """What became of one answer: ``stored``, ``duplicate`` (already had it) or ``refused`` (why)."""

    index: int
    answer_id: str | None
    outcome: Outcome
    reason: str | None = None
    detail: str | None = None


def parse_event(data: Any, channels: Sequence[str]) -> contract.FeedbackEvent:
    """One answer (a JSON object) checked by the wire contract; ValueError with the reason's detail."""
    if not isinstance(data, dict):
        raise ValueError(f"an answer is a JSON object, not {type(data).__name__}")  # noqa: TRY004 - a refusal reason
    unknown = sorted(set(data) - set(ANSWER_FIELDS))
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(ANSWER_FIELDS)})")
    if "answer_id" not in data:
        raise ValueError("answer_id: your own UUID for this answer is required (it makes a resend harmless)")
    channel = data.get("channel")
    if channel not in channels:
        raise ValueError(f"channel must be one of {', '.join(channels)}, not {channel!r}")
    fields = {k: v for k, v in data.items() if k != "answer_id"}
    fields.setdefault("question_id", "visit")
    fields.setdefault("kind", "smiley")
    # device_id and seq are a kiosk's; the contract needs them, the database row does not get them.
    return contract.FeedbackEvent.model_validate(
        {**fields, "event_id": data["answer_id"], "device_id": "none", "seq": 1, "clock_synced": True}
    )


def _row(event: contract.FeedbackEvent, received_at: datetime) -> dict[str, Any]:
    row = _event_row(event, received_at)
    row["device_id"] = None
    row["seq"] = None
    row["channel"] = event.channel
    return row


def store_answers(
    session: Session, items: Sequence[Any], *, channels: Sequence[str], topic: str, received_at: datetime | None = None
) -> list[AnswerResult]:
    """Check and store answers (JSON objects); the caller commits. Valid ones are stored whatever
    the others hold; each refused one is dead-lettered with its reason."""
    received_at = received_at or utcnow()
    results: dict[int, AnswerResult] = {}
    events: dict[int, contract.FeedbackEvent] = {}
    for i, item in enumerate(items):
        answer_id = str(item.get("answer_id")) if isinstance(item, dict) and "answer_id" in item else None
        try:
            events[i] = parse_event(item, channels)
        except ValidationError as exc:
            results[i] = AnswerResult(i, answer_id, "refused", "schema", contract._summarise(exc))
        except ValueError as exc:
            results[i] = AnswerResult(i, answer_id, "refused", "schema", str(exc))
    known = set(session.scalars(select(Station.id).where(Station.id.in_({e.station_id for e in events.values()}))))
    for i, e in list(events.items()):
        if e.station_id not in known:
            results[i] = AnswerResult(i, str(e.event_id), "refused", REASON_UNKNOWN_STATION,
                                      f"station {e.station_id!r} does not exist (palaute-server station list)")
            del events[i]
    message = InboundMessage(topic, b"", received_at=received_at)
    for i, result in results.items():
        raw = json.dumps(items[i], default=str, sort_keys=True).encode()[:MAX_PAYLOAD_BYTES]
        store_channel_dead_letter(session, InboundMessage(topic, raw, received_at=received_at),
                                  result.reason or "schema", result.detail or "")
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    first_index: dict[uuid.UUID, int] = {}
    for i, e in events.items():
        if e.event_id in rows:
            results[i] = AnswerResult(i, str(e.event_id), "duplicate")
            continue
        rows[e.event_id] = _row(e, received_at)
        first_index[e.event_id] = i
    inserted, conflicts = store_channel_rows(session, message, list(rows.values()))
    for event_id, i in first_index.items():
        if event_id in conflicts:
            results[i] = AnswerResult(i, str(event_id), "refused", REASON_CONFLICTING_DUPLICATE, conflicts[event_id])
        else:
            results[i] = AnswerResult(i, str(event_id), "stored" if event_id in inserted else "duplicate")
    return [results[i] for i in range(len(items))]


def parse_import_body(session: Session, body: bytes, *, received_at: datetime | None = None) -> list[Any]:
    """The import API's request body ``{"v": 1, "answers": [...]}``: its answers, or ChannelRefused
    (dead-lettered) when the body itself is unusable."""
    message = InboundMessage(IMPORT_TOPIC, body, received_at=received_at or utcnow())

    def refuse(reason: str, detail: str) -> ChannelRefused:
        store_channel_dead_letter(session, message, reason, detail)
        session.commit()
        return ChannelRefused(reason, detail)

    if len(body) > MAX_PAYLOAD_BYTES:
        raise refuse("oversize", f"{len(body)} bytes, limit {MAX_PAYLOAD_BYTES}")
    try:
        data = json.loads(body, parse_constant=contract._refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise refuse("bad_json", str(exc)) from None
    if not isinstance(data, dict):
        raise refuse("bad_json", f"expected a JSON object {{\"v\": 1, \"answers\": [...]}}, got {type(data).__name__}")
    if data.get("v") != PROTOCOL_VERSION:
        raise refuse("unsupported_version", f"v={data.get('v')!r}; this server speaks v={PROTOCOL_VERSION}")
    answers = data.get("answers")
    extra = sorted(set(data) - {"v", "answers"})
    if extra:
        raise refuse("schema", f"unknown field(s) {', '.join(extra)}; the body is {{\"v\": 1, \"answers\": [...]}}")
    if not isinstance(answers, list) or not 1 <= len(answers) <= MAX_BATCH_EVENTS:
        raise refuse("schema", f"answers: a list of 1..{MAX_BATCH_EVENTS} answers")
    return answers
