"""The wire contract between kiosks and the fleet server: topics, payloads, version.

Both sides import this module and nothing else defines what travels over MQTT.
docs/protocol.md describes the same contract in prose for other implementations;
tests round-trip every model so the two cannot drift apart silently.

Rules that hold for every payload:
- JSON (UTF-8), an object with an integer ``v``: the schema version. A receiver
  that does not know a version rejects the message (the server dead-letters it)
  instead of guessing.
- Unknown fields are errors within a version: a field is added by bumping ``v``.
- Ids (station, device, question, option) are short slugs ``[a-z0-9-]{1,64}``.
- Times are ISO-8601 with an offset; they are normalised to UTC and lie in
  [TIME_MIN, TIME_MAX): a clock at 1970 or 9999 is a broken clock, not a time.
- Every number is finite and bounded (``allow_inf_nan`` off; JSON ``1e999`` reads
  as infinity and is refused): a bound is part of the contract, so one status
  cannot store a value the server's pages or integer columns cannot hold. A
  value out of range is a ``schema`` error like any other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import SchemaValidator, core_schema

from palaute_wire.errors import ContractError
from palaute_wire.opening_hours import LOCAL_ZONE_NAME, Weekday, zone

PROTOCOL_VERSION: Final = 1
"""The one schema version this code speaks, for every payload kind."""

TOPIC_ROOT = "palaute/v1"
CHANNELS = ("events", "status", "config", "cmd")

MAX_PAYLOAD_BYTES = 256 * 1024
"""Largest payload either side accepts; the Mosquitto configs set the same limit."""

MAX_BATCH_EVENTS = 500
"""Largest number of events in one batch (well under MAX_PAYLOAD_BYTES)."""

MAX_SEQ = 2**53 - 1
"""Largest seq (and from_seq, last_seq): exact in a JSON double, in JavaScript and in BIGINT."""

MAX_COUNT = 2**31 - 1
"""Largest count or version number (queue depth, shed count, config and survey versions): an INTEGER column."""

MAX_DURATION_S = 20 * 366 * 86400.0
"""Longest uptime or queue age a kiosk may report (20 years, far beyond a kiosk's life)."""

CPU_TEMP_RANGE_C = (-100.0, 200.0)
"""What a Raspberry Pi's thermal sensor can report at all; outside it the reading is garbage."""

MAX_DISK_MB = 1e9
"""Largest free space a kiosk may report (a petabyte)."""

TIME_MIN = datetime(2020, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2100, 1, 1, tzinfo=UTC)
"""Every time on the wire lies in [TIME_MIN, TIME_MAX). A kiosk whose clock reads
outside it (a Pi without RTC that never saved a time reads 1970) sends
``clock_now()``'s clamped time with ``clock_synced: false`` instead."""

SLUG_PATTERN = r"^[a-z0-9-]{1,64}$"
_SLUG_RE = re.compile(SLUG_PATTERN)

SMILEY_VALUES = {1: "very unhappy", 2: "unhappy", 3: "happy", 4: "very happy"}

Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]
Lang = Literal["fi", "sv", "en"]
LANGUAGES: tuple[Lang, ...] = ("fi", "sv", "en")
CommandName = Literal["identify", "restart", "resend"]
EventKind = Literal["smiley", "followup"]
AnswerChannel = Literal["kiosk", "web", "phone", "sms"]
"""How an answer came in: a kiosk (over MQTT), the web survey behind a station's QR code,
or a phone or SMS survey delivered through the import API. Kiosks send ``kiosk`` or nothing."""
ANSWER_CHANNELS: tuple[AnswerChannel, ...] = ("kiosk", "web", "phone", "sms")
ConfigFeature = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
"""An optional StationConfig field's name, as a kiosk lists it in its status (``accepts``). Any name
passes (a newer kiosk may know fields this server does not); the server acts on those it knows."""
CONFIG_FEATURES: tuple[str, ...] = ("survey_link",)
"""The optional config fields this code's kiosk understands (it lists them in ``accepts``)."""
EventFlag = Literal["burst", "out_of_hours"]
"""Flags a kiosk may put on an event; the event is stored and counted either way.

burst: part of a repeated-press burst (see docs/counting.md);
out_of_hours: given while the station was closed.
"""


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("time must carry a UTC offset, e.g. 2026-11-27T09:00:00Z")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"time must lie in {TIME_MIN.year}..{TIME_MAX.year - 1}") from None
    if not TIME_MIN <= value < TIME_MAX:
        raise ValueError(f"time must lie in {TIME_MIN.year}..{TIME_MAX.year - 1}, not {value.isoformat()}")
    return value


