"""The one-row table /healthz writes to, to prove the database takes writes (not only reads)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.core.clock import utcnow
from fleet_server.models.base import Base


class HealthProbe(Base):
    """One row per server process name; /healthz updates its row and commits."""

    __tablename__ = "health_probes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
