"""Tables for fleet operations: broker credentials, station configs, commands, alerts.

On the fleet server's declarative Base (migration 0200_fleet_ops). They hang off the
``stations`` and ``devices`` rows in fleet_server.models and never duplicate them:
the registry state (provisioned | active | retired) stays on ``devices.state``.

- ``device_credentials``: the device's broker password as a Mosquitto ``$7$`` hash
  (PBKDF2-SHA512). The secret itself is shown once at provisioning and never stored;
  the hash is what the broker's password file needs, so the file can be rebuilt
  from the database at any time.
- ``station_configs``: every saved version of a station's settings, and of the
  fleet-wide defaults (``station_id`` NULL). Rows are never updated, so the history
  is the audit trail. A station's published ``config_version`` is the highest row
  id among its own rows and the defaults' rows: it grows whenever either changes.
- ``device_commands``: identify / restart / resend sent over ``cmd``, with the
  acknowledgement the kiosk reported in its status.
- ``alerts``: one row per firing of a rule on a device or station; ``cleared_at``
  is set when the condition ends. At most one open row per ``key``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.core.clock import utcnow
from fleet_server.models.base import SLUG_LEN, Base

COMMAND_NAMES = ("identify", "restart", "resend")


class DeviceCredential(Base):
    __tablename__ = "device_credentials"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    username: Mapped[str] = mapped_column(String(SLUG_LEN), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255), doc="Mosquitto $7$ PBKDF2-SHA512 hash")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None]


class BrokerBridge(Base):
    """A regional broker's bridge account on the central broker (deploy/mosquitto/regional-bridge.conf).

    Its user name is ``palaute-bridge-<name>``; it may do what the region's kiosks may, for any
    kiosk: write ``events`` and ``status``, read ``config`` and ``cmd``. Only the hash is kept.
    """

    __tablename__ = "broker_bridges"

    name: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255), doc="Mosquitto $7$ PBKDF2-SHA512 hash")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None]


class StationConfigVersion(Base):
    __tablename__ = "station_configs"
    __table_args__ = (Index(None, "station_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    station_id: Mapped[str | None] = mapped_column(
        ForeignKey("stations.id"), doc="NULL: the fleet-wide defaults"
    )
    settings: Mapped[dict[str, Any]] = mapped_column(
        doc="the StationConfig fields this scope sets (survey, opening_hours, ...)"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(Text, default="")


class DeviceCommand(Base):
    __tablename__ = "device_commands"
    __table_args__ = (
        CheckConstraint("name IN ('identify', 'restart', 'resend')", name="name"),
        Index(None, "device_id", "issued_at"),
    )

    cmd_id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    name: Mapped[str] = mapped_column(String(16))
    from_seq: Mapped[int | None]
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    issued_by: Mapped[str | None] = mapped_column(String(64))
    acked_at: Mapped[datetime | None] = mapped_column(doc="the kiosk's time of acknowledgement")
    ok: Mapped[bool | None]
    detail: Mapped[str] = mapped_column(Text, default="")


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        # One open alert per key; cleared ones are history.
        Index(
            "uq_alerts_open_key",
            "key",
            unique=True,
            sqlite_where=text("cleared_at IS NULL"),
            postgresql_where=text("cleared_at IS NULL"),
        ),
        Index(None, "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200), doc="rule:station[/device], the de-duplication key")
    rule: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16), default="warning")
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    device_id: Mapped[str | None] = mapped_column(ForeignKey("devices.id"))
    message: Mapped[str] = mapped_column(Text)
    text_id: Mapped[str] = mapped_column(
        Text, default="", server_default="",
        doc="the message's catalogue text (English, with {placeholders}); e-mails and pages say it in the "
        "reader's language from it and params; empty on rows older than migration 2000 (message is used)")
    params: Mapped[dict[str, Any] | None] = mapped_column(default=dict, doc="the placeholders' values")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    cleared_at: Mapped[datetime | None]
    notified_at: Mapped[datetime | None] = mapped_column(
        doc="when the firing was handed to the channels (one alert_deliveries row each)")
    cleared_notified_at: Mapped[datetime | None] = mapped_column(doc="the same for the clearing")


class AlertDelivery(Base):
    """One firing or clearing of an alert on one channel: sent once, retried on its own backoff.

    A pass claims a due row with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL), sends it and commits,
    so two passes never send the same row, and a channel that is down delays only its own rows.
    """

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "event", "channel"),
        Index("ix_alert_deliveries_due", "next_attempt_at", sqlite_where=text("delivered_at IS NULL"),
              postgresql_where=text("delivered_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"))
    event: Mapped[str] = mapped_column(String(16), doc="firing | cleared")
    channel: Mapped[str] = mapped_column(String(16), doc="email | webhook")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")


class SeqGap(Base):
    """One range of a kiosk's seqs the server has not stored, while it lasts and after."""

    __tablename__ = "seq_gaps"
    __table_args__ = (
        Index(None, "device_id", "resolved_at"),
        # One open row per start of a range: concurrent passes cannot track the same gap twice.
        Index(
            "uq_seq_gaps_open_first_seq",
            "device_id",
            "first_seq",
            unique=True,
            sqlite_where=text("resolved_at IS NULL"),
            postgresql_where=text("resolved_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger, doc="inclusive; the range shrinks as events arrive")
    epoch: Mapped[uuid.UUID | None] = mapped_column(Uuid, doc="the outbox epoch these seqs belong to")
    kind: Mapped[str] = mapped_column(String(16), doc="leading | internal | tail (when first found)")
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    resend_cmd_id: Mapped[str | None] = mapped_column(String(SLUG_LEN), doc="device_commands.cmd_id asking for it")
    resend_at: Mapped[datetime | None]
    ack_seen_at: Mapped[datetime | None] = mapped_column(doc="when the server saw the kiosk acknowledge it")
    unrecoverable_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(Text, default="", doc="why it is unrecoverable, in words")
    resolved_at: Mapped[datetime | None] = mapped_column(doc="the events arrived; NULL while missing")

    @property
    def missing(self) -> int:
        return self.last_seq - self.first_seq + 1


class GapCheck(Base):
    """One row per kiosk that the gap pass locks (``FOR UPDATE SKIP LOCKED``) while it works on
    that kiosk's gaps, so two passes running at once split the kiosks instead of both writing."""

    __tablename__ = "gap_checks"

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    checked_at: Mapped[datetime | None] = mapped_column(doc="when a pass last worked on this kiosk")