def clamp_time(value: datetime) -> datetime:
    """``value`` moved into the wire's time window (for a kiosk clock that is far off)."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return min(max(value, TIME_MIN), TIME_MAX - timedelta(seconds=1))


UtcTime = Annotated[datetime, AfterValidator(_utc)]


def is_slug(value: str) -> bool:
    return bool(_SLUG_RE.match(value))


Seq = Annotated[int, Field(ge=1, le=MAX_SEQ)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Duration = Annotated[float, Field(ge=0, le=MAX_DURATION_S)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------- events


class FeedbackEvent(_Strict):
    """One answer given at a kiosk: a smiley press or a follow-up choice."""

    event_id: UUID = Field(description="UUIDv7 made on the kiosk; unique forever")
    station_id: Slug
    device_id: Slug
    kind: EventKind
    value: StrictInt | Slug = Field(description="smiley: 1..4 (very unhappy..very happy); followup: option id")
    question_id: Slug
    lang: Lang
    ts: UtcTime = Field(description="when the answer was given, kiosk clock, UTC")
    seq: int = Field(ge=1, le=MAX_SEQ, description="per-device counter, gap-free, never reused")
    clock_synced: bool = Field(description="false while the kiosk clock was not NTP-synchronised")
    survey_version: int = Field(default=0, ge=0, le=MAX_COUNT)
    answer_to: UUID | None = Field(
        default=None, description="followup only: event_id of the smiley it follows"
    )
    flags: tuple[EventFlag, ...] = ()
    epoch: UUID | None = Field(
        default=None,
        description="the outbox's identity, made when the outbox was created: seq counts within "
        "(device, epoch), so a replaced SD card (seq from 1 again) is a new sequence, not a reused one. "
        "Absent (None): a kiosk from before epochs, or an outbox created before them (one legacy sequence)",
    )
    boot_id: UUID | None = Field(default=None, description="the kiosk's boot (Linux boot_id) when it was given")
    mono_s: float | None = Field(
        default=None, ge=0, le=MAX_DURATION_S,
        description="seconds since that boot (CLOCK_BOOTTIME) when it was given: with boot_id, the time without "
        "the wall clock, so a press made before NTP sync can be dated once the clock is right")
    ts_offset_s: float | None = Field(
        default=None, ge=-MAX_DURATION_S, le=MAX_DURATION_S,
        description="the kiosk corrected ts by this much after its clock synced (ts is then right; "
        "clock_synced stays false: it was not synced at the press). clock_synced false without it: "
        "the time could not be corrected (the kiosk restarted before its clock synced)")
    channel: AnswerChannel = Field(
        default="kiosk", exclude_if=lambda value: value == "kiosk",
        description="how the answer came in; absent (every kiosk before channels) means kiosk. "
        "Left out of the JSON when kiosk, so a server older than the field still accepts kiosks' batches")

    @model_validator(mode="after")
    def _value_matches_kind(self) -> FeedbackEvent:
        if self.kind == "smiley":
            if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value not in SMILEY_VALUES:
                raise ValueError("a smiley value is an integer 1..4")
            if self.answer_to is not None:
                raise ValueError("answer_to is only for followup events")
        elif not isinstance(self.value, str):
            raise ValueError("a followup value is an option id (slug)")
        return self


class EventBatch(_Strict):
    """What a kiosk publishes on its ``events`` topic."""

    v: Literal[1] = PROTOCOL_VERSION
    station_id: Slug
    device_id: Slug
    sent_at: UtcTime
    events: tuple[FeedbackEvent, ...] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)

    @model_validator(mode="after")
    def _events_belong_to_sender(self) -> EventBatch:
        for event in self.events:
            if (event.station_id, event.device_id) != (self.station_id, self.device_id):
                raise ValueError(
                    f"event {event.event_id} names {event.station_id}/{event.device_id}, "
                    f"the batch {self.station_id}/{self.device_id}"
                )
        return self


# --------------------------------------------------------------------- status


UpdateState = Literal[
    "idle", "waiting", "downloading", "installing", "switching", "trial", "committed", "rolled_back", "failed",
]
"""idle: no target; waiting: target known, waiting for the install window; downloading/installing/
switching/trial: steps of one update (trial = the new version runs and must prove itself healthy);
committed: the target runs and passed; rolled_back: the kiosk went back to the previous version by
itself (``update_error`` says why); failed: the update stopped before the switch (the old version
never stopped running)."""


class StatusHeartbeat(_Strict):
    """Retained on the ``status`` topic. The Last Will is the same model with
    ``online: false`` and only the required fields."""

    v: Literal[1] = PROTOCOL_VERSION
    station_id: Slug
    device_id: Slug
    online: bool
    sent_at: UtcTime
    software_version: str | None = Field(default=None, max_length=64)
    uptime_s: float | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    queue_depth: int | None = Field(
        default=None, ge=0, le=MAX_COUNT, description="events not yet acknowledged by the broker")
    oldest_queued_age_s: float | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    shed_count: int | None = Field(
        default=None, ge=0, le=MAX_COUNT, description="events dropped because the outbox was full")
    last_seq: int | None = Field(default=None, ge=0, le=MAX_SEQ, description="highest seq the kiosk has made")
    connected_at: UtcTime | None = Field(
        default=None,
        description="start of the broker connection this status belongs to; the Last Will carries the same "
        "time as its sent_at. Statuses are applied in (connected_at, offline last, sent_at) order",
    )
    epoch: UUID | None = Field(
        default=None, description="the outbox's epoch that last_seq, queue_depth and held_from_seq are about")
    clock_corrections: tuple[ClockCorrection, ...] | None = Field(
        default=None, max_length=10, description="recent clock corrections for events already sent (newest last)")
    held_from_seq: int | None = Field(
        default=None, ge=0, le=MAX_SEQ + 1,
        description="lowest seq the kiosk still holds (queued or kept for resends): nothing below it can be "
        "resent; last_seq + 1 when it holds none",
    )
    clock_synced: bool | None = None
    config_version: int | None = Field(default=None, ge=0, le=MAX_COUNT)
    cpu_temp_c: float | None = Field(default=None, ge=CPU_TEMP_RANGE_C[0], le=CPU_TEMP_RANGE_C[1])
    disk_free_mb: float | None = Field(default=None, ge=0, le=MAX_DISK_MB)
    ip: str | None = Field(default=None, max_length=64)
    last_command: CommandAck | None = None
    config_error: str | None = Field(
        default=None, max_length=500,
        description="why the last retained config was rejected (the kiosk keeps its last good one)",
    )
    # Software updates (docs/protocol.md "Software updates"); absent from kiosks without an updater.
    update_state: UpdateState | None = Field(default=None, description="where the kiosk's updater is")
    update_version: str | None = Field(default=None, max_length=64, description="the release it is applying or left")
    update_error: str | None = Field(default=None, max_length=500, description="why the last update failed or was rolled back")
    storage_error: str | None = Field(
        default=None, max_length=500,
        description="the kiosk cannot store answers on its disk right now (disk_full, write_failed) "
        "or replaced a corrupt outbox (corrupt_replaced), with details; absent when storage is fine",
    )
    accepts: tuple[ConfigFeature, ...] | None = Field(
        default=None, max_length=20,
        description="optional StationConfig fields this kiosk understands (e.g. survey_link): the server "
        "puts such a field only into the config of a kiosk that lists it (older kiosks refuse unknown fields)")
    survey_link_expires: UtcTime | None = Field(
        default=None, description="when the survey link the kiosk shows stops working (its config's "
        "survey_link.expires); absent: it shows none. The server sends a fresh link well before this")


class ClockCorrection(_Strict):
    """In status: events this kiosk had already sent with a wrong clock, and by how much to move them.

    When a kiosk's clock synchronises, it corrects the events of that boot still in
    its queue itself (their ``ts_offset_s``) and reports here the ones already sent:
    seq ``first_seq..last_seq`` of ``epoch`` made in boot ``boot_id`` while not
    synced are ``offset_s`` seconds off (true time = ts + offset_s). The server
    applies it once per event."""

    boot_id: UUID
    epoch: UUID | None = None
    first_seq: int = Field(ge=1, le=MAX_SEQ)
    last_seq: int = Field(ge=1, le=MAX_SEQ)
    offset_s: float = Field(ge=-MAX_DURATION_S, le=MAX_DURATION_S)
    synced_at: UtcTime


class CommandAck(_Strict):
    cmd_id: Slug
    name: str
    ok: bool
    detail: str = Field(default="", max_length=500)
    at: UtcTime


# --------------------------------------------------------------------- config


class FollowupOption(_Strict):
    id: Slug
    text: dict[Lang, str]


class FollowupQuestion(_Strict):
    """Asked after a smiley in ``for_values``; 3..6 options plus Skip."""

    id: Slug
    for_values: tuple[Literal[1, 2, 3, 4], ...] = Field(min_length=1)
    text: dict[Lang, str]
    options: tuple[FollowupOption, ...] = Field(min_length=3, max_length=6)


class Survey(_Strict):
    question_id: Slug = "visit"
    question: dict[Lang, str]
    followups: tuple[FollowupQuestion, ...] = ()


class OpeningHours(_Strict):
    """Local opening hours per weekday (mon..sun); a missing day is closed.

    ``palaute_wire.opening_hours`` says what "open" means from these (the one rule
    the kiosk and the server share), public holidays included."""

    timezone: str = LOCAL_ZONE_NAME
    """An IANA zone name; a name with no zone behind it is refused here, not at the first press."""
    days: dict[Weekday, tuple[str, str]] = {}
    open_on_public_holidays: bool | None = None
    """Finnish public holidays are closed days unless this is true (then the weekday's hours hold).
    Unset (the default, and every config from before it existed) means closed; the server leaves
    it out of what it sends unless a station sets it, so older kiosks take the config as before."""

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        zone(name)
        return name

    @field_validator("days")
    @classmethod
    def _hhmm(cls, days: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
        for day, (start, end) in days.items():
            for value in (start, end):
                if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
                    raise ValueError(f"{day}: {value!r} is not HH:MM")
            if start >= end:
                raise ValueError(f"{day}: opens {start} but closes {end}")
        return days


class Note(_Strict):
    """A "you said, we did" note shown on the idle screen between its dates."""

    id: Slug
    text: dict[Lang, str]
    starts: UtcTime | None = None
    ends: UtcTime | None = None


class BurstRule(_Strict):
    """More than ``max_presses`` presses within ``window_s`` seconds are flagged burst."""

    max_presses: int = Field(default=5, ge=1, le=10_000)
    window_s: float = Field(default=10.0, gt=0, le=86400)


VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+!-]{0,63}$"
ReleaseVersion = Annotated[str, StringConstraints(pattern=VERSION_PATTERN)]
"""A PEP 440 version as the kiosk wheel carries it (also a safe directory name)."""


class ReleaseFile(_Strict):
    """One file of a release: a wheel in the release's wheelhouse."""

    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}\.whl$")]
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    size: int = Field(ge=0)


