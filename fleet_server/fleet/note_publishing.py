"""Saving a "you said, we did" note and publishing it to its station's kiosks.

A note reaches the kiosks inside the station's retained config (remote_config
builds it with the active notes); publishing records which revision the broker
acknowledged, so the dashboard can say "saved, not yet on the kiosks".
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.core.clock import utcnow
from fleet_server.fleet.publisher import PublishError
from fleet_server.fleet.remote_config import publish_station, save_settings
from fleet_server.models import StationNote

_LOGGER = logging.getLogger(__name__)


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
    save_settings(session, note.station_id, {}, by=by, comment=f"you said, we did: {note.slug} {action}")
    session.commit()
    return republish(session, publisher, note)


def republish(session: Session, publisher, note: StationNote) -> PublishOutcome:
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
