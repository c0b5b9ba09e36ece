"""Answers a kiosk sent with a wrong clock, re-dated once it reported the offset.

A Pi without a real-time clock boots with the last saved time; answers given before
NTP sync carry that time (``clock_synced: false``). When the clock syncs, the kiosk
re-dates what it still has queued and reports in its status, per boot, the seq range
it had already sent and the offset (palaute_wire.contract.ClockCorrection; see
kiosk/clock.py). The fleet loop applies those here: each matching event (same
device, epoch and boot, ``clock_synced`` false, not corrected before) gets
``ts += offset`` and ``ts_offset_s``, and moves between hourly rollups in the same
transaction. Idempotent, so it runs every pass: events of the range that arrive
after the first application are corrected on the next one.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.models import Device, FeedbackEvent
from fleet_server.results import rollups
from palaute_wire.contract import ClockCorrection

_LOGGER = logging.getLogger(__name__)

ROLLUP_COLUMNS = ("event_id", "station_id", "kind", "value", "option_id", "question_id", "ts", "burst",
                  "out_of_hours", "answer_to")


def _row(event: FeedbackEvent) -> dict[str, Any]:
    return {c: getattr(event, c) for c in ROLLUP_COLUMNS}


def apply_corrections(session: Session) -> int:
    """Apply every kiosk's reported clock corrections to its stored events; returns how many moved."""
    moved = 0
    devices = session.execute(select(Device.id, Device.last_status).where(Device.last_status.is_not(None)))
    for device_id, status in devices.all():
        for raw in (status or {}).get("clock_corrections") or ():
            try:
                fix = ClockCorrection.model_validate(raw)
            except ValueError:
                continue
            ev = FeedbackEvent
            events = session.scalars(select(ev).where(
                ev.device_id == device_id, ev.boot_id == fix.boot_id, ev.epoch.is_not_distinct_from(fix.epoch),
                ev.seq.between(fix.first_seq, fix.last_seq), ev.clock_synced.is_(False), ev.ts_offset_s.is_(None),
            ).with_for_update()).all()
            if not events:
                continue
            rollups.add_events(session, [_row(e) for e in events], sign=-1)
            for e in events:
                e.ts = e.ts + timedelta(seconds=fix.offset_s)
                e.ts_offset_s = fix.offset_s
            session.flush()
            rollups.add_events(session, [_row(e) for e in events])
            moved += len(events)
            _LOGGER.info("kiosk %s: %d answers re-dated by %+.0f s (clock synced %s)", device_id, len(events),
                         fix.offset_s, fix.synced_at.isoformat())
    return moved
