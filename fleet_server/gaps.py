"""Missing answers: the server checks each kiosk's ``seq`` for gaps and asks for them.

Why: a broker's PUBACK only says the broker has a message; a misconfigured queue
or a lost broker disk can still lose it on the way to the ingest. ``seq`` is per
device, gap-free and never reused (kiosk/outbox.py), so the server can see what
it has not received and ask the kiosk, which keeps acknowledged events for its
retention window, to publish them again (command ``resend``, from_seq = N).

Three kinds of gap, found by ``find_gaps``:
- ``leading``: the lowest seq received is above 1;
- ``internal``: two received seqs with a hole between them
  (LEAD(seq) OVER (PARTITION BY device_id ORDER BY seq); SQLite >= 3.25, PostgreSQL);
- ``tail``: the kiosk's status says ``last_seq - queue_depth`` events have left its
  queue (broker PUBACK, or shed when its store was full) but the highest seq the
  server stored is lower.

Cost: one pass over the (device_id, seq) index -- an index-only scan on SQLite,
an index(-only) scan on PostgreSQL -- plus one GROUP BY over the same index for
the bounds; linear in the number of stored events (see bench/bench_gaps.py).

What the fleet loop does with them (``track_gaps``, every pass): each gap is a
``seq_gaps`` row while it lasts. A gap younger than ``gap_grace_s`` may still be
in flight and is left alone. For an online kiosk with an older gap the loop sends
ONE resend from the lowest missing seq (a resend covers every gap above it), at
most every ``gap_resend_interval_s`` per kiosk, recorded like any other command.
Once the kiosk acknowledged it and the gap is still there ``gap_grace_s`` later,
the kiosk no longer holds those events (past its retention, or shed): the gap is
marked unrecoverable, no longer asked for, and still shown. A gap that fills is
resolved (``resolved_at``) and kept as history.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Sequence

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from fleet_server import fleet_models  # the module: fleet_models and this one both load from models.py
from fleet_server.models import SLUG_LEN, Base, Device, FeedbackEvent, utcnow

_LOGGER = logging.getLogger(__name__)

MAX_TRACKED_GAPS = 100
"""Most gap rows kept open per kiosk (the lowest ones); a resend from the lowest covers the rest anyway."""
LOOP_USER = "fleet-loop"
"""``issued_by`` of the resend commands the loop sends, so the page tells them from IT's."""


class SeqGap(Base):
    """One range of a kiosk's seqs the server has not stored, while it lasts and after."""

    __tablename__ = "seq_gaps"
    __table_args__ = (Index(None, "device_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"))
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger, doc="inclusive; the range shrinks as events arrive")
    kind: Mapped[str] = mapped_column(String(16), doc="leading | internal | tail (when first found)")
    detected_at: Mapped[datetime] = mapped_column(default=utcnow)
    resend_cmd_id: Mapped[str | None] = mapped_column(String(SLUG_LEN), doc="device_commands.cmd_id asking for it")
    resend_at: Mapped[datetime | None]
    ack_seen_at: Mapped[datetime | None] = mapped_column(doc="when the server saw the kiosk acknowledge it")
    unrecoverable_at: Mapped[datetime | None]
    reason: Mapped[str] = mapped_column(Text, default="", doc="why it is unrecoverable, in words")
    resolved_at: Mapped[datetime | None] = mapped_column(doc="the events arrived; NULL while missing")

    @property
    def missing(self) -> int:
        return self.last_seq - self.first_seq + 1


# ----------------------------------------------------------------- the query


@dataclass(frozen=True)
class SeqRange:
    first: int
    last: int
    kind: str  # leading | internal | tail

    @property
    def missing(self) -> int:
        return self.last - self.first + 1


@dataclass
class DeviceGaps:
    device_id: str
    received_min: int | None
    received_max: int | None
    received: int
    ranges: list[SeqRange] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(r.missing for r in self.ranges)


