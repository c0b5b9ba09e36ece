"""Retention: what the database forgets, and when (settings ``retention_*_days``; 0 keeps for ever).

Run by the fleet loop's leader once an hour (``apply_retention``). The hourly rollups
(results figures) are never removed, so figures for old periods survive their raw answers.

- raw answers (``feedback_events``, by the answer's ``ts``): on PostgreSQL the monthly
  partitions lying wholly before the cutoff are dropped (instant, no bloat), and the
  default partition is cleaned with DELETE; on SQLite a DELETE. Default: kept for ever.
  The web page's questionnaire responses (``received_at``) go with them: they are raw
  answers too, and have no rollups, so their item figures for those days go as well.
- dead letters (``received_at``, 30 days), presence history (``at``, 90 days), cleared
  alerts with their delivery rows (``cleared_at``, 365 days), resolved gaps
  (``resolved_at``, 90 days).
- open comments from the web page (``web_comments.received_at``, 90 days; always removed,
  never kept for ever: ``retention_comments_days`` is at least 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, select

from fleet_server.core.partitions import drop_partitions_before, ensure_partitions, is_partitioned
from fleet_server.core.settings import Settings
from fleet_server.models import (
    Alert,
    AlertDelivery,
    DeadLetter,
    DevicePresence,
    FeedbackEvent,
    QuestionnaireAnswer,
    QuestionnaireResponse,
    SeqGap,
    WebComment,
)

_LOGGER = logging.getLogger(__name__)


@dataclass
class RetentionPass:
    removed: dict[str, int] = field(default_factory=dict)
    dropped_partitions: list[str] = field(default_factory=list)


def apply_retention(engine: Engine, settings: Settings, now: datetime) -> RetentionPass:
    """One pass in one transaction; also makes the answers' partitions for the months ahead."""
    result = RetentionPass()

    def cutoff(days: int) -> datetime | None:
        return now - timedelta(days=days) if days > 0 else None

    with engine.begin() as conn:
        ensure_partitions(conn, now)
        if (before := cutoff(settings.retention_answers_days)) is not None:
            if is_partitioned(conn):
                result.dropped_partitions = drop_partitions_before(conn, before)
            result.removed["answers"] = conn.execute(delete(FeedbackEvent).where(FeedbackEvent.ts < before)).rowcount
            # The web page's questionnaire responses are raw answers too (they have no rollups).
            old = select(QuestionnaireResponse.id).where(QuestionnaireResponse.received_at < before)
            conn.execute(delete(QuestionnaireAnswer).where(QuestionnaireAnswer.response_id.in_(old)))
            result.removed["questionnaires"] = conn.execute(
                delete(QuestionnaireResponse).where(QuestionnaireResponse.received_at < before)).rowcount
        if (before := cutoff(settings.retention_dead_letters_days)) is not None:
            result.removed["dead_letters"] = conn.execute(
                delete(DeadLetter).where(DeadLetter.received_at < before)).rowcount
        if (before := cutoff(settings.retention_presence_days)) is not None:
            result.removed["presence"] = conn.execute(
                delete(DevicePresence).where(DevicePresence.at < before)).rowcount
        if (before := cutoff(settings.retention_alerts_days)) is not None:
            old = select(Alert.id).where(Alert.cleared_at < before)
            conn.execute(delete(AlertDelivery).where(AlertDelivery.alert_id.in_(old)))
            result.removed["alerts"] = conn.execute(delete(Alert).where(Alert.cleared_at < before)).rowcount
        if (before := cutoff(settings.retention_gaps_days)) is not None:
            result.removed["gaps"] = conn.execute(delete(SeqGap).where(SeqGap.resolved_at < before)).rowcount
        before = now - timedelta(days=max(1, settings.retention_comments_days))
        result.removed["comments"] = conn.execute(delete(WebComment).where(WebComment.received_at < before)).rowcount
    gone = {k: v for k, v in result.removed.items() if v}
    if gone or result.dropped_partitions:
        _LOGGER.info("retention: removed %s%s", ", ".join(f"{v} {k}" for k, v in gone.items()) or "nothing",
                     f"; dropped {', '.join(result.dropped_partitions)}" if result.dropped_partitions else "")
    return result
