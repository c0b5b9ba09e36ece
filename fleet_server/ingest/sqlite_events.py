"""The ingest's events path: kiosk batches validated straight into the INSERT's parameters.

SQLite binds them in one executemany (below); PostgreSQL writes each as a line of COPY text
(``pg_writer.copy_line``), so neither makes a pydantic model or a row dict per event.

Why: on SQLite the ingest is CPU-bound in one Python process (bench/bench_ingest.py). Per
event it made a pydantic model, a row dict, then the driver's tuple (uuid hex, time text),
looked the ids up before inserting, and walked every row again for the rollups. Here:

- ``decode`` validates an events payload with the contract's own fast schema
  (``contract.fast_core_schema``: the same rules), changed only in what it gives back:
  plain dicts instead of models, uuids as their canonical text, and ``ts`` a second time
  as its text. A payload in another form the contract accepts (an uppercase uuid, a time
  with "+00:00" or a fraction of other than 6 digits) gives None and takes the generic path; nothing
  is accepted here that the contract refuses (tests/server/test_sqlite_events.py).
- Those dicts are the executemany's parameters: SQLite itself turns the uuid text into the
  stored hex and the wire time into the stored text (``INSERT_SQL``).
- ``ON CONFLICT (event_id) DO NOTHING`` and the change count instead of a lookup first; only
  when fewer rows went in than were given are the ones stored before looked up (by a rowid
  at most the highest before the insert, so this transaction's rows are not among them).
- The rollup cells are counted from the parameters (an hour is the time text's first 13
  characters) and written by ``rollups.write_cells``, as ``rollups.add_events`` writes them.
- The preparer thread flattens the parameters and counts the cells ahead (``ahead``); the
  writer, whose thread is the ingest's critical path, uses them when it stores exactly those
  events, and counts again only when it dropped a message or found ids stored before.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from itertools import chain
from operator import itemgetter
from typing import Any

from pydantic_core import SchemaValidator, ValidationError, core_schema
from sqlalchemy.orm import Session

from fleet_server.models import FeedbackEvent
from fleet_server.results import rollups
from palaute_wire import contract

TABLE = FeedbackEvent.__tablename__
COLUMNS = (
    "event_id", "station_id", "device_id", "kind", "value", "option_id", "question_id", "lang", "ts",
    "received_at", "seq", "clock_synced", "survey_version", "answer_to", "burst", "out_of_hours",
    "epoch", "boot_id", "mono_s", "ts_offset_s", "channel",
)  # fmt: skip
"""The feedback_events columns an event fills (store._event_row's keys, in its order)."""

CONTENT_KEYS = (
    "station_id", "device_id", "kind", "value", "question_id", "lang", "ts_text", "seq", "clock_synced",
    "survey_version", "answer_to", "burst", "out_of_hours", "channel",
)  # fmt: skip
"""store.CONTENT_COLUMNS in parameter form: two copies of one event id agree on these."""

PARAMS = (
    "event_id", "station_id", "device_id", "kind", "value", "question_id", "lang", "ts_text", "received_at", "seq",
    "clock_synced", "survey_version", "answer_to", "burst", "out_of_hours", "epoch", "boot_id", "mono_s",
    "ts_offset_s", "channel",
)  # fmt: skip
"""The keys of an event's parameters, bound by position (?1 ...): a name looked up per value costs more."""
_HEX = "replace({}, '-', '')"


def _row_values(row: int) -> str:
    """One event's ``(...)`` of the INSERT, the ``row``-th of the statement: its parameters bound by
    position (?1 ... for the first, then on), the uuids' hex and the wire time's stored text made in SQL."""
    at = {name: f"?{row * len(PARAMS) + i}" for i, name in enumerate(PARAMS, 1)}
    values = {
        "event_id": _HEX.format(at["event_id"]),
        "value": f"CASE WHEN {at['kind']} = 'smiley' THEN {at['value']} END",
        "option_id": f"CASE WHEN {at['kind']} = 'smiley' THEN NULL ELSE {at['value']} END",
        # "2026-11-27T08:00:00.123456Z" -> "2026-11-27 08:00:00.123456", SQLAlchemy's DATETIME text
        "ts": f"substr({at['ts_text']}, 1, 10) || ' ' || substr({at['ts_text']}, 12, 15)",
        "answer_to": _HEX.format(at["answer_to"]),
        "epoch": _HEX.format(at["epoch"]),
        "boot_id": _HEX.format(at["boot_id"]),
    }
    return f"({', '.join(values.get(c) or at[c] for c in COLUMNS)})"


@cache
def _insert_sql(rows: int) -> str:
    return (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES {', '.join(_row_values(r) for r in range(rows))} "
            "ON CONFLICT (event_id) DO NOTHING")


ROWS_PER_INSERT = 999 // len(PARAMS)
"""Events per INSERT statement (old SQLite builds allow 999 parameters). One row per statement made
a step per event, and each step gives up the GIL and waits to take it back from the threads that
receive and decode the next messages: the writer spent most of its time waiting, not writing."""
INSERT_SQL = _insert_sql(ROWS_PER_INSERT)
_PARAMS_OF = itemgetter(*PARAMS)

MAX_PARAMS = 500
"""Ids per ``IN (...)`` lookup (old SQLite builds allow 999 parameters)."""

_UUID_TEXT = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_TIME_TEXT = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?Z$"
"""A UTC time as kiosks and pydantic write it: microseconds, or none when they are 0."""


def _typed_dict(model: Any, *, required: tuple[str, ...] = (), time_text: bool = False) -> Any:
    """A model's fields as a typed dict: the same field schemas, a dict out instead of a model."""
    fields = {}
    for name, spec in model["schema"]["fields"].items() if model["type"] == "model" else model["fields"].items():
        schema = spec["schema"]
        if name in required and schema["type"] == "default":
            schema = schema["schema"]
        fields[name] = core_schema.typed_dict_field(schema, required=schema["type"] != "default")
    if time_text:  # ts once more, as its text: the datetime keeps the rules, the text goes to SQLite
        fields["ts_text"] = core_schema.typed_dict_field(core_schema.str_schema(pattern=_TIME_TEXT),
                                                         validation_alias="ts")
    return core_schema.typed_dict_schema(fields, extra_behavior="forbid", config=model["config"])


def _params_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_params_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "definition-ref":
        raise ValueError("the events schema refers to a definition; _params_schema does not follow those")
    if node.get("type") == "uuid":  # every canonical text is a uuid; any other spelling: the generic path
        return core_schema.str_schema(pattern=_UUID_TEXT)
    node = {key: value if key in ("metadata", "default", "cls", "function", "serialization") else _params_schema(value)
            for key, value in node.items()}
    if node.get("type") == "model" and node.get("cls") is contract.FeedbackEvent:
        union = node["schema"]  # tagged by kind (contract._fast_schema)
        if union.get("type") != "tagged-union":
            raise ValueError("contract.fast_core_schema's FeedbackEvent is no longer a union tagged by kind")
        choices = {kind: _typed_dict({**fields, "config": node["config"]}, time_text=True)
                   for kind, fields in union["choices"].items()}
        return {**union, "choices": choices}
    if node.get("type") == "model" and node.get("cls") is contract.EventBatch:
        return _typed_dict(node, required=("v",))  # the fast path refuses a missing v (unsupported version)
    return node


_VALIDATOR = SchemaValidator(_params_schema(contract.fast_core_schema("events")))


class EventParams:
    """An events message decoded by ``decode``: its sender and the INSERT's parameters, one dict per event.

    Or packed (``EventParams.packed``, as the decoding process sends it back, ``decoder``): the ids and
    the parameters as one flat list in ``PARAMS`` order, ``count`` of them from ``start`` in ``flat``
    (the whole transaction's list, shared), which is what the writer binds and the cheapest form to
    unpickle; the dicts are made from it only if the writer asks for ``events`` (a dropped message, an
    id repeated or stored before)."""

    __slots__ = ("_events", "_flat", "_ids", "_start", "count", "device_id", "max_seq", "station_id")

    def __init__(self, station_id: str, device_id: str, events: list[dict[str, Any]], max_seq: int) -> None:
        self.station_id, self.device_id, self.max_seq = station_id, device_id, max_seq
        self._events: list[dict[str, Any]] | None = events
        self._ids: list[str] | None = None
        self._flat: list[Any] | None = None
        self._start = 0
        self.count = len(events)

    @classmethod
    def packed(cls, station_id: str, device_id: str, max_seq: int, ids: list[str], flat: list[Any],
               start: int) -> EventParams:
        params = cls.__new__(cls)
        params.station_id, params.device_id, params.max_seq = station_id, device_id, max_seq
        params._events, params._ids, params._flat, params._start, params.count = None, ids, flat, start, len(ids)
        return params

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            self._ids = [event["event_id"] for event in self.events]
        return self._ids

    @property
    def events(self) -> list[dict[str, Any]]:
        if self._events is None:
            assert self._flat is not None
            width, flat = len(PARAMS), self._flat
            self._events = [dict(zip(PARAMS, flat[i : i + width], strict=True))
                            for i in range(self._start * width, (self._start + self.count) * width, width)]
        return self._events

    def __repr__(self) -> str:
        return f"EventParams({self.station_id!r}, {self.device_id!r}, {self.count} events, max_seq={self.max_seq})"


def time_text(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text (naive UTC, always with microseconds)."""
    offset = value.utcoffset()
    if offset is not None and not offset:  # already UTC (every time the contract lets through): no conversion
        return value.replace(tzinfo=None).isoformat(" ", "microseconds")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def decode(parts: contract.TopicParts, payload: bytes, received_at: str) -> EventParams | None:
    """An events payload as INSERT parameters, or None: then ``contract.decode`` judges it (and names
    the reason if it is bad). ``received_at``: the message's, as ``time_text``."""
    if len(payload) > contract.MAX_PAYLOAD_BYTES:
        return None
    try:
        batch = _VALIDATOR.validate_json(payload)
    except ValidationError:
        return None
    station_id, device_id = batch["station_id"], batch["device_id"]
    if (station_id, device_id) != (parts.station_id, parts.device_id):
        return None
    events: list[dict[str, Any]] = batch["events"]
    for event in events:
        if event["station_id"] != station_id or event["device_id"] != device_id:
            return None
        flags = event["flags"]
        event["burst"] = "burst" in flags
        event["out_of_hours"] = "out_of_hours" in flags
        event["received_at"] = received_at
        if len(event["ts_text"]) == 20:  # on the second: the text with its microseconds, as every other
            event["ts_text"] = event["ts_text"][:19] + ".000000Z"
    return EventParams(station_id, device_id, events, max(event["seq"] for event in events))


def params_of(row: Mapping[str, Any], received_at: str | None = None) -> dict[str, Any]:
    """A row of the generic path (store._event_row) as ``decode`` makes its parameters (``received_at``:
    the text ``decode`` was given, by default SQLite's ``time_text``)."""
    params = dict(row)
    for key in ("event_id", "answer_to", "epoch", "boot_id"):
        if params[key] is not None:
            params[key] = str(params[key])
    params["ts_text"] = time_text(row["ts"]).replace(" ", "T") + "Z"
    params["received_at"] = time_text(row["received_at"]) if received_at is None else received_at
    if row["kind"] != "smiley":
        params["value"] = row["option_id"]
    return params


def same_content(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a[key] == b[key] for key in CONTENT_KEYS)


def _stored_of(raw: sqlite3.Connection, query: str, ids: list[str], *args: Any) -> list[tuple]:
    """``query`` (its ids as ``{}``) for the hex of each id text, in chunks."""
    out: list[tuple] = []
    for i in range(0, len(ids), MAX_PARAMS):
        chunk = [event_id.replace("-", "") for event_id in ids[i : i + MAX_PARAMS]]
        out += raw.execute(query.format(", ".join("?" * len(chunk))), (*args, *chunk)).fetchall()
    return out


def flat_params(events: list[dict[str, Any]]) -> list[Any]:
    """The events' parameters in one list, in ``PARAMS`` order: what ``insert`` binds."""
    return list(chain.from_iterable(map(_PARAMS_OF, events)))


def insert(raw: sqlite3.Connection, ids: list[str], params: list[Any]) -> set[str]:
    """Insert the events (``ids``, distinct, and their ``flat_params``) whose id is new; return the ids
    (their text) stored before.

    Under the write lock (``BEGIN IMMEDIATE``), so the highest rowid before the insert tells the rows
    stored before from this insert's."""
    if not raw.in_transaction:
        raw.execute("BEGIN IMMEDIATE")
    (top,) = raw.execute(f"SELECT coalesce(max(id), 0) FROM {TABLE}").fetchone()
    changes = raw.total_changes
    whole = len(ids) - len(ids) % ROWS_PER_INSERT
    width = ROWS_PER_INSERT * len(PARAMS)
    raw.executemany(INSERT_SQL, (params[i:i + width] for i in range(0, whole * len(PARAMS), width)))
    if whole < len(ids):
        raw.execute(_insert_sql(len(ids) - whole), params[whole * len(PARAMS):])
    missing = len(ids) - (raw.total_changes - changes)
    if not missing:
        return set()
    text_of = {event_id.replace("-", ""): event_id for event_id in ids}
    stored = {text_of[hexed] for (hexed,) in _stored_of(
        raw, f"SELECT event_id FROM {TABLE} WHERE id <= ? AND event_id IN ({{}})", ids, top)}
    if len(stored) != missing:
        raise RuntimeError(f"{missing} of {len(ids)} events were not inserted, but {len(stored)} were stored before")
    return stored


_HOURS: dict[str, datetime] = {}


def _hour(text: str) -> datetime:
    """``"2026-11-27 08"`` (a time text's first 13 characters) -> that UTC hour."""
    hour = _HOURS.get(text)
    if hour is None:
        if len(_HOURS) > 10_000:
            _HOURS.clear()
        hour = _HOURS[text] = rollups.hour_of(datetime.fromisoformat(text + ":00:00+00:00"))
    return hour


@dataclass(slots=True)
class Cells:
    """A batch's rollup cells as ``count`` makes them, before the database: all but the follow-ups
    whose smiley is not among the batch's events (``unresolved``: ``write`` looks those up)."""

    station: dict[tuple[str, datetime], dict[str, int]]
    channel: dict[tuple[str, datetime, str], dict[str, int]]
    followup: Counter[tuple[str, datetime, int, str, str]]
    unresolved: list[dict[str, Any]]


def count(events: list[dict[str, Any]]) -> Cells:
    """The cells ``rollups.add_events`` would add for these events (no database: the preparer thread
    counts them ahead of the writer, ``store.prepare``)."""
    smileys: Counter[tuple[str, str, str, str]] = Counter()
    smiley_of: dict[str, int] = {}
    followups = []
    for event in events:
        if event["kind"] == "smiley":
            kind = "o" if event["out_of_hours"] else "r" if event["burst"] else "c"
            smileys[(event["station_id"], event["ts_text"][:13], event["channel"], f"{kind}{event['value']}")] += 1
            smiley_of[event["event_id"]] = event["value"]
        else:
            followups.append(event)
    station_cells: dict[tuple, dict[str, int]] = {}
    channel_cells: dict[tuple, dict[str, int]] = {}
    for (station, hour_text, channel, column), n in smileys.items():
        hour = _hour(hour_text)
        for cells, key in ((station_cells, (station, hour)), (channel_cells, (station, hour, channel))):
            cell = cells.get(key)
            if cell is None:
                cell = cells[key] = dict.fromkeys(rollups.COUNT_COLUMNS, 0)
            cell[column] += n
    followup_cells: Counter[tuple[str, datetime, int, str, str]] = Counter()
    unresolved = []
    for f in followups:
        answer_to = f["answer_to"]
        smiley = smiley_of.get(answer_to) if answer_to else rollups.UNKNOWN_SMILEY
        if smiley is None:
            unresolved.append(f)
        else:
            followup_cells[(f["station_id"], _hour(f["ts_text"][:13]), smiley, f["question_id"], f["value"])] += 1
    return Cells(station_cells, channel_cells, followup_cells, unresolved)


def write(session: Session, raw: sqlite3.Connection, cells: Cells) -> None:
    """Add counted cells to the rollups, the unresolved follow-ups' smileys looked up among the
    events stored before (a follow-up whose smiley is not stored counts under ``UNKNOWN_SMILEY``)."""
    followup_cells = cells.followup
    if cells.unresolved:  # added to a copy: a retried transaction writes the same cells again
        followup_cells = followup_cells.copy()
        missing = sorted({f["answer_to"] for f in cells.unresolved})
        text_of = {a.replace("-", ""): a for a in missing}
        smiley_of = {text_of[hexed]: value for hexed, value in _stored_of(
            raw, f"SELECT event_id, value FROM {TABLE} WHERE kind = 'smiley' AND event_id IN ({{}})", missing)
            if value is not None}
        for f in cells.unresolved:
            smiley = smiley_of.get(f["answer_to"], rollups.UNKNOWN_SMILEY)
            followup_cells[(f["station_id"], _hour(f["ts_text"][:13]), smiley, f["question_id"], f["value"])] += 1
    rollups.write_cells(session, cells.station, cells.channel, followup_cells)


@dataclass(slots=True)
class Ahead:
    """The events of a batch's first ``sources`` ``EventParams`` (in order) as the writer stores them
    when it drops none and finds none stored before: ``insert``'s parameters and the rollup cells,
    made by the preparer thread, off the writer's path (``store.prepare``)."""

    sources: int
    events: int
    params: list[Any]
    cells: Cells


def ahead(batches: list[EventParams]) -> Ahead | None:
    events = list(chain.from_iterable(batch.events for batch in batches))
    return Ahead(len(batches), len(events), flat_params(events), count(events)) if events else None


def rollup(session: Session, raw: sqlite3.Connection, events: list[dict[str, Any]]) -> None:
    """Add freshly inserted events to the rollups: the cells ``rollups.add_events`` would add."""
    write(session, raw, count(events))
