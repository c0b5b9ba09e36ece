"""Store-and-forward of feedback events on the kiosk (SQLite).

The contract this module keeps:
- ``append`` returns only after the event is committed with synchronous=FULL, so
  an answer the patient saw acknowledged survives a power cut or kill -9.
- ``seq`` is assigned in the same transaction as the row, from a counter that
  only grows, so a seq is never reused, even after rows are deleted.
- The stored JSON is what gets sent, byte for byte, every time: a resend after a
  crash carries the same ``event_id``, and the server's ingest drops the copy.
- A row leaves the pending set only through ``mark_acked`` (the broker's PUBACK).
  Acknowledged rows are kept for ``retention_s`` so the server can ask for a gap
  again (``resend_from``), then purged (a scan of the table, so at most every
  ``PURGE_EVERY_S``, not at every PUBACK). The uplink may mark the acks of several
  PUBACKs in one call (one transaction): a crash before it commits only sends those
  events again.
- The box is bounded: at ``max_events`` rows it first purges acknowledged rows,
  then sheds the *oldest pending* event (keep the newest) and counts it.
- A storage error never reaches the caller (a patient's touch): when the disk
  is full or SQLite fails, the event is kept in memory (at most ``max_held``;
  past that the oldest held one is counted in ``shed_count`` as lost) and
  written, in seq order, as soon as the disk takes it again. ``stats()``
  reports the problem in ``storage_error`` until it is over. Held events are
  not crash-safe: a power cut while the disk is full loses them (the server
  then sees a gap that the kiosk answers as gone).
- Disk space: when the file system has less than ``low_space_bytes`` free,
  acknowledged rows kept for the retention window give way first (oldest
  first), before any new answer has to wait in memory.
- A corrupt file (not a database, or malformed) is moved aside as
  ``<name>.corrupt-<time>`` with its WAL, a new one is started, and
  ``storage_error`` says so for ``CORRUPT_REPORT_S``.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from uuid import UUID

import uuid6

from palaute_wire.contract import FeedbackEvent

from .errors import OutboxSchemaError

_LOGGER = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""The outbox file's layout, kept in ``PRAGMA user_version``. A release that changes the
layout raises it, and its manifest says so (``outbox_schema``): the updater never
switches back to a version that cannot read the file (kiosk.updater)."""


LOW_SPACE_BYTES = 32 * 1024 * 1024
"""Below this much free space (file system plus SQLite's own free pages) retained acked rows give way."""
MAX_HELD = 1000
"""Answers kept in memory while the disk refuses writes; past that the oldest held is lost (and counted)."""
PURGE_EVERY_S = 60.0
"""Acknowledged rows past retention are purged at most this often (by the outbox's clock): the purge
scans the whole table, which at every PUBACK of a 100,000-row backlog was most of the drain's CPU."""
CORRUPT_REPORT_S = 24 * 3600.0
"""How long ``storage_error`` keeps saying that a corrupt outbox was moved aside."""
_FULL = {"SQLITE_FULL", "SQLITE_IOERR", "SQLITE_IOERR_WRITE", "SQLITE_IOERR_FSYNC", "SQLITE_IOERR_SHMSIZE"}
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}


