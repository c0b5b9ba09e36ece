""""You said, we did": notes per station, published to its kiosks' idle screens.

A coordinator writes a short note in Finnish, Swedish and English with a first
and (optional) last day. Saving, editing or withdrawing one:
1. stores it here (``station_notes``; edits bump ``revision``),
2. appends a version to the station's config layer (fleet_server.remote_config.
   save_settings), so the station's ``config_version`` grows and the devices page
   shows which kiosks have applied it,
3. publishes the station's config retained on every live device's ``config``
   topic (remote_config.publish_station) with the notes this module adds
   through ``remote_config.note_sources``: every note that is not withdrawn and
   has not ended. Kiosks show a note between its ``starts`` and ``ends``.

"When each was shown" is kept from the publishing: ``first_published_at`` (the
kiosks had it from then), its days, and ``withdrawn_at``; see ``shown_span``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import ForeignKey, Index, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from palaute_wire.contract import Note
from fleet_server.models import Base, utcnow

_LOGGER = logging.getLogger(__name__)

LOCAL_TZ = ZoneInfo("Europe/Helsinki")
MAX_NOTE_CHARS = 280
"""A note is read on a kiosk's idle screen in passing: keep it to a tweet."""


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
        return datetime.combine(self.starts, time(), LOCAL_TZ).astimezone(timezone.utc)

    @property
    def ends_utc(self) -> datetime | None:
        if self.ends is None:
            return None
        return datetime.combine(self.ends + timedelta(days=1), time(), LOCAL_TZ).astimezone(timezone.utc)

    @property
    def texts(self) -> dict[str, str]:
        return {lang: text for lang, text in (("fi", self.text_fi), ("sv", self.text_sv), ("en", self.text_en)) if text}

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


class NoteInvalid(ValueError):
    pass


def validate(text_fi: str, text_sv: str, text_en: str, starts: date, ends: date | None) -> None:
    problems = []
    if not text_fi.strip():
        problems.append("the Finnish text is required (Swedish and English are strongly recommended)")
    for lang, text in (("fi", text_fi), ("sv", text_sv), ("en", text_en)):
        if len(text) > MAX_NOTE_CHARS:
            problems.append(f"the {lang} text has {len(text)} characters; keep it to {MAX_NOTE_CHARS}")
    if ends is not None and ends < starts:
        problems.append(f"the last day ({ends}) is before the first ({starts})")
    if problems:
        raise NoteInvalid("; ".join(problems))


def active_notes(session: Session, station_id: str) -> list[Note]:
    """The notes a station's kiosks should hold: not withdrawn, not ended (future ones included)."""
    now = utcnow()
    rows = session.scalars(
        select(StationNote)
        .where(StationNote.station_id == station_id, StationNote.withdrawn_at.is_(None))
        .order_by(StationNote.starts, StationNote.id)
    )
    return [n.to_wire() for n in rows if n.ends_utc is None or n.ends_utc > now]


def list_notes(session: Session, station_ids: list[str] | None = None) -> list[StationNote]:
    q = select(StationNote).order_by(StationNote.starts.desc(), StationNote.id.desc())
    if station_ids is not None:
        q = q.where(StationNote.station_id.in_(station_ids))
    return list(session.scalars(q))


@dataclass(frozen=True)
class PublishOutcome:
    note: StationNote
    config_version: int | None
    devices: tuple[str, ...]
    error: str | None = None


def publish(session: Session, publisher, note: StationNote, by: str, action: str) -> PublishOutcome:
    """Commit the note, version the station config, and publish it retained to the station's kiosks.

    The note is committed first: a broker outage leaves it saved and ``pending``,
    to be published again from the dashboard (or by the next config publish).
    """
    from fleet_server.remote_config import save_settings

    save_settings(session, note.station_id, {}, by=by, comment=f"you said, we did: {note.slug} {action}")
    session.commit()
    return republish(session, publisher, note)


def republish(session: Session, publisher, note: StationNote) -> PublishOutcome:
    from fleet_server.publisher import PublishError
    from fleet_server.remote_config import publish_station

    try:
        published = publish_station(session, publisher, note.station_id)
    except (PublishError, OSError) as exc:
        _LOGGER.warning("note %s saved but not published: %s", note.slug, exc)
        return PublishOutcome(note, None, (), str(exc))
    now = utcnow()
    for row in session.scalars(select(StationNote).where(StationNote.station_id == note.station_id)):
        if row.withdrawn_at is None or row.last_published_at is None or row.last_published_at < row.withdrawn_at:
            row.last_published_at = now
            row.published_revision = row.revision
            row.published_config_version = published.config_version
            if row.first_published_at is None and row.withdrawn_at is None:
                row.first_published_at = now
    session.commit()
    _LOGGER.info("%s: config %d with notes published to %d kiosk(s)", note.station_id,
                 published.config_version, len(published.devices))
    return PublishOutcome(note, published.config_version, published.devices)