class ReleaseManifest(_Strict):
    """What a release signing key vouches for: the files (by hash) and what to install.

    Signed with ed25519 by the operator's key, off the fleet server
    (palaute_wire.signing); a kiosk installs nothing whose hash is not here.
    ``stations``/``devices`` limit who may install it (empty: the whole fleet)."""

    v: Literal[1] = PROTOCOL_VERSION
    version: ReleaseVersion
    requirements: tuple[Annotated[str, StringConstraints(min_length=1, max_length=200)], ...] = Field(
        min_length=1, max_length=50, description="what pip installs from the files, e.g. palaute[kiosk]==0.2.0"
    )
    files: tuple[ReleaseFile, ...] = Field(min_length=1, max_length=500)
    outbox_schema: int = Field(default=1, ge=1, le=1000, description="the outbox schema this release writes")
    stations: tuple[Slug, ...] = ()
    devices: tuple[Slug, ...] = ()
    created_at: UtcTime

    def allows(self, station_id: str, device_id: str) -> bool:
        return (not self.stations or station_id in self.stations) and (not self.devices or device_id in self.devices)


class ReleaseTarget(_Strict):
    """The release a kiosk should run, inside its config (docs/protocol.md "Software updates").

    ``manifest`` is the signed manifest's exact text and ``signature`` its ed25519
    signature (base64); ``url`` is where the files are (``url + name``), fetched with
    the kiosk's own credentials. ``device_id`` names the one kiosk this target is for."""

    device_id: Slug
    version: ReleaseVersion
    url: str = Field(max_length=500, pattern=r"^https?://")
    manifest: str = Field(max_length=200_000)
    signature: str = Field(max_length=200)
    install_window: Literal["closed", "any"] = Field(
        default="closed", description="closed: only while the station is closed (the default)"
    )
    health_timeout_s: float = Field(default=300, gt=0, le=3600)
    rollout_id: int | None = Field(default=None, ge=1, le=2**31)


