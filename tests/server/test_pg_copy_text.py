"""PostgreSQL's events path (ingest.pg_writer): kiosk batches COPYed as text lines the preparer made.

What that path stores must be what the binary COPY of the generic rows stores (the path of
the other channels' answers, ``store_channel_rows``), column for column; and a value that
would need COPY's escaping stops the batch instead of being stored as something else.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import uuid6
from sqlalchemy import text

from fleet_server.ingest import pg_writer, sqlite_events
from fleet_server.ingest.store import InboundMessage, PreparedBatch, _event_row, store_batch, store_channel_rows
from palaute_wire import contract
from tests.support.server_factories import T0, event, events_message

RECEIVED = datetime(2026, 11, 27, 8, 0, 5, 123456, tzinfo=UTC)
SMILEY = event(seq=1, ts=T0 + timedelta(microseconds=250), epoch=uuid6.uuid7(), boot_id=uuid6.uuid7(), mono_s=960.1)

KIOSK_EVENTS = {
    "a kiosk's smiley": SMILEY,
    "on the second": event(seq=2, ts=T0),
    "a followup": event(seq=3, kind="followup", value="queue", question_id="what-went-wrong",
                        answer_to=SMILEY.event_id),
    "flags": event(seq=4, flags=("out_of_hours", "burst")),
    "another channel": event(seq=5, channel="web"),
    "clock corrected": event(seq=6, clock_synced=False, ts_offset_s=-3600.123456789, mono_s=0.1 + 0.2),
}


def _shouted(message: InboundMessage, kiosk_event) -> InboundMessage:
    """The message with its epoch in capitals: the contract accepts it, ``sqlite_events.decode`` leaves it
    to the generic path (a pydantic model and a row), whose rows become COPY lines too."""
    epoch = str(kiosk_event.epoch).encode()
    return InboundMessage(message.topic, message.payload.replace(epoch, epoch.upper()), received_at=RECEIVED)


@pytest.mark.postgres
@pytest.mark.parametrize("path", ["EventParams", "EventBatch"])
@pytest.mark.parametrize("kiosk_event", KIOSK_EVENTS.values(), ids=KIOSK_EVENTS.keys())
def test_copied_text_stores_what_the_binary_copy_stores(postgres_url, kiosk_event, path):
    from fleet_server.core.db import make_engine, make_session_factory, migrate

    if path == "EventBatch" and kiosk_event.epoch is None:
        kiosk_event = kiosk_event.model_copy(update={"epoch": uuid6.uuid7()})
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    sessions = make_session_factory(engine)
    try:
        message = events_message([kiosk_event], received_at=RECEIVED)
        if path == "EventBatch":
            message = _shouted(message, kiosk_event)
        ready = PreparedBatch([message], "postgresql")
        assert [type(p).__name__ for _, p in ready.decoded.payloads] == [path]
        assert store_batch(sessions, ready).inserted == 1
        twin = {**_event_row(kiosk_event, RECEIVED), "event_id": uuid6.uuid7()}
        with sessions() as s:
            store_channel_rows(s, InboundMessage("api/v1/answers", b""), [twin])
            s.commit()
            rows = s.execute(text("SELECT * FROM feedback_events ORDER BY id")).mappings().all()
    finally:
        engine.dispose()
    copied, binary = ({k: v for k, v in row.items() if k not in ("id", "event_id")} for row in rows)
    assert copied == binary
    assert rows[0]["event_id"] == kiosk_event.event_id


def _params(**over):
    payload = contract.encode(contract.EventBatch(station_id="kalvia", device_id="kalvia-1", sent_at=T0,
                                                  events=(event(seq=1),)))
    decoded = sqlite_events.decode(contract.parse_topic("palaute/v1/kalvia/kalvia-1/events"), payload,
                                   pg_writer.time_text(RECEIVED))
    assert decoded is not None
    return {**decoded.events[0], **over}


def test_a_line_has_every_column_and_null_as_copy_spells_it():
    (line,) = pg_writer.with_lines([_params()])[0]["copy_line"].splitlines()
    values = line.split("\t")
    assert len(values) == len(sqlite_events.COLUMNS)
    by_column = dict(zip(sqlite_events.COLUMNS, values, strict=True))
    assert (by_column["option_id"], by_column["answer_to"], by_column["burst"]) == ("\\N", "\\N", "f")
    assert by_column["received_at"] == "2026-11-27T08:00:05.123456+00:00"


@pytest.mark.parametrize("bad", ["tab\there", "new\nline", "back\\slash"])
def test_a_value_that_copy_would_have_to_escape_stops_the_batch(bad):
    lines = [pg_writer.copy_line(_params()), pg_writer.copy_line(_params(question_id=bad))]
    pg_writer._check_copy_text("".join(lines[:1]), 1)
    with pytest.raises(RuntimeError, match="escapes none"):
        pg_writer._check_copy_text("".join(lines), 2)
