""""You said, we did": notes per station, published to its kiosks' idle screens.

A coordinator writes a short note in Finnish, Swedish and English with a first
and (optional) last day. Saving, editing or withdrawing one:
1. stores it here (``station_notes``; edits bump ``revision``),
2. appends a version to the station's config layer (fleet_server.fleet.remote_config.
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
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.core.clock import utcnow
from fleet_server.core.errors import NoteInvalid
from fleet_server.models import StationNote
from palaute_wire.contract import Note

_LOGGER = logging.getLogger(__name__)

MAX_NOTE_CHARS = 280
"""A note is read on a kiosk's idle screen in passing: keep it to a tweet."""


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
