"""Users and API tokens, on the fleet server's declarative Base (migration 0100_auth)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.core.clock import utcnow
from fleet_server.models.base import Base

ROLE_CHECK = "role IN ('coordinator', 'staff', 'it', 'admin')"
TOKEN_ROLE_CHECK = "role IN ('coordinator', 'staff', 'it', 'admin', 'import')"
"""Tokens may also be ``import`` (a phone or SMS system delivering answers); people may not."""


class User(Base):
    """A person who signs in to the dashboard; staff belong to one station."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(ROLE_CHECK, name="role"),
        CheckConstraint("role != 'staff' OR station_id IS NOT NULL OR group_id IS NOT NULL", name="staff_station"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"))
    group_id: Mapped[str | None] = mapped_column(
        ForeignKey("station_groups.id"), doc="staff of a group: every station under it (instead of station_id)"
    )
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    session_epoch: Mapped[int] = mapped_column(
        default=0, doc="bumped to sign the user out everywhere (password change, disable)"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    language: Mapped[str | None] = mapped_column(
        String(5), doc="the dashboard language the user picked (fi, sv, en); None: from the browser"
    )


class ApiToken(Base):
    """A bearer token for scripts and the county's reporting systems; only its hash is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint(TOKEN_ROLE_CHECK, name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"))
    group_id: Mapped[str | None] = mapped_column(
        ForeignKey("station_groups.id"), doc="staff tokens of a group: every station under it (instead of station_id)"
    )
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, doc="SHA-256 hex of the token")
    prefix: Mapped[str] = mapped_column(String(16), doc="the token's first characters, to recognise it")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginFailure(Base):
    """One failed sign-in, under two keys (``user:<name>``, ``addr:<client address>``): the
    limit counts them in the database, so every server process sees the same failures."""

    __tablename__ = "login_failures"
    __table_args__ = (Index(None, "key", "at"), Index(None, "at"))

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)
