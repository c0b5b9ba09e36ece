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

Cost (bench/bench_gaps.py): a full ``find_gaps`` is one pass over the (device_id,
seq) index (covering-index scan on SQLite, index-only scan on PostgreSQL) plus a
GROUP BY over the same index, linear in the stored events: about 0.9 s (SQLite)
and 0.5 s (PostgreSQL) per million. The fleet loop does that once after a start;
later passes are incremental (``since``: one index range scan per kiosk from the
highest seq seen last time, plus the open gaps' own ranges), about 1 ms per
kiosk whatever the table's size.

What the fleet loop does with them (``track_gaps``, every pass): each gap is a
``seq_gaps`` row while it lasts. A gap younger than ``gap_grace_s`` may still be
in flight and is left alone. For an online kiosk with an older gap the loop sends
ONE resend from the lowest missing seq (a resend covers every gap above it), at
most every ``gap_resend_interval_s`` per kiosk, recorded like any other command,
and again after that interval while the gap lasts (a resend can itself be lost, e.g.
queued for a server process that died). A gap is unrecoverable only when the
kiosk's own status says so: its ``held_from_seq`` (the lowest seq it still holds) is
above the gap, i.e. those answers are past its retention or were shed. Then it is no
longer asked for, and still shown. A gap that fills is resolved (``resolved_at``) and
kept as history.

Several passes at once (two server processes, a pass and the CLI) never track the
same gap twice: each pass first claims the kiosks it works on by locking their
``gap_checks`` rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a kiosk another pass
holds is skipped this time; on SQLite the first write serialises whole passes), and
a partial unique index allows one open row per (device, first seq).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from fleet_server import models as fleet_models
from fleet_server.core.clock import utcnow
from fleet_server.core.i18n import N_
from fleet_server.models import Device, FeedbackEvent, GapCheck, SeqGap

_LOGGER = logging.getLogger(__name__)

MAX_TRACKED_GAPS = 100
"""Most gap rows kept open per kiosk (the lowest ones); a resend from the lowest covers the rest anyway."""
UNRECOVERABLE_ALERT_FOR = timedelta(hours=24)
"""An unrecoverable gap keeps the ``events_missing`` alert open this long (news, then history)."""
LOOP_USER = "fleet-loop"
"""``issued_by`` of the resend commands the loop sends, so the page tells them from IT's."""


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


