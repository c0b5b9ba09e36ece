"""Missing answers in words, in the reader's language: what the device pages, the fleet API and the
``events_missing`` alert say about a kiosk's open seq gaps (fleet_server.fleet.gaps finds and tracks
them, and keeps why one is lost in English, ``seq_gaps.reason``, for logs and the API)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from fleet_server.core import i18n
from fleet_server.core.i18n import N_
from fleet_server.fleet.gaps import MAX_TRACKED_GAPS, REPLACED_OUTBOX, gap_dict
from fleet_server.models import SeqGap

_ = i18n.gettext
ngettext = i18n.ngettext


LOST_ANSWERS = N_("the kiosk no longer has them: they are older than the kiosk keeps answers, or it had to drop "
                  "them when its storage was full")
"""Why a gap cannot come back, in the reader's language (the stored English reason has the kiosk's own figures)."""


def reason_words(row: SeqGap) -> str:
    """Why ``row``'s answers cannot come back, in the reader's language; English keeps the stored detail."""
    if row.reason == REPLACED_OUTBOX:
        return _(REPLACED_OUTBOX)
    if i18n.lang() == "en" and row.reason:
        return row.reason
    return _(LOST_ANSWERS)


def _seq_range(row: SeqGap) -> str:
    return f"{row.first_seq}–{row.last_seq}" if row.last_seq > row.first_seq else f"{row.first_seq}"


def describe(rows: Sequence[SeqGap], now: datetime) -> tuple[str, str]:
    """(text, level) for a kiosk's open gaps, in the reader's language:
    "12 answers missing, seq 5–9, 20–26; resend asked 3 min ago; not acknowledged yet".

    Level: ok none missing, warn being asked for, bad some cannot come back.
    """
    if not rows:
        return _("none missing"), "ok"
    missing = sum(r.missing for r in rows)
    shown = ", ".join(_seq_range(r) for r in rows[:5])
    if len(rows) > 5:
        shown = _("{ranges} and {n} more ranges").format(ranges=shown, n=i18n.number(len(rows) - 5))
    if len(rows) >= MAX_TRACKED_GAPS:  # only the lowest ranges are tracked
        head = ngettext("at least {n} answer missing, seq {ranges}", "at least {n} answers missing, seq {ranges}",
                        missing)
    else:
        head = ngettext("{n} answer missing, seq {ranges}", "{n} answers missing, seq {ranges}", missing)
    parts = [head.format(n=i18n.number(missing), ranges=shown)]
    asked = [r for r in rows if r.resend_at is not None and r.unrecoverable_at is None]
    if asked:
        last = max(r.resend_at for r in asked if r.resend_at)
        parts.append(_("resend asked {ago}").format(ago=i18n.ago(now - last)))
        acked = [r.ack_seen_at for r in asked if r.ack_seen_at]
        parts.append(_("acknowledged {ago}").format(ago=i18n.ago(now - max(acked))) if acked else _("not acknowledged yet"))
    elif any(r.unrecoverable_at is None for r in rows):
        parts.append(_("not asked for yet"))
    gone = [r for r in rows if r.unrecoverable_at is not None]
    if gone:
        parts.append(_("unrecoverable: {n} ({reason})").format(n=i18n.number(sum(r.missing for r in gone)),
                                                              reason=reason_words(gone[0])))
    return "; ".join(parts), "bad" if gone else "warn"


def gap_row(row: SeqGap) -> dict:
    """``gaps.gap_dict`` and why it is lost in the reader's words (``reason_text``), for the pages and the API."""
    return {**gap_dict(row), "reason_text": reason_words(row) if row.unrecoverable_at else ""}
