"""Monthly report e-mail: who gets which report in which language, and each month's sending
(fleet_server.fleet.report_mail)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.core.clock import utcnow
from fleet_server.models.base import Base


class ReportSubscription(Base):
    """One address getting one station's or one group's monthly report as a PDF on the 1st."""

    __tablename__ = "report_subscriptions"
    __table_args__ = (
        CheckConstraint("(station_id IS NULL) <> (group_id IS NULL)", name="one_scope"),
        CheckConstraint("language IN ('fi', 'sv', 'en')", name="language"),
        Index(None, "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(5), doc="the report's and the message's language: fi, sv, en")
    station_id: Mapped[str | None] = mapped_column(ForeignKey("stations.id"))
    group_id: Mapped[str | None] = mapped_column(ForeignKey("station_groups.id"))
    created_by: Mapped[str] = mapped_column(String(64), doc="the user (or 'cli') who added it")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReportDelivery(Base):
    """One month's report to one subscription: made once (unique), sent once, retried on its own backoff."""

    __tablename__ = "report_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "month"),
        Index("ix_report_deliveries_due", "next_attempt_at", sqlite_where=text("delivered_at IS NULL"),
              postgresql_where=text("delivered_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("report_subscriptions.id", ondelete="CASCADE"))
    month: Mapped[date] = mapped_column(doc="the first day of the month the report covers")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    last_error: Mapped[str] = mapped_column(Text, default="")
