"""The kiosk outbox keeps every acknowledged answer until the broker has it."""

import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from kiosk.feedback import Recorder
from kiosk.outbox import Outbox
from palaute_wire.contract import FeedbackEvent


def _recorder(outbox):
    return Recorder(outbox, station_id="kalvia", device_id="kalvia-1")


def _press(rec, value=4):
    return rec.record("smiley", value, question_id="visit", lang="fi")


def test_append_assigns_gap_free_seq_and_stores_exact_payload(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        rec = _recorder(box)
        events = [_press(rec, v) for v in (1, 2, 3, 4)]
        assert [e.seq for e in events] == [1, 2, 3, 4]
        pending = box.pending(10)
        assert [p.seq for p in pending] == [1, 2, 3, 4]
        assert FeedbackEvent.model_validate_json(pending[0].payload) == events[0]


def test_seq_is_never_reused_after_rows_are_deleted(tmp_path):
    path = tmp_path / "o.db"
    with Outbox(path, retention_s=0) as box:
        rec = _recorder(box)
        _press(rec), _press(rec)
        box.mark_acked([1, 2])
        assert box.stats().queue_depth == 0
    with Outbox(path) as box:
        assert _press(_recorder(box)).seq == 3


def test_rows_leave_pending_only_on_ack_and_are_retained_for_resend(tmp_path):
    with Outbox(tmp_path / "o.db", retention_s=3600) as box:
        rec = _recorder(box)
        for _ in range(5):
            _press(rec)
        box.mark_acked([1, 2, 3])
        stats = box.stats()
        assert (stats.queue_depth, stats.retained) == (2, 3)
        assert [p.seq for p in box.pending(10)] == [4, 5]
        assert box.resend_from(2) == (2, 2)
        assert [p.seq for p in box.pending(10)] == [2, 3, 4, 5]


def test_acked_rows_are_purged_after_retention(tmp_path):
    now = [1000.0]
    with Outbox(tmp_path / "o.db", retention_s=60, clock=lambda: now[0]) as box:
        rec = _recorder(box)
        _press(rec), _press(rec)
        box.mark_acked([1])
        now[0] += 61
        box.mark_acked([2])
        assert box.stats().retained == 1
        assert box.resend_from(1) == (1, 2)


def test_full_outbox_keeps_newest_and_counts_what_it_shed(tmp_path):
    with Outbox(tmp_path / "o.db", max_events=3, retention_s=3600) as box:
        rec = _recorder(box)
        _press(rec)
        box.mark_acked([1])          # an acked row is purged before any pending one is shed
        for _ in range(4):
            _press(rec)
        stats = box.stats()
        assert [p.seq for p in box.pending(10)] == [3, 4, 5]
        assert stats.shed_count == 1 and stats.retained == 0 and stats.last_seq == 5
        assert stats.held_from_seq == 3  # 1 purged, 2 shed: nothing below 3 can be resent


def test_the_lowest_seq_held_follows_retention_and_is_past_the_last_when_empty(tmp_path):
    now = [1000.0]
    with Outbox(tmp_path / "o.db", retention_s=60, clock=lambda: now[0]) as box:
        rec = _recorder(box)
        assert box.stats().held_from_seq == 1  # nothing made yet: nothing is missing either
        _press(rec), _press(rec)
        assert box.stats().held_from_seq == 1
        box.mark_acked([1])
        now[0] += 61
        box.mark_acked([2])  # 1 is past retention and purged
        assert box.stats().held_from_seq == 2
        now[0] += 61
        box.mark_acked([2])
        _press(rec)
        box.mark_acked([3])  # purges 2
        assert box.stats().held_from_seq == 3


def test_pending_skips_events_in_flight(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        rec = _recorder(box)
        for _ in range(4):
            _press(rec)
        assert [p.seq for p in box.pending(2, exclude={1, 2})] == [3, 4]


def test_pending_reads_on_past_a_long_run_of_events_in_flight(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        rec = _recorder(box)
        for _ in range(300):
            _press(rec)
        in_flight = set(range(1, 251)) | {255}
        assert [p.seq for p in box.pending(10, exclude=in_flight)] == [251, 252, 253, 254, *range(256, 262)]
        assert box.next_batch(3, 10_000, exclude=in_flight)[0] == [251, 252, 253]
        assert box.next_batch(10, 10_000, after_seq=298, exclude=in_flight)[0] == [299, 300]
        assert box.next_batch(10, 10_000, exclude=set(range(1, 301))) == ([], [])


def test_a_batch_stays_within_its_byte_budget_but_always_carries_one_event(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        rec = _recorder(box)
        for _ in range(5):
            _press(rec)
        sizes = [len(p.payload) + 1 for p in box.pending(5)]  # each event's bytes and its comma
        seqs, payloads = box.next_batch(5, sizes[0] + sizes[1])
        assert seqs == [1, 2] and payloads == [p.payload for p in box.pending(2)]
        assert box.next_batch(5, sizes[0] + sizes[1] - 1)[0] == [1]
        assert box.next_batch(5, 1)[0] == [1]
        assert box.next_batch(5, sum(sizes))[0] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("retention_s", [0, 3600])
def test_acks_are_marked_with_one_statement_per_run_of_seqs(tmp_path, retention_s):
    """A PUBACK of 100 events was 100 statements; runs of consecutive seqs are one each."""
    with Outbox(tmp_path / "o.db", retention_s=retention_s) as box:
        rec = _recorder(box)
        for _ in range(120):
            _press(rec)
        box.mark_acked([1])  # the first ack of a run purges what is past retention
        writes: list[str] = []
        box._db.set_trace_callback(lambda sql: writes.append(sql) if sql.startswith(("UPDATE", "DELETE")) else None)
        box.mark_acked([*range(2, 102), 110, 111, 105])
        box._db.set_trace_callback(None)
        assert len(writes) == 3, writes  # 2..101, 105, 110..111; no purge scan again within PURGE_EVERY_S
        assert [p.seq for p in box.pending(100)] == [102, 103, 104, 106, 107, 108, 109, *range(112, 121)]
        stats = box.stats()
        assert (stats.queue_depth, stats.retained) == (16, 0 if retention_s == 0 else 104)


def test_acked_rows_past_retention_are_purged_at_most_every_purge_interval(tmp_path):
    from kiosk.outbox import PURGE_EVERY_S

    now = [1000.0]
    with Outbox(tmp_path / "o.db", retention_s=10, clock=lambda: now[0]) as box:
        rec = _recorder(box)
        for _ in range(4):
            _press(rec)
        box.mark_acked([1])
        now[0] += 11
        box.mark_acked([2])  # 1 is past retention, but the last purge was 11 s ago
        assert box.stats().retained == 2
        now[0] = 1000.0 + PURGE_EVERY_S
        box.mark_acked([3])  # now 1 and 2 go
        assert box.stats().retained == 1 and box.resend_from(1) == (1, 3)


def test_invalid_answer_is_refused_and_consumes_no_seq(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        rec = _recorder(box)
        with pytest.raises(ValueError):
            rec.record("smiley", 7, question_id="visit", lang="fi")
        assert _press(rec).seq == 1


def test_event_survives_kill_before_ack(tmp_path):
    """A press acknowledged to the patient is on disk even if the process dies next."""
    path = tmp_path / "o.db"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from kiosk.outbox import Outbox
        from kiosk.feedback import Recorder
        rec = Recorder(Outbox({str(path)!r}), station_id="kalvia", device_id="kalvia-1")
        for i in range(50):
            rec.record("smiley", 1 + i % 4, question_id="visit", lang="sv")
        print("acknowledged", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == -signal.SIGKILL and "acknowledged" in proc.stdout
    with Outbox(path) as box:
        assert [p.seq for p in box.pending(100)] == list(range(1, 51))


def test_a_press_on_a_clock_at_1970_is_stored_at_the_window_floor_as_not_synced(tmp_path):
    from datetime import UTC, datetime

    from palaute_wire.contract import TIME_MIN

    with Outbox(tmp_path / "o.db") as box:
        rec = Recorder(box, station_id="kalvia", device_id="kalvia-1", clock_synced=lambda: True,
                       now=lambda: datetime(1970, 1, 1, 0, 5, tzinfo=UTC))
        event = rec.record("smiley", 3, question_id="visit", lang="fi")
        assert event.ts == TIME_MIN and event.clock_synced is False
        assert box.stats().queue_depth == 1

# -- storage errors: a full disk, a corrupt file -----------------------------------------


def test_full_disk_keeps_answers_in_memory_and_writes_them_when_space_returns(small_disk):
    with Outbox(small_disk.path / "outbox.db", low_space_bytes=0) as box:
        rec = _recorder(box)
        _press(rec)
        small_disk.fill()
        for _ in range(200):  # the WAL may still take a few; then the disk refuses
            _press(rec)
            if box.stats().held:
                break
        stats = box.stats()
        assert stats.held >= 1 and stats.storage_error.startswith("disk_full:")
        assert stats.queue_depth == stats.last_seq, "held answers count as queued"
        for _ in range(3):
            _press(rec)  # no exception reaches the caller
        small_disk.free()
        stats = box.stats()
        assert (stats.held, stats.storage_error, stats.shed_count) == (0, None, 0)
        assert [p.seq for p in box.pending(10_000)] == list(range(1, stats.last_seq + 1))
    with Outbox(small_disk.path / "outbox.db") as box:
        assert box.stats().queue_depth == stats.last_seq, "written durably once the disk had room"


def test_held_answers_are_bounded_and_the_overflow_is_counted_as_shed(small_disk):
    with Outbox(small_disk.path / "outbox.db", low_space_bytes=0, max_held=5) as box:
        rec = _recorder(box)
        _press(rec)
        small_disk.fill()
        while not box.stats().held:
            _press(rec)
        small_disk.fill()  # what a checkpoint gave back after the first refusal: the disk stays full
        before = box.stats()
        for _ in range(10):
            _press(rec)
        assert box.stats().held == 5
        small_disk.free()
        stats = box.stats()
        assert stats.held == 0 and stats.shed_count == before.held + 10 - 5
        assert stats.storage_error is None


def test_acked_rows_give_way_when_space_runs_low_before_any_answer_waits(small_disk):
    """7 days of retained rows would fill a small disk; they are deleted first, oldest first."""
    with Outbox(small_disk.path / "outbox.db", low_space_bytes=200 * 1024) as box:
        rec = _recorder(box)
        for _ in range(3000):
            box.mark_acked([_press(rec).seq])
            assert box.stats().held == 0, "an answer had to wait although acked rows could give way"
        stats = box.stats()
        assert stats.storage_error is None and stats.queue_depth == 0 and 0 < stats.retained < 3000
        assert stats.shed_count == 0
        with sqlite3.connect(small_disk.path / "outbox.db") as db:
            (oldest,) = db.execute("SELECT min(seq) FROM events").fetchone()
        assert oldest == 3000 - stats.retained + 1, "the oldest retained rows were the ones deleted"


def test_corrupt_outbox_is_moved_aside_and_a_new_one_continues_the_seq(tmp_path):
    path = tmp_path / "outbox.db"
    with Outbox(path) as box:
        rec = _recorder(box)
        for _ in range(3):
            _press(rec)
    path.write_bytes(b"this is not a database" * 200)
    (tmp_path / "outbox.db-wal").unlink(missing_ok=True)
    with Outbox(path) as box:
        stats = box.stats()
        assert stats.storage_error.startswith("corrupt_replaced:")
        assert [p.name for p in tmp_path.glob("outbox.db.corrupt-*")]
        assert _press(_recorder(box)).seq == 1, "nothing readable was left to carry the seq on"
        assert box.pending(10)[0].seq == 1



def test_a_new_outbox_gets_an_epoch_every_event_carries_and_an_old_file_keeps_none(tmp_path):
    import json as _json
    import sqlite3 as _sqlite3

    with Outbox(tmp_path / "a.db") as a, Outbox(tmp_path / "b.db") as b:
        assert a.epoch is not None and b.epoch is not None and a.epoch != b.epoch  # a new SD card, a new epoch
        event = _press(_recorder(a))
        assert event.epoch == a.epoch and _json.loads(a.pending(1)[0].payload)["epoch"] == str(a.epoch)
    with Outbox(tmp_path / "a.db") as again:
        assert again.epoch == event.epoch, "reopening keeps the epoch"
    old = tmp_path / "old.db"  # written by a release from before epochs: no meta table
    with _sqlite3.connect(old) as db:
        db.executescript("""
            CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, payload BLOB NOT NULL,
                                 created_at REAL NOT NULL, acked_at REAL);
            CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT INTO counters VALUES ('last_seq', 41), ('shed', 0);
        """)
    with Outbox(old) as legacy:
        assert legacy.epoch is None, "an upgraded outbox goes on as the one legacy sequence"
        event = _press(_recorder(legacy))
        assert event.seq == 42 and event.epoch is None and b'"epoch"' not in legacy.pending(1)[0].payload