def _error_kind(exc: sqlite3.Error) -> str:
    """'disk_full', 'corrupt' or 'write_failed' (how the staff screen and the server name it)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name in _FULL or name.startswith("SQLITE_IOERR") or "disk is full" in str(exc):
        return "disk_full"
    if name in _CORRUPT or "malformed" in str(exc) or "not a database" in str(exc):
        return "corrupt"
    return "write_failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq        INTEGER PRIMARY KEY,
    event_id   TEXT NOT NULL UNIQUE,
    payload    BLOB NOT NULL,
    created_at REAL NOT NULL,
    acked_at   REAL
);
CREATE INDEX IF NOT EXISTS events_pending ON events (seq) WHERE acked_at IS NULL;
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('last_seq', 0), ('shed', 0);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# ``meta`` holds the outbox's ``epoch`` (a UUIDv7 made when the file is created): seq counts
# within it, so a new SD card is a new sequence to the server (palaute_wire: FeedbackEvent.epoch).
# A file created before epochs has none and goes on as the one legacy sequence. Adding the
# table does not change SCHEMA_VERSION: an older release reads the file as before.


@dataclass(frozen=True)
class OutboxStats:
    queue_depth: int
    """Events not yet acknowledged by the broker."""
    oldest_queued_at: float | None
    """Wall-clock time the oldest pending event was stored, or None."""
    shed_count: int
    last_seq: int
    retained: int
    """Acknowledged events still kept for resend requests."""
    held_from_seq: int = 0
    """Lowest seq still stored (pending or retained); nothing below it can be resent. last_seq + 1 when empty."""
    held: int = 0
    """Events kept in memory because the disk refused them; written when it has room."""
    storage_error: str | None = None
    """'disk_full: ...', 'write_failed: ...' or 'corrupt_replaced: ...' while there is a problem; else None."""


@dataclass(frozen=True)
class PendingEvent:
    seq: int
    payload: bytes


class Outbox:
    """One SQLite file; safe to use from the UI thread and the uplink thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_events: int = 100_000,
        retention_s: float = 7 * 24 * 3600,
        clock: Callable[[], float] = time.time,
        max_held: int = MAX_HELD,
        low_space_bytes: int = LOW_SPACE_BYTES,
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self.retention_s = retention_s
        self.max_held = max_held
        self.low_space_bytes = low_space_bytes
        self._clock = clock
        self._next_purge = float("-inf")
        self._lock = threading.Lock()
        self._held: list[tuple[int, str, bytes, float]] = []
        self._lost = 0
        """Held events dropped past max_held, not yet added to the stored shed counter."""
        self._problem: tuple[str, str] | None = None
        """(kind, detail) of the current write problem."""
        self._replaced: tuple[float, str] | None = None
        """(when, detail) of the last corrupt file moved aside."""
        self._db = self._open()
        (self._last_seq,) = self._db.execute("SELECT value FROM counters WHERE name='last_seq'").fetchone()
        row = self._db.execute("SELECT value FROM meta WHERE name='epoch'").fetchone()
        self.epoch: UUID | None = UUID(row[0]) if row else None
        """This outbox's identity (None: a file from before epochs); every event carries it."""
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            (check,) = db.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({check})")
            (found,) = db.execute("PRAGMA user_version").fetchone()
            if found > SCHEMA_VERSION:
                raise OutboxSchemaError(f"{self.path} has outbox schema {found}; this release reads up to "
                                        f"{SCHEMA_VERSION}: run the release that wrote it (kiosk.updater)")
            (existed,) = db.execute("SELECT count(*) FROM sqlite_master WHERE name='counters'").fetchone()
            db.executescript(_SCHEMA)
            if not existed:
                db.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('epoch', ?)", (str(uuid6.uuid7()),))
            if found < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _open(self, last_seq: int | None = None) -> sqlite3.Connection:
        """Open the file; a corrupt one is moved aside and a new one started (seq carried on if known)."""
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if _error_kind(exc) != "corrupt":
                raise
            reason = str(exc)
        if last_seq is None:
            last_seq = self._salvage_last_seq()
        aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, f"{aside}{suffix}")
        _LOGGER.error("outbox %s is corrupt (%s): moved aside to %s, starting a new one from seq %d",
                      self.path, reason, aside.name, last_seq + 1)
        # seq carries on, so the sequence (epoch) does too: the one in use, else what the file shows.
        epoch = str(self.epoch) if getattr(self, "epoch", None) else (
            None if hasattr(self, "epoch") else self._salvage_epoch(aside))
        db = self._connect()
        db.execute("UPDATE counters SET value=? WHERE name='last_seq' AND value < ?", (last_seq, last_seq))
        if epoch is not None:
            db.execute("UPDATE meta SET value=? WHERE name='epoch'", (epoch,))
        elif hasattr(self, "epoch") or last_seq > 0:  # a legacy sequence goes on without one
            db.execute("DELETE FROM meta WHERE name='epoch'")
        self._replaced = (self._clock(), f"{reason}; moved to {aside.name}, a new outbox started at seq {last_seq + 1}")
        return db

    @staticmethod
    def _salvage_epoch(path: Path) -> str | None:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                row = db.execute("SELECT value FROM meta WHERE name='epoch'").fetchone()
                return str(UUID(row[0])) if row else None
        except (sqlite3.Error, TypeError, ValueError):
            return None

    def _salvage_last_seq(self) -> int:
        """The highest seq a corrupt file still shows, so a new file does not reuse it (0 if unreadable)."""
        best = 0
        for sql in ("SELECT value FROM counters WHERE name='last_seq'", "SELECT max(seq) FROM events"):
            try:
                with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True) as db:
                    (value,) = db.execute(sql).fetchone()
                    best = max(best, int(value or 0))
            except (sqlite3.Error, TypeError, ValueError):
                pass
        return best

    # -- small persistent values (epoch, clock corrections) ---------------------------

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE "
                             "SET value=excluded.value", (name, value))

    def correct_boot(self, boot: UUID, anchor: float, in_flight: set[int]) -> tuple[int, tuple[int, int, float] | None]:
        """Re-date this boot's events made before the clock synced (kiosk.clock.ClockWatch).

        Queued ones not in flight get ``ts = anchor + mono_s`` and ``ts_offset_s`` in their
        stored JSON (what is sent from now on). Returns (how many were re-dated, and for
        the ones already sent or in flight: (lowest seq, highest seq, offset) or None).
        """
        from datetime import UTC, datetime

        fixed, sent_lo, sent_hi, offset = 0, None, None, 0.0
        with self._lock:
            db = self._db
            rows = db.execute(
                "SELECT seq, payload, acked_at FROM events WHERE json_extract(payload, '$.boot_id') = ? "
                "AND json_extract(payload, '$.clock_synced') = 0 AND json_extract(payload, '$.ts_offset_s') IS NULL "
                "ORDER BY seq", (str(boot),)).fetchall()
            updates = []
            for seq, payload, acked_at in rows:
                event = FeedbackEvent.model_validate_json(payload)
                if event.mono_s is None:
                    continue
                true_ts = anchor + event.mono_s
                delta = true_ts - event.ts.timestamp()
                if acked_at is not None or seq in in_flight:
                    sent_lo = seq if sent_lo is None else sent_lo
                    sent_hi, offset = seq, delta
                    continue
                new = event.model_copy(update={"ts": datetime.fromtimestamp(true_ts, UTC),
                                               "ts_offset_s": round(delta, 3)})
                updates.append((new.model_dump_json(exclude={"epoch"} if new.epoch is None else None).encode(), seq))
            if updates:
                db.execute("BEGIN IMMEDIATE")
                try:
                    db.executemany("UPDATE events SET payload=? WHERE seq=? AND acked_at IS NULL", updates)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                fixed = len(updates)
        sent = None if sent_lo is None or sent_hi is None else (sent_lo, sent_hi, offset)
        return fixed, sent

    # -- writing ------------------------------------------------------------

    def append(self, build: Callable[[int], FeedbackEvent]) -> FeedbackEvent:
        """Assign the next seq, build the event with it and commit it durably.

        Never raises a storage error: an event the disk refuses is held in
        memory (see the module docstring). Raises only for an invalid event.
        """
        with self._lock:
            seq = self._last_seq + 1
            event = build(seq)
            if event.seq != seq:
                raise ValueError(f"event was built with seq {event.seq}, expected {seq}")
            # Without an epoch the bytes are what a kiosk from before epochs sent (any server reads them).
            payload = event.model_dump_json(exclude={"epoch"} if event.epoch is None else None).encode()
            row = (seq, str(event.event_id), payload, self._clock())
            self._last_seq = seq
            self._held.append(row)
            if len(self._held) > self.max_held:
                self._held.pop(0)
                self._lost += 1
            self._flush_locked()
            return event

    def _flush_locked(self) -> bool:
        """Write the held events (oldest first); True when none is left in memory."""
        if not self._held:
            return True
        if self._closed:
            return False
        try:
            self._write_locked()
        except sqlite3.Error as exc:
            kind = _error_kind(exc)
            if kind == "corrupt":
                self._replace_corrupt_locked()
            elif kind == "disk_full":
                self._free_space_locked()
            try:
                self._write_locked()
            except sqlite3.Error as again:
                self._failed_locked(again)
                return False
        if self._problem is not None:
            _LOGGER.warning("outbox writes again; %s resolved", self._problem[0])
        self._problem = None
        return True

    def _write_locked(self) -> None:
        rows, lost = self._held, self._lost
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            self._make_room(db, len(rows))
            low = self._space_low(db)
            if low:
                self._purge_acked(db, max(100, len(rows)))
            db.executemany("INSERT INTO events (seq, event_id, payload, created_at) VALUES (?, ?, ?, ?)", rows)
            db.execute("UPDATE counters SET value=max(value, ?) WHERE name='last_seq'", (rows[-1][0],))
            if lost:
                db.execute("UPDATE counters SET value = value + ? WHERE name='shed'", (lost,))
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise
        self._held, self._lost = [], 0
        if low:
            _checkpoint(db)

    def _failed_locked(self, exc: sqlite3.Error) -> None:
        kind = _error_kind(exc)
        detail = (f"{len(self._held)} answers kept in memory until the disk has room, "
                  f"{self._lost} lost; {exc}")
        if self._problem is None or self._problem[0] != kind:
            _LOGGER.error("outbox cannot store answers (%s): %s", kind, detail)
        self._problem = (kind, detail)

    def _replace_corrupt_locked(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        self._db = self._open(last_seq=max(0, self._last_seq - len(self._held)))

    def _space_low(self, db: sqlite3.Connection) -> bool:
        try:
            vfs = os.statvfs(self.path.parent)
        except OSError:
            return False
        free = vfs.f_bavail * vfs.f_frsize
        if free >= self.low_space_bytes:  # SQLite's free pages can only add to it
            return False
        (free_pages,) = db.execute("PRAGMA freelist_count").fetchone()
        (page_size,) = db.execute("PRAGMA page_size").fetchone()
        return free + free_pages * page_size < self.low_space_bytes

    @staticmethod
    def _purge_acked(db: sqlite3.Connection, count: int) -> int:
        db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE acked_at IS NOT NULL "
            "ORDER BY seq LIMIT ?)",
            (count,),
        )
        return db.execute("SELECT changes()").fetchone()[0]

    def _free_space_locked(self) -> None:
        """The disk is full: every retained acked row gives way, and the WAL is folded back in."""
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            purged = self._purge_acked(db, -1)
            db.execute("COMMIT")
            if purged:
                _LOGGER.warning("disk full: deleted %d acknowledged rows kept for resend", purged)
        except sqlite3.Error:
            _rollback(db)
        _checkpoint(db)

    def retry_held(self) -> bool:
        """Try to write what is held in memory (the uplink and the staff screen call this via stats)."""
        with self._lock:
            return self._flush_locked()

    def _make_room(self, db: sqlite3.Connection, adding: int = 1) -> None:
        (count,) = db.execute("SELECT count(*) FROM events").fetchone()
        if count + adding <= self.max_events:
            return
        excess = count - self.max_events + adding
        db.execute(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE acked_at IS NOT NULL "
            "ORDER BY seq LIMIT ?)",
            (excess,),
        )
        excess -= db.execute("SELECT changes()").fetchone()[0]
        if excess > 0:
            db.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)",
                (excess,),
            )
            db.execute("UPDATE counters SET value = value + ? WHERE name='shed'", (excess,))

    def mark_acked(self, seqs: Iterable[int]) -> None:
        """Record the broker's PUBACK for these events (one transaction); purge what is past retention."""
        runs = _runs(seqs)
        if not runs:
            return
        now = self._clock()
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                purge = False
                if self.retention_s <= 0:
                    db.executemany("DELETE FROM events WHERE seq BETWEEN ? AND ?", runs)
                else:
                    db.executemany(
                        "UPDATE events SET acked_at=? WHERE seq BETWEEN ? AND ? AND acked_at IS NULL",
                        [(now, lo, hi) for lo, hi in runs],
                    )
                    purge = now >= self._next_purge
                    if purge:
                        db.execute(
                            "DELETE FROM events WHERE acked_at IS NOT NULL AND acked_at < ?",
                            (now - self.retention_s,),
                        )
                db.execute("COMMIT")
                if purge:
                    self._next_purge = now + PURGE_EVERY_S
                if self._space_low(db):
                    _checkpoint(db)
            except sqlite3.Error as exc:
                # The broker has them; if even deleting fails they stay pending and are sent
                # again later (the server drops the copies by event_id). Never raise into the uplink.
                _rollback(db)
                _LOGGER.warning("could not mark %d events acknowledged (%s); they will be sent again",
                                sum(hi - lo + 1 for lo, hi in runs), exc)
            self._flush_locked()

    def resend_from(self, from_seq: int) -> tuple[int, int | None]:
        """Make retained events with seq >= from_seq pending again.

        Returns (how many became pending, the lowest seq >= from_seq still held or
        None), so the caller can tell the server which part of a gap is gone.
        """
        with self._lock:
            try:
                cur = self._db.execute(
                    "UPDATE events SET acked_at=NULL WHERE seq >= ? AND acked_at IS NOT NULL", (from_seq,)
                )
                count = cur.rowcount
            except sqlite3.Error as exc:
                _LOGGER.warning("could not queue events from seq %d again: %s", from_seq, exc)
                self._failed_locked(exc)
                count = 0
            (lowest,) = self._db.execute("SELECT min(seq) FROM events WHERE seq >= ?", (from_seq,)).fetchone()
            return count, lowest

    # -- reading ------------------------------------------------------------

    def pending(self, limit: int, *, after_seq: int = 0, exclude: AbstractSet[int] = frozenset()) -> list[PendingEvent]:
        """Oldest pending events first, skipping those in ``exclude`` (in flight)."""
        return [PendingEvent(seq, payload) for seq, payload in self._pending_rows(limit, after_seq, exclude)]

    def next_batch(self, limit: int, max_bytes: int, *, after_seq: int = 0,
                   exclude: AbstractSet[int] = frozenset()) -> tuple[list[int], list[bytes]]:
        """The uplink's next batch: seqs and stored bytes of the oldest pending events after
        ``after_seq``, skipping ``exclude``; at most ``limit`` events and, past the first,
        ``max_bytes`` (each event's bytes plus one for its comma). Empty lists when none is pending."""
        rows = self._pending_rows(limit, after_seq, exclude)
        if not rows:
            return [], []
        seqs, payloads = map(list, zip(*rows, strict=True))
        if sum(map(len, payloads)) + len(payloads) > max_bytes:
            size, keep = 0, 0
            for payload in payloads:
                size += len(payload) + 1
                if keep and size > max_bytes:
                    break
                keep += 1
            del seqs[keep:], payloads[keep:]
        return seqs, payloads

    def _pending_rows(self, limit: int, after_seq: int, exclude: AbstractSet[int]) -> list[tuple[int, bytes]]:
        """(seq, payload) rows, oldest first; excluded ones are skipped by reading on past them."""
        out: list[tuple[int, bytes]] = []
        with self._lock:
            self._flush_locked()
            try:
                while len(out) < limit:
                    want = limit - len(out)
                    rows = self._db.execute(
                        "SELECT seq, payload FROM events WHERE acked_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                        (after_seq, want),
                    ).fetchall()
                    if not rows:
                        break
                    after_seq = rows[-1][0]
                    out += [row for row in rows if row[0] not in exclude] if exclude else rows
                    if len(rows) < want:
                        break
            except sqlite3.Error as exc:
                self._failed_locked(exc)
                if _error_kind(exc) == "corrupt":
                    self._replace_corrupt_locked()
                return []
        return out

    def stats(self) -> OutboxStats:
        """Counts, and the storage problem if any; also retries writing held events first."""
        with self._lock:
            self._flush_locked()
            db = self._db
            try:
                depth, oldest = db.execute(
                    "SELECT count(*), min(created_at) FROM events WHERE acked_at IS NULL"
                ).fetchone()
                (retained,) = db.execute("SELECT count(*) FROM events WHERE acked_at IS NOT NULL").fetchone()
                (lowest,) = db.execute("SELECT min(seq) FROM events").fetchone()
                counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
            except sqlite3.Error as exc:
                self._failed_locked(exc)
                depth, oldest, retained, lowest, counters = 0, None, 0, None, {"shed": 0}
            held = len(self._held)
            if held and oldest is None:
                oldest = self._held[0][3]
            if lowest is None:
                lowest = self._held[0][0] if held else self._last_seq + 1
            return OutboxStats(depth + held, oldest, counters["shed"] + self._lost, self._last_seq, retained,
                               lowest, held=held, storage_error=self._storage_error_locked())

    @property
    def storage_error(self) -> str | None:
        with self._lock:
            return self._storage_error_locked()

    def _storage_error_locked(self) -> str | None:
        if self._problem is not None:
            kind, detail = self._problem
            return f"{kind}: {detail}"[:500]
        if self._replaced is not None and self._clock() - self._replaced[0] < CORRUPT_REPORT_S:
            return f"corrupt_replaced: {self._replaced[1]}"[:500]
        return None

    # -- lifecycle ----------------------------------------------------------

    def close(self) -> None:
        """Idempotent."""
        with self._lock:
            if not self._closed:
                self._db.close()
                self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _runs(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Seqs as (first, last) runs of consecutive numbers: a batch is usually one run, one statement."""
    ordered = sorted(set(seqs))
    if not ordered:
        return []
    if ordered[-1] - ordered[0] + 1 == len(ordered):
        return [(ordered[0], ordered[-1])]
    runs = []
    lo = prev = ordered[0]
    for seq in ordered[1:]:
        if seq != prev + 1:
            runs.append((lo, prev))
            lo = seq
        prev = seq
    runs.append((lo, prev))
    return runs


def _rollback(db: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; SQLite may already have rolled back itself (disk full)."""
    try:
        if db.in_transaction:
            db.execute("ROLLBACK")
    except sqlite3.Error:
        _LOGGER.debug("rollback failed", exc_info=True)


def _checkpoint(db: sqlite3.Connection) -> None:
    """Fold the WAL into the database file and truncate it: on a nearly full disk the WAL is what grows."""
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        _LOGGER.debug("checkpoint failed", exc_info=True)