def find_gaps(session: Session, device_ids: Sequence[str] | None = None, *,
              since: Mapping[str, int] | None = None, seen: dict[str, int] | None = None) -> dict[str, DeviceGaps]:
    """Missing seq ranges per device (only devices with a gap are returned).

    ``since`` (device -> seq) makes it incremental: only those devices, and only their
    seqs >= the given one, are read (index range scans); what lies below is taken as
    known. ``seen``, when given, receives each scanned device's highest received seq:
    the next call's ``since``. Only each kiosk's current outbox epoch is read (the one
    its status reports): a replaced SD card starts a new sequence at 1, which is
    neither a gap nor a reuse of the old one's seqs. A tail is only reported when the
    kiosk's status has ``last_seq`` and ``queue_depth``.
    """
    ev = FeedbackEvent
    scans: list[list[ColumnElement[bool]]]
    if since is None:
        scans = [[ev.device_id.in_(list(device_ids))] if device_ids is not None else []]
    else:
        # Kiosks never scanned: one partitioned pass over them. The others: one index
        # range scan each (an OR of ranges is read as a full scan by SQLite's planner).
        fresh = [d for d, lo in since.items() if lo <= 1]
        scans = [[ev.device_id.in_(fresh)]] if fresh else []
        scans += [[ev.device_id == d, ev.seq >= lo] for d, lo in since.items() if lo > 1]
    bounds: dict[str, tuple[int, int, int]] = {}
    holes: list = []
    # Only the sequence the kiosk is on now: its status's epoch (None = NULL, the legacy one).
    current = and_(Device.id == ev.device_id, ev.epoch.is_not_distinct_from(Device.epoch))
    for scope in scans:
        bounds.update(
            (device_id, (lo, hi, n))
            for device_id, lo, hi, n in session.execute(
                select(ev.device_id, func.min(ev.seq), func.max(ev.seq), func.count())
                .join(Device, current).where(*scope).group_by(ev.device_id)
            )
        )
        nxt = func.lead(ev.seq).over(partition_by=ev.device_id, order_by=ev.seq).label("next_seq")
        pairs = select(ev.device_id, ev.seq, nxt).join(Device, current).where(*scope).subquery()
        holes += session.execute(
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

    def start(device_id: str) -> int:
        return max(1, since.get(device_id, 1)) if since is not None else 1

    for device_id, (lo, hi, _n) in bounds.items():
        if lo is not None and lo > start(device_id):
            kind = "leading" if start(device_id) == 1 else "internal"
            entry(device_id).ranges.append(SeqRange(start(device_id), lo - 1, kind))
        if seen is not None:
            seen[device_id] = hi
    for device_id, seq, next_seq in holes:
        entry(device_id).ranges.append(SeqRange(seq + 1, next_seq - 1, "internal"))
    status = select(Device.id, Device.last_seq, Device.queue_depth).where(
        Device.last_seq.is_not(None), Device.queue_depth.is_not(None)
    )
    if since is not None or device_ids is not None:
        status = status.where(Device.id.in_(list(since) if since is not None else list(device_ids or ())))
    for device_id, last_seq, queue_depth in session.execute(status):
        if last_seq is None or queue_depth is None:  # the query leaves these out
            continue
        left_queue = last_seq - queue_depth  # every seq up to here left the kiosk's queue
        hi = bounds.get(device_id, (None, None, 0))[1] or start(device_id) - 1
        if left_queue > hi:
            entry(device_id).ranges.append(SeqRange(hi + 1, left_queue, "tail"))
    for gaps in out.values():
        gaps.ranges.sort(key=lambda r: r.first)
    return out


def still_missing(session: Session, rows: Sequence[SeqGap]) -> dict[int, list[tuple[int, int]]]:
    """For each gap row (by id), the parts of its range that still have no event:
    index range scans over just those ranges, whatever the table's size."""
    ev = FeedbackEvent
    received: dict[str, list[int]] = {}
    for chunk in range(0, len(rows), 500):
        part = rows[chunk:chunk + 500]
        query = select(ev.device_id, ev.seq).where(
            or_(*[and_(ev.device_id == r.device_id, ev.epoch.is_not_distinct_from(r.epoch),
                       ev.seq.between(r.first_seq, r.last_seq)) for r in part]))
        for device_id, seq in session.execute(query):
            received.setdefault(device_id, []).append(seq)
    out: dict[int, list[tuple[int, int]]] = {}
    for row in rows:
        have = sorted({s for s in received.get(row.device_id, []) if row.first_seq <= s <= row.last_seq})
        parts, cursor = [], row.first_seq
        for seq in have:
            if seq > cursor:
                parts.append((cursor, seq - 1))
            cursor = seq + 1
        if cursor <= row.last_seq:
            parts.append((cursor, row.last_seq))
        out[row.id] = parts
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


def merge_ranges(ranges: Iterable[SeqRange]) -> list[SeqRange]:
    """Sorted ranges with overlaps merged: a seq is in at most one range (the first one's kind)."""
    out: list[SeqRange] = []
    for rng in sorted(ranges, key=lambda r: (r.first, -r.last)):
        if out and rng.first <= out[-1].last:
            if rng.last > out[-1].last:
                out[-1] = SeqRange(out[-1].first, rng.last, out[-1].kind)
            continue
        out.append(rng)
    return out


def claim_devices(session: Session, now: datetime) -> list[str]:
    """The kiosks this pass may work on: their ``gap_checks`` rows, locked until it commits.

    PostgreSQL: rows another pass holds are skipped (it is working on them). SQLite: the
    first statement is a write, so a second pass waits for the first to commit.
    """
    table = GapCheck.__table__
    missing = select(Device.id).where(~select(table.c.device_id).where(table.c.device_id == Device.id).exists())
    dialect_insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(dialect_insert(table).from_select(["device_id"], missing)
                    .on_conflict_do_nothing(index_elements=["device_id"]))
    claimed = list(session.scalars(
        select(GapCheck.device_id).order_by(GapCheck.device_id).with_for_update(skip_locked=True)))
    if claimed:
        session.execute(update(GapCheck).where(GapCheck.device_id.in_(claimed)).values(checked_at=now))
    return claimed


def _reconcile(session: Session, device_id: str, found: list[SeqRange], rows: list[SeqGap],
               now: datetime, result: GapPass, epoch: uuid.UUID | None = None) -> list[SeqGap]:
    """Match today's ranges to the open rows. Each row keeps the part of its old range
    still missing (a row split in two by arrivals passes its history -- detected,
    asked, acknowledged, unrecoverable -- on to both parts); missing seqs no row
    covered before are new rows with their own grace period, so newly lost answers
    are never taken for old unrecoverable ones."""
    old = sorted(((r.first_seq, r.last_seq, r) for r in rows), key=lambda t: t[0])
    kept: list[SeqGap] = []
    used: set[int] = set()

    def new_row(first: int, last: int, kind: str) -> None:
        row = SeqGap(device_id=device_id, first_seq=first, last_seq=last, kind=kind, detected_at=now, reason="",
                     epoch=epoch)
        session.add(row)
        result.opened.append(row)
        kept.append(row)

    for rng in found[:MAX_TRACKED_GAPS]:
        cursor = rng.first
        for first, last, row in old:
            lo, hi = max(rng.first, first, cursor), min(rng.last, last)
            if lo > hi:
                continue  # no overlap, or a copy of a row already matched here: resolved below
            if lo > cursor:
                new_row(cursor, lo - 1, rng.kind)
            if id(row) not in used:
                used.add(id(row))
                row.first_seq, row.last_seq = lo, hi
                kept.append(row)
            else:
                part = SeqGap(device_id=device_id, first_seq=lo, last_seq=hi, kind=row.kind, epoch=row.epoch,
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


REPLACED_OUTBOX = N_("the kiosk's outbox was replaced (a new SD card: a new epoch, seq from 1 again); "
                     "these answers were on the old one")
"""Stored in English as ``seq_gaps.reason``; said in the reader's language by device_health.reason_words."""


def _close_replaced_outboxes(rows_by_device: dict[str, list[SeqGap]], epochs: Mapping[str, uuid.UUID | None],
                             now: datetime, result: GapPass) -> None:
    """Open gaps of an epoch the kiosk no longer reports: written off and closed (kept as history).

    No kiosk holds those answers any more, and the new sequence's own gaps must be
    tracked from seq 1 without colliding with the old rows."""
    for device_id, rows in rows_by_device.items():
        current = epochs.get(device_id)
        stale = [r for r in rows if r.epoch != current]
        for row in stale:
            if row.unrecoverable_at is None:
                row.unrecoverable_at, row.reason = now, REPLACED_OUTBOX
                result.unrecoverable.append(row)
            row.resolved_at = now
            _LOGGER.warning("kiosk %s: seq %d-%d of outbox epoch %s written off (%s)", device_id, row.first_seq,
                            row.last_seq, row.epoch or "legacy", REPLACED_OUTBOX)
        rows[:] = [r for r in rows if r.epoch == current]


def _why_gone(device: Device, command) -> str:
    said = f"the kiosk holds answers from seq {device.held_from_seq} on"
    if command is not None and command.detail:
        said += f"; it answered: {command.detail}"
    if device.shed_count:
        return (f"{said}; it has shed {device.shed_count} answers when its store was full, "
                "or they are past its retention window")
    return f"{said}; past its retention window"


def track_gaps(session: Session, settings, publisher, now: datetime | None = None,
               online: Callable[[Device], bool] = lambda d: True,
               watermarks: dict[str, int] | None = None) -> GapPass:
    """One pass: find gaps, keep ``seq_gaps`` current, mark unrecoverable ones, ask for the rest.

    Call inside a transaction. It first copies the kiosks' command acknowledgements
    (remote_config.reconcile_acks, idempotent), so it can run on its own.
    ``online`` decides who may be asked now.

    ``watermarks`` (device -> seq, kept by the caller between passes, updated here)
    makes the pass incremental: events are only ever added, so below a device's
    watermark nothing new can go missing, and only the seqs above it are scanned,
    plus the open gap rows' own ranges (``still_missing``). None: scan everything.
    """
    from fleet_server.fleet.remote_config import reconcile_acks  # imports the feature modules

    now = now or utcnow()
    grace = timedelta(seconds=settings.gap_grace_s)
    interval = timedelta(seconds=settings.gap_resend_interval_s)
    result = GapPass()
    claimed = claim_devices(session, now)
    if not claimed:
        return result
    reconcile_acks(session)
    rows_by_device = open_gaps(session, claimed)
    epochs = {d: e for d, e in session.execute(select(Device.id, Device.epoch).where(Device.id.in_(claimed)))}
    _close_replaced_outboxes(rows_by_device, epochs, now, result)
    found, below = _scan(session, claimed, rows_by_device, epochs, watermarks)
    for device_id in sorted(set(found) | set(rows_by_device)):
        device = session.get(Device, device_id)
        if device is None:
            continue
        ranges = _ranges_to_track(device_id, found, below, epochs, watermarks)
        rows = _reconcile(session, device_id, ranges, rows_by_device.get(device_id, []), now, result,
                          epoch=epochs.get(device_id))
        if device.state == "retired" or not rows:
            continue
        _mark_unrecoverable(session, device, rows, now, grace, result)
        _ask_for_resend(session, publisher, device, rows, now, grace, interval, online, result)
    session.flush()
    return result


def _watermark_key(device_id: str, epochs: Mapping[str, uuid.UUID | None]) -> str:
    """A watermark is about one sequence: a new epoch starts at 0."""
    epoch = epochs.get(device_id)
    return device_id if epoch is None else f"{device_id}@{epoch}"


def _scan(session: Session, claimed: list[str], rows_by_device: dict[str, list[SeqGap]],
          epochs: Mapping[str, uuid.UUID | None], watermarks: dict[str, int] | None,
          ) -> tuple[dict[str, DeviceGaps], dict[str, list[SeqRange]]]:
    """(the gaps found in the scanned seqs, what the open rows below the scanned part still lack).

    Without watermarks every seq is scanned; with them only those above each watermark,
    and the watermarks move up to the highest seq seen."""
    if watermarks is None:
        return find_gaps(session, claimed), {}
    since = {d: watermarks.get(_watermark_key(d, epochs), 0) for d in claimed}
    seen: dict[str, int] = {}
    found = find_gaps(session, since=since, seen=seen)
    watermarks.update({_watermark_key(d, epochs): hi for d, hi in seen.items()})
    parts = still_missing(session, [r for rows in rows_by_device.values() for r in rows])
    below: dict[str, list[SeqRange]] = {}
    for device_id, rows in rows_by_device.items():
        below[device_id] = [SeqRange(lo, min(hi, since.get(device_id, 0) - 1), r.kind)
                            for r in rows for lo, hi in parts[r.id] if lo < since.get(device_id, 0)]
    return found, below


def _ranges_to_track(device_id: str, found: Mapping[str, DeviceGaps], below: Mapping[str, list[SeqRange]],
                     epochs: Mapping[str, uuid.UUID | None], watermarks: dict[str, int] | None) -> list[SeqRange]:
    """A kiosk's missing ranges, merged; a watermark goes back below those past the tracked ones."""
    ranges = merge_ranges(below.get(device_id, []) + (found[device_id].ranges if device_id in found else []))
    if watermarks is not None and len(ranges) > MAX_TRACKED_GAPS:
        # Ranges past the tracked ones must be scanned again next time, not forgotten.
        key = _watermark_key(device_id, epochs)
        watermarks[key] = min(watermarks.get(key, 0), ranges[MAX_TRACKED_GAPS].first - 1)
    return ranges


def _mark_unrecoverable(session: Session, device: Device, rows: list[SeqGap], now: datetime, grace: timedelta,
                        result: GapPass) -> None:
    """Note acknowledged resends; a gap below what the kiosk still holds (past the grace) cannot come back."""
    DeviceCommand = fleet_models.DeviceCommand
    commands = {c.cmd_id: c for c in session.scalars(
        select(DeviceCommand).where(DeviceCommand.cmd_id.in_({r.resend_cmd_id for r in rows if r.resend_cmd_id}))
    )}
    for row in rows:
        command = commands.get(row.resend_cmd_id or "")
        if command is not None and command.acked_at is not None and row.ack_seen_at is None:
            row.ack_seen_at = now
        if (row.unrecoverable_at is None and device.held_from_seq is not None
                and row.last_seq < device.held_from_seq and now - row.detected_at >= grace):
            row.unrecoverable_at = now
            row.reason = _why_gone(device, command)[:500]
            result.unrecoverable.append(row)
            _LOGGER.warning("kiosk %s: seq %d-%d unrecoverable (%s)", device.id, row.first_seq, row.last_seq,
                            row.reason)


def _resend_wanted(row: SeqGap, now: datetime, grace: timedelta, interval: timedelta) -> bool:
    if row.unrecoverable_at is not None or now - row.detected_at < grace:
        return False
    if row.resend_cmd_id is None:
        return True
    # Asked and still missing although the kiosk holds it (the resend went astray, or was
    # never acknowledged): ask again after the interval.
    return row.resend_at is not None and now - row.resend_at >= interval


def _ask_for_resend(session: Session, publisher, device: Device, rows: list[SeqGap], now: datetime,
                    grace: timedelta, interval: timedelta, online: Callable[[Device], bool], result: GapPass) -> None:
    """One resend command from the lowest wanted seq, if the kiosk is online and was not asked this interval."""
    from fleet_server.fleet.remote_config import send_command

    DeviceCommand = fleet_models.DeviceCommand
    due = [r for r in rows if _resend_wanted(r, now, grace, interval)]
    if not due or not online(device):
        return
    last_resend = session.scalar(
        select(func.max(DeviceCommand.issued_at))
        .where(DeviceCommand.device_id == device.id, DeviceCommand.name == "resend")
    )
    if last_resend is not None and now - last_resend < interval:
        return  # one resend per kiosk per interval, whoever sent the last one
    from_seq = min(r.first_seq for r in due)
    command = send_command(session, publisher, device.id, "resend", from_seq=from_seq, by=LOOP_USER, now=now)
    for row in rows:
        if row.unrecoverable_at is None and row.first_seq >= from_seq:
            row.resend_cmd_id, row.resend_at, row.ack_seen_at = command.cmd_id, now, None
    result.resends.append(command)
    _LOGGER.info("kiosk %s: %d answers missing; asked to resend from seq %d", device.id,
                 sum(r.missing for r in rows), from_seq)


# ----------------------------------------------------------------- for the pages and the API


def gap_dict(row: SeqGap) -> dict:
    state = "unrecoverable" if row.unrecoverable_at else (
        "acknowledged" if row.ack_seen_at else ("asked" if row.resend_at else "waiting"))
    return {
        "first_seq": row.first_seq, "last_seq": row.last_seq, "missing": row.missing, "kind": row.kind,
        "state": state, "detected_at": row.detected_at, "resend_cmd_id": row.resend_cmd_id,
        "resend_at": row.resend_at, "ack_seen_at": row.ack_seen_at, "unrecoverable_at": row.unrecoverable_at,
        "reason": row.reason, "resolved_at": row.resolved_at,
    }
