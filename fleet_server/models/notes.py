"""A "you said, we did" note of a station, with its publishing state (see fleet_server.fleet.notes)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.core.clock import utcnow
from fleet_server.models.base import Base
from palaute_wire.contract import Lang, Note
from palaute_wire.opening_hours import LOCAL_TZ


class StationNote(Base):
    __tablename__ = "station_notes"
    __table_args__ = (Index(None, "station_id", "starts"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    text_fi: Mapped[str] = mapped_column(Text)
    text_sv: Mapped[str] = mapped_column(Text, default="")
    text_en: Mapped[str] = mapped_column(Text, default="")
    starts: Mapped[date] = mapped_column(doc="first local day shown")
    ends: Mapped[date | None] = mapped_column(doc="last local day shown; NULL: until withdrawn")
    revision: Mapped[int] = mapped_column(default=1)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None]
    withdrawn_by: Mapped[str | None] = mapped_column(String(64))
    first_published_at: Mapped[datetime | None] = mapped_column(doc="the broker first had it (PUBACK)")
    last_published_at: Mapped[datetime | None]
    published_revision: Mapped[int | None] = mapped_column(doc="the revision last published")
    published_config_version: Mapped[int | None]

    @property
    def slug(self) -> str:
        return f"note-{self.id}"

    @property
    def starts_utc(self) -> datetime:
        return datetime.combine(self.starts, time(), LOCAL_TZ).astimezone(UTC)

    @property
    def ends_utc(self) -> datetime | None:
        if self.ends is None:
            return None
        return datetime.combine(self.ends + timedelta(days=1), time(), LOCAL_TZ).astimezone(UTC)

    @property
    def texts(self) -> dict[Lang, str]:
        given: tuple[tuple[Lang, str], ...] = (("fi", self.text_fi), ("sv", self.text_sv), ("en", self.text_en))
        return {lang: text for lang, text in given if text}

    @property
    def pending(self) -> bool:
        """Saved but the kiosks may not have this revision (publishing failed or is under way)."""
        if self.withdrawn_at is not None:
            return self.last_published_at is None or self.last_published_at < self.withdrawn_at
        return self.published_revision != self.revision

    def state(self, now: datetime | None = None) -> str:
        now = now or utcnow()
        if self.withdrawn_at is not None:
            return "withdrawn"
        if self.ends_utc is not None and now >= self.ends_utc:
            return "ended"
        if now < self.starts_utc:
            return "scheduled"
        return "live"

    def shown_span(self, now: datetime | None = None) -> tuple[datetime, datetime | None] | None:
        """When kiosks showed it: from the later of its first day and its first publish, to
        the earlier of its last day and its withdrawal (None: still showing). None: never shown."""
        now = now or utcnow()
        if self.first_published_at is None:
            return None
        start = max(self.starts_utc, self.first_published_at)
        ends = [t for t in (self.ends_utc, self.withdrawn_at) if t is not None]
        end = min(ends) if ends else None
        if start >= now or (end is not None and end <= start):
            return None
        return start, (end if end is not None and end <= now else None)

    def to_wire(self) -> Note:
        return Note(id=self.slug, text=self.texts, starts=self.starts_utc, ends=self.ends_utc)