class SurveyLink(_Strict):
    """The station's web survey link for a kiosk's QR code (thank-you and idle screens).

    ``url`` carries a signed token that stops working at ``expires``; the server sends a new
    link well before then (half-way through its life), so a code scanned at the kiosk keeps
    working at home. A kiosk shows no code when it has none or when its synced clock is past
    ``expires``."""

    url: str = Field(min_length=10, max_length=1000, pattern=r"^https?://[^\s]+$")
    expires: UtcTime


class StationConfig(_Strict):
    """Retained on a device's ``config`` topic, server -> kiosk."""

    v: Literal[1] = PROTOCOL_VERSION
    config_version: int = Field(ge=1, le=MAX_COUNT)
    station_id: Slug
    station_name: str = Field(default="", max_length=200)
    default_lang: Lang = "fi"
    languages: tuple[Lang, ...] = LANGUAGES
    survey: Survey
    survey_version: int = Field(default=1, ge=0, le=MAX_COUNT)
    opening_hours: OpeningHours | None = None
    idle_timeout_s: float = Field(default=60, gt=0, le=86400)
    followup_timeout_s: float = Field(default=15, gt=0, le=3600)
    burst: BurstRule = BurstRule()
    notes: tuple[Note, ...] = ()
    release: ReleaseTarget | None = Field(
        default=None,
        description="per device; only sent to kiosks whose status reports update_state (older kiosks refuse "
        "unknown fields, so the server never sends them one)",
    )
    survey_link: SurveyLink | None = Field(
        default=None,
        description="per device: the web survey link its QR code shows; only sent to kiosks whose status "
        "lists survey_link in accepts. Absent: no code is shown",
    )


