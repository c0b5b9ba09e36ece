"""Kiosk software releases and their rollouts (migration 0900_releases).

- ``releases``: one row per signed release: the manifest's exact text and its
  ed25519 signature (the server cannot make either: the key is the operator's),
  ``withdrawn_at`` when it must no longer be installed.
- ``release_files``: the wheels of a release, by name, with sha256 and size as
  the manifest lists them; the bytes live in the release store on disk
  (settings.release_store_dir/<sha256>), shared between releases.
- ``rollouts``: a release sent to a target (canary devices, a station, stations, a
  share of the fleet, or all) in waves; ``state`` running | paused | halted |
  aborted | done. ``halted`` is "paused by itself" (too many failures).
- ``rollout_devices``: each kiosk of a rollout, its wave and how it went.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.core.clock import utcnow
from fleet_server.models.base import Base

ROLLOUT_STATES = ("running", "paused", "halted", "aborted", "done")
ROLLOUT_DEVICE_STATES = ("pending", "targeted", "healthy", "failed", "skipped")


class Release(Base):
    __tablename__ = "releases"

    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    manifest: Mapped[str] = mapped_column(Text, doc="the signed manifest's exact JSON text")
    signature: Mapped[str] = mapped_column(String(200), doc="base64 ed25519 signature of manifest")
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    added_by: Mapped[str | None] = mapped_column(String(64))
    withdrawn_at: Mapped[datetime | None]
    withdrawn_reason: Mapped[str] = mapped_column(Text, default="")


class ReleaseFile(Base):
    __tablename__ = "release_files"

    release_version: Mapped[str] = mapped_column(ForeignKey("releases.version"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)


class Rollout(Base):
    __tablename__ = "rollouts"
    __table_args__ = (
        CheckConstraint("state IN ('running', 'paused', 'halted', 'aborted', 'done')", name="state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    release_version: Mapped[str] = mapped_column(ForeignKey("releases.version"))
    target: Mapped[dict[str, Any]] = mapped_column(doc='{"kind": "all"|"station"|"stations"|"devices"|"percent", ...}')
    waves: Mapped[list[Any]] = mapped_column(JSON, doc='wave sizes: integers are devices, strings like "10%" a share')
    wave_healthy_s: Mapped[float] = mapped_column(doc="a wave must stay healthy this long before the next starts")
    max_failures: Mapped[int] = mapped_column(doc="more failed kiosks than this: the rollout halts itself")
    install_window: Mapped[str] = mapped_column(String(16), default="closed")
    health_timeout_s: Mapped[float] = mapped_column(default=300)
    state: Mapped[str] = mapped_column(String(16), default="running")
    current_wave: Mapped[int] = mapped_column(default=0)
    wave_healthy_since: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(Text, default="", doc="why it is paused, halted or aborted")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(64))
    finished_at: Mapped[datetime | None]


class RolloutDevice(Base):
    __tablename__ = "rollout_devices"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'targeted', 'healthy', 'failed', 'skipped')", name="state"),
        Index(None, "device_id", "state"),
    )

    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True)
    wave: Mapped[int]
    state: Mapped[str] = mapped_column(String(16), default="pending")
    from_version: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    targeted_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