def find_gaps(session: Session, device_ids: Sequence[str] | None = None) -> dict[str, DeviceGaps]:
    """Missing seq ranges per device (only devices with a gap are returned).

    Duplicate seqs (a kiosk whose outbox was wiped starts again at 1) are not gaps;
    a tail is only reported when the kiosk's status has ``last_seq`` and ``queue_depth``.
    """
    ev = FeedbackEvent
    scope = [ev.device_id.in_(list(device_ids))] if device_ids is not None else []
    bounds = {
        device_id: (lo, hi, n)
        for device_id, lo, hi, n in session.execute(
            select(ev.device_id, func.min(ev.seq), func.max(ev.seq), func.count()).where(*scope).group_by(ev.device_id)
        )
    }
    nxt = func.lead(ev.seq).over(partition_by=ev.device_id, order_by=ev.seq).label("next_seq")
    pairs = select(ev.device_id, ev.seq, nxt).where(*scope).subquery()
    holes = session.execute(
        select(pairs.c.device_id, pairs.c.seq, pairs.c.next_seq)
        .where(pairs.c.next_seq > pairs.c.seq + 1)
        .order_by(pairs.c.device_id, pairs.c.seq)
    ).all()

    out: dict[str, DeviceGaps] = {}

    def entry(device_id: str) -> DeviceGaps:
        if device_id not in out:
            lo, hi, n = bounds.get(device_id, (None, None, 0))
            out[device_id] = DeviceGaps(device_id, lo, hi, n)
        return out[device_id]

    for device_id, (lo, _hi, _n) in bounds.items():
        if lo is not None and lo > 1:
            entry(device_id).ranges.append(SeqRange(1, lo - 1, "leading"))
    for device_id, seq, next_seq in holes:
        entry(device_id).ranges.append(SeqRange(seq + 1, next_seq - 1, "internal"))
    status = select(Device.id, Device.last_seq, Device.queue_depth).where(
        Device.last_seq.is_not(None), Device.queue_depth.is_not(None)
    )
    if device_ids is not None:
        status = status.where(Device.id.in_(list(device_ids)))
    for device_id, last_seq, queue_depth in session.execute(status):
        left_queue = last_seq - queue_depth  # every seq up to here left the kiosk's queue
        hi = bounds.get(device_id, (None, None, 0))[1] or 0
        if left_queue > hi:
            entry(device_id).ranges.append(SeqRange(hi + 1, left_queue, "tail"))
    return out


# ----------------------------------------------------------------- tracking and resend requests


@dataclass
class GapPass:
    """What one pass of ``track_gaps`` did, for logs and tests."""

    opened: list[SeqGap] = field(default_factory=list)
    resolved: list[SeqGap] = field(default_factory=list)
    unrecoverable: list[SeqGap] = field(default_factory=list)
    resends: list = field(default_factory=list)  # the DeviceCommand rows sent


def open_gaps(session: Session, device_ids: Iterable[str] | None = None) -> dict[str, list[SeqGap]]:
    """Unresolved gap rows per device, lowest seq first (what the pages and API show)."""
    query = select(SeqGap).where(SeqGap.resolved_at.is_(None))
    if device_ids is not None:
        query = query.where(SeqGap.device_id.in_(list(device_ids)))
    out: dict[str, list[SeqGap]] = {}
    for row in session.scalars(query.order_by(SeqGap.device_id, SeqGap.first_seq)):
        out.setdefault(row.device_id, []).append(row)
    return out