# --------------------------------------------------------------------- commands


class Command(_Strict):
    """Sent on a device's ``cmd`` topic, server -> kiosk; acknowledged in status."""

    v: Literal[1] = PROTOCOL_VERSION
    cmd_id: Slug
    name: CommandName
    from_seq: int | None = Field(default=None, ge=1, le=MAX_SEQ, description="resend: events with seq >= this")
    issued_at: UtcTime


StatusHeartbeat.model_rebuild()

# --------------------------------------------------------------------- topics


@dataclass(frozen=True)
class TopicParts:
    station_id: str
    device_id: str
    channel: str


def topic(station_id: str, device_id: str, channel: str) -> str:
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})")
    for name, value in (("station_id", station_id), ("device_id", device_id)):
        if not is_slug(value):
            raise ValueError(f"{name} {value!r} is not a slug [a-z0-9-]{{1,64}}")
    return f"{TOPIC_ROOT}/{station_id}/{device_id}/{channel}"


def subscription(channel: str) -> str:
    """Wildcard filter the server uses for one channel of every device."""
    return f"{TOPIC_ROOT}/+/+/{channel}"


def parse_topic(name: str) -> TopicParts:
    parts = name.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        raise ContractError("bad_topic", f"{name!r} is not {TOPIC_ROOT}/<station>/<device>/<channel>")
    station_id, device_id, channel = parts[2:]
    if not (is_slug(station_id) and is_slug(device_id)) or channel not in CHANNELS:
        raise ContractError("bad_topic", f"{name!r} has a malformed station, device or channel")
    return TopicParts(station_id, device_id, channel)


