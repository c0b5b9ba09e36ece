"""The fleet server's tables, as SQLAlchemy 2 typed ORM models.

One schema for SQLite (zero-setup default) and PostgreSQL (production); Alembic
migrations in fleet_server/migrations create it, and a test proves the
migrations and these models agree on both backends.

Design choices later features rely on:
- ``feedback_events.event_id`` is unique: the idempotency key that makes a
  redelivered MQTT message harmless (INSERT ... ON CONFLICT DO NOTHING).
- A smiley's answer is the integer column ``value`` (1..4) and a follow-up's the
  text column ``option_id``, so aggregations are plain GROUP BYs.
- Indexes: (station_id, ts) for per-station time ranges, (device_id, seq) for
  gap detection, dead letters by time and reason.
- ``devices.state`` (provisioned | active | retired) is for the device registry;
  the ingest registers unknown devices as ``active`` on their first valid message.
- ``device_presence`` keeps each online/offline transition, so charts can shade
  the hours a kiosk was offline and alerts can measure outages.
- Times are stored as UTC and always read back timezone-aware (``UtcDateTime``),
  on SQLite too.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    Uuid,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fleet_server.core.clock import utcnow
from fleet_server.models.base import SLUG_LEN, Base, BigId, Named

DEVICE_STATES = ("provisioned", "active", "retired")


class Station(Named, Base):
    """A health station; its id is the slug used in MQTT topics."""

    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    name_fi: Mapped[str | None] = mapped_column(String(200), doc="the name in Finnish (None: ``name``)")
    name_sv: Mapped[str | None] = mapped_column(String(200), doc="the name in Swedish (None: ``name``)")
    name_en: Mapped[str | None] = mapped_column(String(200), doc="the name in English (None: ``name``)")
    group_id: Mapped[str | None] = mapped_column(
        ForeignKey("station_groups.id"), doc="the municipality or service area it belongs to"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    public_page: Mapped[bool] = mapped_column(
        default=False, server_default=false(),
        doc="its results page is open to everyone (fleet_server.web.public_pages); off until a coordinator turns it on")

    devices: Mapped[list[Device]] = relationship(back_populates="station", order_by="Device.id")


class Device(Base):
    """A kiosk, with the latest health it reported on its ``status`` topic."""

    __tablename__ = "devices"
    __table_args__ = (
        CheckConstraint(
            "state IN ('provisioned', 'active', 'retired')", name="state"
        ),
    )

    id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    online: Mapped[bool] = mapped_column(default=False)
    last_seen_at: Mapped[datetime | None] = mapped_column(
        doc="when the server last received a message the device itself sent (not its Last Will)"
    )
    last_event_at: Mapped[datetime | None] = mapped_column(doc="when the server last received an event batch")
    status_sent_at: Mapped[datetime | None] = mapped_column(doc="sent_at of the status applied last")
    status_connected_at: Mapped[datetime | None] = mapped_column(
        doc="connected_at of the status applied last (the kiosk's connection it came over)")
    status_received_at: Mapped[datetime | None]
    last_status: Mapped[dict[str, Any] | None] = mapped_column(doc="the last status payload, as received")

    software_version: Mapped[str | None] = mapped_column(String(64))
    uptime_s: Mapped[float | None] = mapped_column(Float)
    queue_depth: Mapped[int | None]
    oldest_queued_age_s: Mapped[float | None] = mapped_column(Float)
    shed_count: Mapped[int | None]
    last_seq: Mapped[int | None] = mapped_column(BigInteger, doc="highest seq the kiosk says it has made")
    epoch: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, doc="the outbox epoch the kiosk's status reports: the sequence the gap check follows")
    held_from_seq: Mapped[int | None] = mapped_column(
        BigInteger, doc="lowest seq the kiosk says it still holds: gaps below it are unrecoverable")
    clock_synced: Mapped[bool | None]
    config_version: Mapped[int | None]
    cpu_temp_c: Mapped[float | None] = mapped_column(Float)
    disk_free_mb: Mapped[float | None] = mapped_column(Float)
    ip: Mapped[str | None] = mapped_column(String(64))

    station: Mapped[Station] = relationship(back_populates="devices")


class DevicePresence(Base):
    """One online/offline transition of a device, as the server saw it."""

    __tablename__ = "device_presence"
    __table_args__ = (
        Index(None, "device_id", "at"),
        Index(None, "at"),  # the fleet's transitions since an hour (the overview's online hours), without a device list
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    at: Mapped[datetime] = mapped_column(doc="when the server received the status")
    online: Mapped[bool]


class FeedbackEvent(Base):
    """One answer given at a kiosk (see palaute_wire.contract.FeedbackEvent)."""

    __tablename__ = "feedback_events"
    __table_args__ = (
        Index(None, "station_id", "ts"),
        Index(None, "device_id", "seq"),
        CheckConstraint("kind IN ('smiley', 'followup')", name="kind"),
        CheckConstraint("channel IN ('kiosk', 'web', 'phone', 'sms')", name="channel"),
        CheckConstraint("channel != 'kiosk' OR (device_id IS NOT NULL AND seq IS NOT NULL)", name="kiosk_device"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    # Typed str for the kiosk code that reads kiosk rows (gaps, clock corrections); the column is nullable.
    device_id: Mapped[str] = mapped_column(
        ForeignKey("devices.id"), nullable=True, doc="the kiosk; NULL for answers that came in another channel (web, phone, sms)")
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[int | None] = mapped_column(doc="smiley: 1 very unhappy .. 4 very happy; NULL for followups")
    option_id: Mapped[str | None] = mapped_column(String(SLUG_LEN), doc="followup: the chosen option id")
    question_id: Mapped[str] = mapped_column(String(SLUG_LEN))
    lang: Mapped[str] = mapped_column(String(8))
    ts: Mapped[datetime] = mapped_column(doc="when the answer was given, kiosk clock (see clock_synced)")
    received_at: Mapped[datetime] = mapped_column(doc="when the server received the batch")
    seq: Mapped[int] = mapped_column(BigInteger, nullable=True, doc="the kiosk's seq; NULL outside the kiosk channel")
    clock_synced: Mapped[bool]
    survey_version: Mapped[int] = mapped_column(default=0)
    answer_to: Mapped[uuid.UUID | None] = mapped_column(Uuid, doc="followup: event_id of its smiley")
    epoch: Mapped[uuid.UUID | None] = mapped_column(
        Uuid, doc="the kiosk outbox's identity; seq counts within (device_id, epoch); NULL: before epochs")
    boot_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, doc="the kiosk's boot when it was given")
    mono_s: Mapped[float | None] = mapped_column(Float, doc="seconds since that boot when it was given")
    ts_offset_s: Mapped[float | None] = mapped_column(
        Float, doc="ts was corrected by this much after the kiosk's clock synced (by the kiosk or the server); "
        "NULL with clock_synced false: the time could not be corrected")
    burst: Mapped[bool] = mapped_column(default=False, doc="flagged: part of a repeated-press burst")
    out_of_hours: Mapped[bool] = mapped_column(default=False, doc="flagged: given while the station was closed")
    channel: Mapped[str] = mapped_column(
        String(8), default="kiosk", server_default="kiosk", doc="kiosk | web | phone | sms (palaute_wire.contract)")


class DeadLetter(Base):
    """A message the ingest could not accept, kept whole for diagnosis or replay."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(index=True)
    topic: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(32), index=True, doc="a contract.ContractError reason or an ingest one")
    detail: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary, doc="the raw payload (truncated past MAX_STORED_PAYLOAD)")
    size: Mapped[int] = mapped_column(doc="the payload's size as received, in bytes")
    digest: Mapped[str | None] = mapped_column(
        String(64), unique=True, doc="sha256 of reason, topic and payload: one row per distinct refused message"
    )
    count: Mapped[int] = mapped_column(default=1, server_default="1", doc="times this same message was refused")
    last_seen_at: Mapped[datetime | None] = mapped_column(doc="when it was last refused (received_at: the first)")
    stored_payload: Mapped[bytes | None] = mapped_column(
        LargeBinary, doc="conflicting_duplicate: the copy already stored under the same event id"
    )


MAX_STORED_PAYLOAD = 1024 * 1024
"""Dead letters keep at most this many payload bytes (the broker already caps messages)."""