def _reconcile(session: Session, device_id: str, found: list[SeqRange], rows: list[SeqGap],
               now: datetime, result: GapPass) -> list[SeqGap]:
    """Match today's ranges to the open rows. Each row keeps the part of its old range
    still missing (a row split in two by arrivals passes its history -- detected,
    asked, acknowledged, unrecoverable -- on to both parts); missing seqs no row
    covered before are new rows with their own grace period, so newly lost answers
    are never taken for old unrecoverable ones."""
    old = sorted(((r.first_seq, r.last_seq, r) for r in rows), key=lambda t: t[0])
    kept: list[SeqGap] = []
    used: set[int] = set()

    def new_row(first: int, last: int, kind: str) -> None:
        row = SeqGap(device_id=device_id, first_seq=first, last_seq=last, kind=kind, detected_at=now, reason="")
        session.add(row)
        result.opened.append(row)
        kept.append(row)

    for rng in found[:MAX_TRACKED_GAPS]:
        cursor = rng.first
        for first, last, row in old:
            lo, hi = max(rng.first, first), min(rng.last, last)
            if lo > hi:
                continue
            if lo > cursor:
                new_row(cursor, lo - 1, rng.kind)
            if id(row) not in used:
                used.add(id(row))
                row.first_seq, row.last_seq = lo, hi
                kept.append(row)
            else:
                part = SeqGap(device_id=device_id, first_seq=lo, last_seq=hi, kind=row.kind,
                              detected_at=row.detected_at, resend_cmd_id=row.resend_cmd_id,
                              resend_at=row.resend_at, ack_seen_at=row.ack_seen_at,
                              unrecoverable_at=row.unrecoverable_at, reason=row.reason)
                session.add(part)
                kept.append(part)
            cursor = hi + 1
        if cursor <= rng.last:
            new_row(cursor, rng.last, rng.kind)
    for _first, _last, row in old:
        if id(row) not in used:
            row.resolved_at = now
            result.resolved.append(row)
    kept.sort(key=lambda r: r.first_seq)
    return kept


def _why_gone(device: Device, command) -> str:
    said = f"kiosk answered: {command.detail}" if command is not None and command.detail else "kiosk resent nothing"
    if device.shed_count:
        return (f"{said}; it has shed {device.shed_count} answers when its store was full, "
                "or they are past its retention window")
    return f"{said}; past its retention window"


def track_gaps(session: Session, settings, publisher, now: datetime | None = None,
               online: Callable[[Device], bool] = lambda d: True) -> GapPass:
    """One pass: find gaps, keep ``seq_gaps`` current, mark unrecoverable ones, ask for the rest.

    Call inside a transaction. It first copies the kiosks' command acknowledgements
    (remote_config.reconcile_acks, idempotent), so it can run on its own.
    ``online`` decides who may be asked now.
    """
    from fleet_server.remote_config import reconcile_acks, send_command  # imports the feature modules

    DeviceCommand = fleet_models.DeviceCommand

    now = now or utcnow()
    grace = timedelta(seconds=settings.gap_grace_s)
    interval = timedelta(seconds=settings.gap_resend_interval_s)
    result = GapPass()
    reconcile_acks(session)
    found = find_gaps(session)
    rows_by_device = open_gaps(session)
    for device_id in sorted(set(found) | set(rows_by_device)):
        device = session.get(Device, device_id)
        if device is None:
            continue
        ranges = found[device_id].ranges if device_id in found else []
        rows = _reconcile(session, device_id, sorted(ranges, key=lambda r: r.first),
                          rows_by_device.get(device_id, []), now, result)
        if device.state == "retired" or not rows:
            continue
        commands = {c.cmd_id: c for c in session.scalars(
            select(DeviceCommand).where(DeviceCommand.cmd_id.in_({r.resend_cmd_id for r in rows if r.resend_cmd_id}))
        )}
        for row in rows:
            command = commands.get(row.resend_cmd_id or "")
            if command is not None and command.acked_at is not None and row.ack_seen_at is None:
                row.ack_seen_at = now
            if row.unrecoverable_at is None and row.ack_seen_at is not None and now - row.ack_seen_at >= grace:
                row.unrecoverable_at = now
                row.reason = _why_gone(device, command)[:500]
                result.unrecoverable.append(row)
                _LOGGER.warning("kiosk %s: seq %d-%d unrecoverable (%s)", device_id, row.first_seq, row.last_seq,
                                row.reason)

        def wanted(row: SeqGap) -> bool:
            if row.unrecoverable_at is not None or now - row.detected_at < grace:
                return False
            if row.resend_cmd_id is None:
                return True
            # Asked, never acknowledged (kiosk away too long, session expired): ask again later.
            return row.ack_seen_at is None and row.resend_at is not None and now - row.resend_at >= interval

        due = [r for r in rows if wanted(r)]
        if not due or not online(device):
            continue
        last_resend = session.scalar(
            select(func.max(DeviceCommand.issued_at))
            .where(DeviceCommand.device_id == device_id, DeviceCommand.name == "resend")
        )
        if last_resend is not None and now - last_resend < interval:
            continue  # one resend per kiosk per interval, whoever sent the last one
        from_seq = min(r.first_seq for r in due)
        command = send_command(session, publisher, device_id, "resend", from_seq=from_seq, by=LOOP_USER)
        for row in rows:
            if row.unrecoverable_at is None and row.first_seq >= from_seq:
                row.resend_cmd_id, row.resend_at, row.ack_seen_at = command.cmd_id, now, None
        result.resends.append(command)
        _LOGGER.info("kiosk %s: %d answers missing; asked to resend from seq %d", device_id,
                     sum(r.missing for r in rows), from_seq)
    session.flush()
    return result