# --------------------------------------------------------------------- decoding

Payload = EventBatch | StatusHeartbeat | StationConfig | Command
_MODELS: dict[str, type[Payload]] = {
    "events": EventBatch,
    "status": StatusHeartbeat,
    "config": StationConfig,
    "cmd": Command,
}


def text_in(texts: Mapping[Lang, str], lang: str) -> str | None:
    """A config text (question, option, note) in ``lang``; None when it has none in that language."""
    return next((text for key, text in texts.items() if key == lang), None)


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json(exclude_none=True).encode()


def decode(topic_name: str, payload: bytes) -> tuple[TopicParts, Payload]:
    """Parse and validate one MQTT message; raise ContractError with a reason code.

    Reason codes: bad_topic, oversize, bad_json, unsupported_version, schema,
    topic_mismatch. The server stores the code in the dead-letter table.

    Speed: events and status first go through ``_validate_fast`` (pydantic-core alone,
    from the bytes); whatever it does not accept takes ``_validate``, the rules in
    order, which names the reason. Both give the same message for what both accept.
    """
    parts = parse_topic(topic_name)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversize", f"{len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}")
    message = _validate_fast(parts.channel, payload)
    if message is None:
        message = _validate(parts.channel, payload)
    claimed = (
        getattr(message, "station_id", parts.station_id),
        getattr(message, "device_id", parts.device_id),
    )
    if claimed != (parts.station_id, parts.device_id):
        raise ContractError(
            "topic_mismatch",
            f"topic names {parts.station_id}/{parts.device_id}, payload {claimed[0]}/{claimed[1]}",
        )
    return parts, message


