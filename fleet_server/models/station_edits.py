"""The audit trail of the station editing page (migration 2300)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.core.clock import utcnow
from fleet_server.models.base import Base, BigId


class StationEdit(Base):
    """One saved change to a station's names or group: who, when, and each field's old and new value.

    Rows are only added, never changed, like the station config versions (whose ``created_by``
    is the trail of kiosk settings)."""

    __tablename__ = "station_edits"
    __table_args__ = (Index(None, "station_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[str] = mapped_column(String(64), doc="the user name that saved it")
    changes: Mapped[dict[str, Any]] = mapped_column(doc='{"field": [old, new]} of the fields that changed')
