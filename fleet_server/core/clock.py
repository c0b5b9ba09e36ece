"""The server's one notion of "now": UTC-aware, so every stored time compares."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
