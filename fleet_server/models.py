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
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SLUG_LEN = 64

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Named constraints, so later migrations can alter them (SQLite batch mode needs names)."""

DEVICE_STATES = ("provisioned", "active", "retired")


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so naive UTC is
    stored (which also keeps its text comparisons in time order) and UTC is
    attached on the way out. Naive values given to the database are refused:
    guessing a zone is how off-by-two-hours reports happen.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give the database UTC-aware times")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


class Station(Base):
    """A health station; its id is the slug used in MQTT topics."""

    __tablename__ = "stations"

    id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

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
    status_received_at: Mapped[datetime | None]
    last_status: Mapped[dict[str, Any] | None] = mapped_column(doc="the last status payload, as received")

    software_version: Mapped[str | None] = mapped_column(String(64))
    uptime_s: Mapped[float | None] = mapped_column(Float)
    queue_depth: Mapped[int | None]
    oldest_queued_age_s: Mapped[float | None] = mapped_column(Float)
    shed_count: Mapped[int | None]
    last_seq: Mapped[int | None] = mapped_column(BigInteger, doc="highest seq the kiosk says it has made")
    clock_synced: Mapped[bool | None]
    config_version: Mapped[int | None]
    cpu_temp_c: Mapped[float | None] = mapped_column(Float)
    disk_free_mb: Mapped[float | None] = mapped_column(Float)
    ip: Mapped[str | None] = mapped_column(String(64))

    station: Mapped[Station] = relationship(back_populates="devices")


class DevicePresence(Base):
    """One online/offline transition of a device, as the server saw it."""

    __tablename__ = "device_presence"
    __table_args__ = (Index(None, "device_id", "at"),)

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
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[int | None] = mapped_column(doc="smiley: 1 very unhappy .. 4 very happy; NULL for followups")
    option_id: Mapped[str | None] = mapped_column(String(SLUG_LEN), doc="followup: the chosen option id")
    question_id: Mapped[str] = mapped_column(String(SLUG_LEN))
    lang: Mapped[str] = mapped_column(String(8))
    ts: Mapped[datetime] = mapped_column(doc="when the answer was given, kiosk clock (see clock_synced)")
    received_at: Mapped[datetime] = mapped_column(doc="when the server received the batch")
    seq: Mapped[int] = mapped_column(BigInteger)
    clock_synced: Mapped[bool]
    survey_version: Mapped[int] = mapped_column(default=0)
    answer_to: Mapped[uuid.UUID | None] = mapped_column(Uuid, doc="followup: event_id of its smiley")
    burst: Mapped[bool] = mapped_column(default=False, doc="flagged: part of a repeated-press burst")
    out_of_hours: Mapped[bool] = mapped_column(default=False, doc="flagged: given while the station was closed")


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


MAX_STORED_PAYLOAD = 1024 * 1024
"""Dead letters keep at most this many payload bytes (the broker already caps messages)."""


# Tables kept next to the feature that owns them register on the same Base here, so
# Alembic and the schema test see every table whichever module is imported first.
from fleet_server.auth import models as _auth_models  # noqa: E402,F401
from fleet_server import fleet_models as _fleet_models  # noqa: E402,F401
from fleet_server import rollups as _rollups  # noqa: E402,F401
from fleet_server import notes as _notes  # noqa: E402,F401
from fleet_server import gaps as _gaps  # noqa: E402,F401
