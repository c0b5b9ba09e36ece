"""The web survey's abuse limits (fleet_server.channels.web_limits), counted in the database
so every server process sees the same counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.models.base import Base


class WebAnswerLimit(Base):
    """Web answers under one key (``addr:<hashed address>``, ``station:<id>``) in one window."""

    __tablename__ = "web_answer_limits"
    __table_args__ = (Index(None, "window_start"),)

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