def _validate(channel: str, payload: bytes) -> Payload:
    """The contract's rules in their order (JSON, version, schema), each failure with its reason."""
    try:
        data = json.loads(payload, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError("bad_json", str(exc)) from None
    if not isinstance(data, dict):
        raise ContractError("bad_json", f"expected a JSON object, got {type(data).__name__}")
    version = data.get("v")
    if version != PROTOCOL_VERSION:
        raise ContractError(
            "unsupported_version", f"v={version!r}; this server speaks v={PROTOCOL_VERSION}"
        )
    try:
        return _MODELS[channel].model_validate(data)
    except ValidationError as exc:
        raise ContractError("schema", _summarise(exc)) from None


# ---- the fast path: the same rules as plain pydantic-core types, no Python per event

def _fast_schema(node: Any) -> Any:
    """A model's core schema with its Python validators replaced by core types that keep their rules.

    - ``_utc`` (UtcTime): a datetime with offset 0 in [TIME_MIN, TIME_MAX). A time with another
      offset is not accepted here; ``_validate`` converts it to UTC as before.
    - ``FeedbackEvent._value_matches_kind``: a union tagged by ``kind``: a smiley's value a JSON
      integer 1..4 and no answer_to; a followup's value a slug.
    - ``EventBatch._events_belong_to_sender``: checked by ``_validate_fast`` after validation.
    Any other Python validator stays as it is (correct, only slower).
    """
    if isinstance(node, list):
        return [_fast_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get("type") == "function-after":
        function = node["function"].get("function")
        inner = node["schema"]
        name = getattr(function, "__name__", "")
        replaced: dict[str, Any] | None = None
        if function is _utc and inner.get("type") == "datetime":
            replaced = {**inner, "ge": TIME_MIN, "lt": TIME_MAX, "tz_constraint": 0}
        elif name == "_value_matches_kind" and inner.get("cls") is FeedbackEvent:
            model = _fast_schema(inner)
            fields_schema = model["schema"]
            fields = fields_schema["fields"]
            slug = next(choice for choice in fields["value"]["schema"]["choices"] if choice.get("type") == "str")
            smiley = {
                **fields,
                "kind": {**fields["kind"], "schema": core_schema.literal_schema(["smiley"])},
                "value": {**fields["value"], "schema": core_schema.int_schema(strict=True, ge=1, le=4)},
                "answer_to": {**fields["answer_to"],
                              "schema": core_schema.with_default_schema(core_schema.none_schema(), default=None)},
            }
            followup = {
                **fields,
                "kind": {**fields["kind"], "schema": core_schema.literal_schema(["followup"])},
                "value": {**fields["value"], "schema": slug},
            }
            replaced = {**model, "schema": core_schema.tagged_union_schema(
                {"smiley": {**fields_schema, "fields": smiley}, "followup": {**fields_schema, "fields": followup}},
                discriminator="kind",
            )}
        elif name == "_events_belong_to_sender" and inner.get("cls") is EventBatch:
            replaced = _fast_schema(inner)
        if replaced is not None:
            return {**replaced, **({"ref": node["ref"]} if "ref" in node else {})}
    return {key: value if key in ("metadata", "default", "cls", "function", "serialization") else _fast_schema(value)
            for key, value in node.items()}


def fast_core_schema(channel: str) -> Any:
    """The pydantic-core schema the fast path validates a channel's payload with (``_fast_schema``).

    For a reader that wants the same rules with another output (the server's SQLite ingest
    validates events straight into its insert parameters): whatever it derives must accept
    no more than this schema does."""
    return _fast_schema(_MODELS[channel].__pydantic_core_schema__)


_FAST_VALIDATORS: dict[str, SchemaValidator] = {
    "events": SchemaValidator(fast_core_schema("events")),
    "status": SchemaValidator(fast_core_schema("status")),
}


def _validate_fast(channel: str, payload: bytes) -> Payload | None:
    """The message if it passes every rule in pydantic-core alone (JSON parsed from the bytes), else None.

    It accepts only what ``_validate`` accepts, and makes the same message of it
    (tests/wire/test_contract_fast.py compares the two); None says nothing about why.
    """
    validator = _FAST_VALIDATORS.get(channel)
    if validator is None:
        return None
    try:
        message: EventBatch | StatusHeartbeat = validator.validate_json(payload)
    except ValidationError:
        return None
    if "v" not in message.model_fields_set:  # a missing v is an unsupported version, not the default
        return None
    if isinstance(message, EventBatch):
        station_id, device_id = message.station_id, message.device_id
        for event in message.events:
            if event.station_id != station_id or event.device_id != device_id:
                return None
    return message


def batch_payload(
    station_id: str, device_id: str, events_json: Sequence[bytes], sent_at: datetime | None = None
) -> bytes:
    """Assemble an ``events`` payload from events already serialised as JSON.

    Why: the kiosk outbox stores each event's JSON once and sends those exact bytes
    every time (a resend must carry the same event), so the batch is spliced
    together rather than re-serialised. The caller guarantees the events are
    valid FeedbackEvents of this device (the outbox only stores validated events);
    the count and size limits are checked here.
    """
    if not 1 <= len(events_json) <= MAX_BATCH_EVENTS:
        raise ValueError(f"a batch holds 1..{MAX_BATCH_EVENTS} events, not {len(events_json)}")
    for name, value in (("station_id", station_id), ("device_id", device_id)):
        if not is_slug(value):
            raise ValueError(f"{name} {value!r} is not a slug [a-z0-9-]{{1,64}}")
    sent = (sent_at or now_utc()).astimezone(UTC).isoformat().replace("+00:00", "Z")
    head = json.dumps(
        {"v": PROTOCOL_VERSION, "station_id": station_id, "device_id": device_id, "sent_at": sent},
        separators=(",", ":"),
    )
    payload = head[:-1].encode() + b',"events":[' + b",".join(events_json) + b"]}"
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"batch is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}; send fewer events")
    return payload


def _refuse_constant(name: str) -> float:
    """NaN, Infinity and -Infinity are not JSON (RFC 8259); Python's parser would accept them."""
    raise ValueError(f"{name} is not a JSON number")


def _summarise(exc: ValidationError, limit: int = 5) -> str:
    errors = exc.errors()
    lines = [
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in errors[:limit]
    ]
    if len(errors) > limit:
        lines.append(f"... and {len(errors) - limit} more")
    return "; ".join(lines)


def now_utc() -> datetime:
    """Now, inside the wire's time window (a kiosk clock at 1970 must not stop it sending)."""
    return clamp_time(datetime.now(UTC))
