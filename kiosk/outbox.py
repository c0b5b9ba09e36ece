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
  again (``resend_from``), then purged.
- The box is bounded: at ``max_events`` rows it first purges acknowledged rows,
  then sheds the *oldest pending* event (keep the newest) and counts it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from palaute_wire.contract import FeedbackEvent

SCHEMA_VERSION = 1
"""The outbox file's layout, kept in ``PRAGMA user_version``. A release that changes the
layout raises it, and its manifest says so (``outbox_schema``): the updater never
switches back to a version that cannot read the file (kiosk.updater)."""


class OutboxSchemaError(RuntimeError):
    """The outbox file was written by a newer release with another layout."""


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
"""


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
    ) -> None:
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self.retention_s = retention_s
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        (found,) = self._db.execute("PRAGMA user_version").fetchone()
        if found > SCHEMA_VERSION:
            self._db.close()
            raise OutboxSchemaError(f"{self.path} has outbox schema {found}; this release reads up to "
                                    f"{SCHEMA_VERSION}: run the release that wrote it (kiosk.updater)")
        self._db.executescript(_SCHEMA)
        if found < SCHEMA_VERSION:
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._closed = False

    # -- writing ------------------------------------------------------------

    def append(self, build: Callable[[int], FeedbackEvent]) -> FeedbackEvent:
        """Assign the next seq, build the event with it and commit it durably."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                (last_seq,) = db.execute("SELECT value FROM counters WHERE name='last_seq'").fetchone()
                event = build(last_seq + 1)
                if event.seq != last_seq + 1:
                    raise ValueError(f"event was built with seq {event.seq}, expected {last_seq + 1}")
                self._make_room(db)
                db.execute(
                    "INSERT INTO events (seq, event_id, payload, created_at) VALUES (?, ?, ?, ?)",
                    (event.seq, str(event.event_id), event.model_dump_json().encode(), self._clock()),
                )
                db.execute("UPDATE counters SET value=? WHERE name='last_seq'", (event.seq,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return event

    def _make_room(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute("SELECT count(*) FROM events").fetchone()
        if count < self.max_events:
            return
        excess = count - self.max_events + 1
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

    def mark_acked(self, seqs: Sequence[int]) -> None:
        """Record the broker's PUBACK for these events; purge what is past retention."""
        if not seqs:
            return
        now = self._clock()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                if self.retention_s <= 0:
                    db.executemany("DELETE FROM events WHERE seq=?", [(s,) for s in seqs])
                else:
                    db.executemany(
                        "UPDATE events SET acked_at=? WHERE seq=? AND acked_at IS NULL",
                        [(now, s) for s in seqs],
                    )
                    db.execute(
                        "DELETE FROM events WHERE acked_at IS NOT NULL AND acked_at < ?",
                        (now - self.retention_s,),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def resend_from(self, from_seq: int) -> tuple[int, int | None]:
        """Make retained events with seq >= from_seq pending again.

        Returns (how many became pending, the lowest seq >= from_seq still held or
        None), so the caller can tell the server which part of a gap is gone.
        """
        with self._lock:
            cur = self._db.execute(
                "UPDATE events SET acked_at=NULL WHERE seq >= ? AND acked_at IS NOT NULL", (from_seq,)
            )
            (lowest,) = self._db.execute("SELECT min(seq) FROM events WHERE seq >= ?", (from_seq,)).fetchone()
            return cur.rowcount, lowest

    # -- reading ------------------------------------------------------------

    def pending(self, limit: int, *, after_seq: int = 0, exclude: set[int] | None = None) -> list[PendingEvent]:
        """Oldest pending events first, skipping those in ``exclude`` (in flight)."""
        exclude = exclude or set()
        out: list[PendingEvent] = []
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, payload FROM events WHERE acked_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit + len(exclude)),
            ).fetchall()
        for seq, payload in rows:
            if seq not in exclude:
                out.append(PendingEvent(seq, bytes(payload)))
                if len(out) == limit:
                    break
        return out

    def stats(self) -> OutboxStats:
        with self._lock:
            db = self._db
            depth, oldest = db.execute(
                "SELECT count(*), min(created_at) FROM events WHERE acked_at IS NULL"
            ).fetchone()
            (retained,) = db.execute("SELECT count(*) FROM events WHERE acked_at IS NOT NULL").fetchone()
            (lowest,) = db.execute("SELECT min(seq) FROM events").fetchone()
            counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        held_from = lowest if lowest is not None else counters["last_seq"] + 1
        return OutboxStats(depth, oldest, counters["shed"], counters["last_seq"], retained, held_from)

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
