"""What a station's web page asks: the smiley (the default), or the national questionnaire in
full, and whether it offers an open comment. Both are off until a coordinator switches them on
(/stations/<id>/web); a station without a row has both off. Kiosks are not affected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from fleet_server.models import Station, StationWebSettings


@dataclass(frozen=True)
class WebChoices:
    questionnaire: bool = False
    comments: bool = False
    updated_at: datetime | None = None
    updated_by: str | None = None


def choices(session: Session, station_id: str) -> WebChoices:
    row = session.get(StationWebSettings, station_id)
    if row is None:
        return WebChoices()
    return WebChoices(row.questionnaire, row.comments, row.updated_at, row.updated_by)


def set_choices(session: Session, station_id: str, *, questionnaire: bool, comments: bool, by: str | None,
                now: datetime) -> WebChoices:
    """Save both choices for ``station_id`` (KeyError for an unknown station). The caller commits."""
    if session.get(Station, station_id) is None:
        raise KeyError(station_id)
    row = session.get(StationWebSettings, station_id)
    if row is None:
        row = StationWebSettings(station_id=station_id)
        session.add(row)
    row.questionnaire, row.comments, row.updated_at, row.updated_by = questionnaire, comments, now, by
    session.flush()
    return choices(session, station_id)