# ----------------------------------------------------------------- words for the pages


def _ago(now: datetime, at: datetime) -> str:
    seconds = int((now - at).total_seconds())
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def describe(rows: Sequence[SeqGap], now: datetime) -> tuple[str, str]:
    """(text, level) for a kiosk's open gaps: "12 answers missing, seq 5–9, 20–26; ...".

    Level: ok none missing, warn being asked for, bad some cannot come back.
    """
    if not rows:
        return "none missing", "ok"
    missing = sum(r.missing for r in rows)
    shown = ", ".join(f"{r.first_seq}–{r.last_seq}" if r.last_seq > r.first_seq else f"{r.first_seq}"
                      for r in rows[:5])
    more = f" and {len(rows) - 5} more ranges" if len(rows) > 5 else ""
    least = "at least " if len(rows) >= MAX_TRACKED_GAPS else ""  # only the lowest ranges are tracked
    parts = [f"{least}{missing} answer{'s' if missing != 1 else ''} missing, seq {shown}{more}"]
    asked = [r for r in rows if r.resend_at is not None and r.unrecoverable_at is None]
    if asked:
        last = max(r.resend_at for r in asked if r.resend_at)
        parts.append(f"resend asked {_ago(now, last)}")
        acked = [r.ack_seen_at for r in asked if r.ack_seen_at]
        parts.append(f"acknowledged {_ago(now, max(acked))}" if acked else "not acknowledged yet")
    elif any(r.unrecoverable_at is None for r in rows):
        parts.append("not asked for yet")
    gone = [r for r in rows if r.unrecoverable_at is not None]
    if gone:
        count = sum(r.missing for r in gone)
        parts.append(f"unrecoverable: {count} ({gone[0].reason})")
    return "; ".join(parts), "bad" if gone else "warn"


def gap_dict(row: SeqGap) -> dict:
    state = "unrecoverable" if row.unrecoverable_at else (
        "acknowledged" if row.ack_seen_at else ("asked" if row.resend_at else "waiting"))
    return {
        "first_seq": row.first_seq, "last_seq": row.last_seq, "missing": row.missing, "kind": row.kind,
        "state": state, "detected_at": row.detected_at, "resend_cmd_id": row.resend_cmd_id,
        "resend_at": row.resend_at, "ack_seen_at": row.ack_seen_at, "unrecoverable_at": row.unrecoverable_at,
        "reason": row.reason, "resolved_at": row.resolved_at,
    }
