"""A kiosk without a real-time clock boots 3 days in the past, takes presses, then NTP syncs:
its queued answers are re-dated by the kiosk, the ones already sent by the server, and
what cannot be dated (an earlier boot that never synced) stays marked."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from fleet_server.fleet.clock_corrections import apply_corrections
from fleet_server.ingest.consumer import InboundMessage, store_batch
from fleet_server.models import FeedbackEvent, StationHour
from kiosk.clock import ClockWatch
from kiosk.feedback import Recorder
from kiosk.outbox import Outbox
from palaute_wire import contract as c

TRUE_BOOT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # when the Pi really booted
BEHIND = timedelta(days=3)                            # what fake-hwclock restored


class FakeClock:
    """The Pi's clocks: boottime runs true; the wall clock is 3 days behind until NTP syncs."""

    def __init__(self) -> None:
        self.mono = 30.0
        self.synced = False

    def wall(self) -> datetime:
        return TRUE_BOOT + timedelta(seconds=self.mono) - (timedelta(0) if self.synced else BEHIND)

    def advance(self, seconds: float) -> None:
        self.mono += seconds


def _kiosk(box: Outbox, clock: FakeClock, boot: uuid.UUID) -> Recorder:
    return Recorder(box, station_id="kalvia", device_id="kalvia-1", clock_synced=lambda: clock.synced,
                    now=clock.wall, mono=lambda: clock.mono, boot=lambda: boot)


def _press(rec: Recorder, clock: FakeClock, value: int = 4) -> c.FeedbackEvent:
    clock.advance(600)
    return rec.record("smiley", value, question_id="visit", lang="fi")


def _message(payloads: list[bytes]) -> InboundMessage:
    return InboundMessage(c.topic("kalvia", "kalvia-1", "events"), c.batch_payload("kalvia", "kalvia-1", payloads))


def test_presses_before_ntp_sync_are_re_dated_on_the_kiosk_and_on_the_server(tmp_path, sessions):
    clock, boot, earlier_boot = FakeClock(), uuid.uuid4(), uuid.uuid4()
    with Outbox(tmp_path / "outbox.db") as box:
        # An answer from an earlier boot that ended before its clock ever synced.
        stale = Recorder(box, station_id="kalvia", device_id="kalvia-1", clock_synced=lambda: False,
                         now=lambda: TRUE_BOOT - BEHIND - timedelta(hours=5), mono=lambda: 100.0,
                         boot=lambda: earlier_boot).record("smiley", 2, question_id="visit", lang="fi")
        rec = _kiosk(box, clock, boot)
        presses = [_press(rec, clock) for _ in range(5)]  # seq 2..6, each 10 min apart
        assert all(p.clock_synced is False and p.ts.date() == datetime(2026, 11, 27).date() for p in presses)
        true_times = {p.seq: TRUE_BOOT + timedelta(seconds=p.mono_s) for p in presses}

        sent = [r.payload for r in box.pending(10)][:4]     # seq 1..4 went out before the sync ...
        box.mark_acked([1, 2, 3])                           # ... 1-3 acknowledged, 4 still in flight
        store_batch(sessions, [_message(sent)])

        clock.synced = True                                 # NTP: the wall clock jumps 3 days ahead
        watch = ClockWatch(box, lambda: clock.synced, wall=lambda: clock.wall().timestamp(),
                           mono=lambda: clock.mono, boot=lambda: boot)
        correction = watch.poll(in_flight={4})
        assert correction is not None and (correction.first_seq, correction.last_seq) == (2, 4)
        assert abs(correction.offset_s - BEHIND.total_seconds()) < 0.01
        assert watch.poll() is None, "once per boot"

        queued = {p.seq: c.FeedbackEvent.model_validate_json(p.payload) for p in box.pending(10, exclude={4})}
        assert set(queued) == {5, 6}
        for seq, event in queued.items():                   # the kiosk re-dated what it still had
            assert event.ts == true_times[seq] and event.clock_synced is False
            assert abs(event.ts_offset_s - BEHIND.total_seconds()) < 0.01
        after = _press(rec, clock)
        assert after.clock_synced is True and after.ts_offset_s is None
        assert ClockWatch(box, lambda: True).corrections == [correction], "kept across a restart"

        status = c.StatusHeartbeat(station_id="kalvia", device_id="kalvia-1", online=True, sent_at=clock.wall(),
                                   last_seq=7, queue_depth=3, clock_corrections=(correction,))
        store_batch(sessions, [InboundMessage(c.topic("kalvia", "kalvia-1", "status"), c.encode(status)),
                               _message([p.payload for p in box.pending(10, exclude={4})])])

    with sessions() as s, s.begin():
        assert apply_corrections(s) == 3                    # seq 2, 3, 4 as sent, moved by the offset
    with sessions() as s, s.begin():
        assert apply_corrections(s) == 0, "applied once"
        rows = {e.seq: e for e in s.scalars(select(FeedbackEvent))}
        for seq in (2, 3, 4, 5, 6):
            assert rows[seq].ts == true_times[seq], seq
            assert abs(rows[seq].ts_offset_s - BEHIND.total_seconds()) < 0.01
        assert rows[1].ts == stale.ts and rows[1].clock_synced is False and rows[1].ts_offset_s is None, \
            "an earlier boot that never synced cannot be dated: kept as it was, and marked so"
        assert rows[7].clock_synced is True
        hours = {h.hour: h.c4 for h in s.scalars(select(StationHour)) if h.c4}
        assert sum(hours.values()) == 6 and all(h >= TRUE_BOOT.replace(minute=0) for h in hours), \
            "the rollups moved with the answers: nothing counted 3 days ago"
