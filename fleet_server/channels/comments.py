"""Open comments from a station's web page: masked before they are stored, read by coordinators only.

The one door to ``web_comments``. Writing: ``store_comment`` masks identity codes, phone
numbers and e-mail addresses (fleet_server.channels.masking) and only then cuts the text to
``web_comment_max_chars``, so a cut never leaves half a code unmasked; the original text is
never stored or logged. Reading: every reader takes the asking ``Principal`` and raises
``CommentsForbidden`` unless it may read comments (coordinators); exporting needs, on top,
``confirmed=True`` (the dashboard asks for it in a form of its own).

Never published: public pages, their JSON, the results API, the figures and the ordinary
exports do not read comments, and must not import this module or ``WebComment``;
tests/server/test_comments.py fails when a module outside the allowed list does. Comments are
deleted ``retention_comments_days`` after they came (fleet_server.fleet.retention).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet_server.auth.roles import Principal
from fleet_server.channels.masking import mask
from fleet_server.core.errors import CommentsForbidden
from fleet_server.models import Station, WebComment

MAX_FORM_CHARS = 8000
"""The most a comment field may carry at all (the page's own limit is web_comment_max_chars)."""

EXPORT_COLUMNS = ("station_id", "station", "received_at", "lang", "masked", "comment")


@dataclass(frozen=True)
class Comment:
    id: int
    station_id: str
    text: str
    masked: int
    lang: str
    received_at: datetime


def store_comment(session: Session, *, station_id: str, submission_id: uuid.UUID, lang: str, raw: str,
                  max_chars: int, now: datetime) -> str:
    """"stored", "empty" (nothing but spaces) or "duplicate" (this page already left a comment).
    The caller commits."""
    masked = mask(raw[:MAX_FORM_CHARS])
    text = masked.text.strip()[:max_chars].strip()
    if not text:
        return "empty"
    if session.scalar(select(WebComment.id).where(WebComment.submission_id == submission_id)) is not None:
        return "duplicate"
    try:
        with session.begin_nested():
            session.add(WebComment(submission_id=submission_id, station_id=station_id, text=text,
                                   masked=masked.total, lang=lang, received_at=now))
            session.flush()
    except IntegrityError:
        return "duplicate"
    return "stored"


def _allowed(principal: Principal) -> None:
    if not principal.may_read_comments:
        raise CommentsForbidden(f"your role ({principal.role}) may not read open comments (coordinators only)")


def _query(station_ids: Sequence[str], start: datetime, end: datetime):
    return select(WebComment).where(WebComment.station_id.in_(list(station_ids)), WebComment.received_at >= start,
                                    WebComment.received_at < end)


def read_comments(session: Session, principal: Principal, station_ids: Sequence[str], start: datetime,
                  end: datetime, limit: int = 500) -> list[Comment]:
    """The newest ``limit`` comments of the stations in [start, end), for a coordinator's page."""
    _allowed(principal)
    rows = session.scalars(_query(station_ids, start, end).order_by(WebComment.received_at.desc(),
                                                                    WebComment.id.desc()).limit(limit))
    return [Comment(r.id, r.station_id, r.text, r.masked, r.lang, r.received_at) for r in rows]


def count_comments(session: Session, principal: Principal, station_ids: Sequence[str], start: datetime,
                   end: datetime) -> int:
    _allowed(principal)
    return int(session.scalar(select(func.count()).select_from(_query(station_ids, start, end).subquery())) or 0)


def export_rows(session: Session, principal: Principal, station_ids: Sequence[str], start: datetime,
                end: datetime, *, confirmed: bool) -> Iterator[tuple]:
    """Every comment of the stations in [start, end), oldest first, for a file: only on purpose."""
    _allowed(principal)
    if not confirmed:
        raise CommentsForbidden("open comments are exported only on purpose: confirm the export first")
    names = {s.id: s.name for s in session.scalars(select(Station).where(Station.id.in_(list(station_ids))))}
    for r in session.scalars(_query(station_ids, start, end).order_by(WebComment.received_at, WebComment.id)):
        yield (r.station_id, names.get(r.station_id, r.station_id), r.received_at, r.lang, r.masked, r.text)
