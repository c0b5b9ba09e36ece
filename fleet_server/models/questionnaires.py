"""Tables of the web channel's national questionnaire and open comments (fleet_server.channels).

- ``station_web_settings``: what a station's web page asks besides the smiley: the national
  questionnaire in full (instead of the smiley) and an optional open comment; both off by
  default (no row = both off).
- ``questionnaire_responses``: one filled-in questionnaire form; ``submission_id`` (the page's
  id) is unique, so a form sent twice is one response. ``questionnaire`` and ``version`` say
  which wording was answered (fleet_server.channels.questionnaire).
- ``questionnaire_answers``: one item of a response, by its stable question id
  (``thl.recommend`` 0..10, the statements 1..5); ``value`` NULL is "I cannot say"; an item
  left empty has no row.
- ``web_comments``: an open comment, stored only after masking (fleet_server.channels.masking),
  read only through fleet_server.channels.comments (coordinators), removed by the retention
  pass after ``retention_comments_days``.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from fleet_server.core.clock import utcnow
from fleet_server.models.base import SLUG_LEN, Base, BigId


class StationWebSettings(Base):
    """A station's web-channel choices (coordinators set them on /stations/<id>/web)."""

    __tablename__ = "station_web_settings"

    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), primary_key=True)
    questionnaire: Mapped[bool] = mapped_column(
        default=False, doc="the web page asks the national questionnaire instead of the smiley")
    comments: Mapped[bool] = mapped_column(default=False, doc="the web page offers an open comment")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class QuestionnaireResponse(Base):
    """One questionnaire form as sent from a station's web page."""

    __tablename__ = "questionnaire_responses"
    __table_args__ = (
        Index(None, "station_id", "received_at"),
        CheckConstraint("channel IN ('kiosk', 'web', 'phone', 'sms')", name="channel"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    submission_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, doc="the page's id: one response per page")
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    questionnaire: Mapped[str] = mapped_column(String(32), doc="e.g. thl (fleet_server.channels.questionnaire)")
    version: Mapped[int] = mapped_column(doc="the questionnaire's wording version that was answered")
    channel: Mapped[str] = mapped_column(String(8), default="web")
    lang: Mapped[str] = mapped_column(String(8))
    received_at: Mapped[datetime] = mapped_column(doc="when the server received the form (its time)")


class QuestionnaireAnswer(Base):
    """One item of a response: its stable question id and the chosen point of its scale."""

    __tablename__ = "questionnaire_answers"
    __table_args__ = (Index(None, "question_id"),)

    response_id: Mapped[int] = mapped_column(ForeignKey("questionnaire_responses.id", ondelete="CASCADE"),
                                             primary_key=True)
    question_id: Mapped[str] = mapped_column(String(SLUG_LEN), primary_key=True)
    value: Mapped[int | None] = mapped_column(SmallInteger, doc="the scale point; NULL: 'I cannot say'")


class WebComment(Base):
    """An open comment from the web page, masked before it was stored (never the original)."""

    __tablename__ = "web_comments"
    __table_args__ = (Index(None, "station_id", "received_at"), Index(None, "received_at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    submission_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True, doc="the page's id: one comment per page")
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"))
    text: Mapped[str] = mapped_column(Text, doc="masked: identity codes, phone numbers, e-mail addresses replaced")
    masked: Mapped[int] = mapped_column(default=0, doc="how many pieces the masking replaced")
    lang: Mapped[str] = mapped_column(String(8))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
