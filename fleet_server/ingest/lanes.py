"""The consumer's in-memory queue: a live lane ahead of catch-up, taken in bounded transactions.

Why: a kiosk back from an outage drains its outbox in full batches (100 events a
message) while other kiosks keep sending single presses. With one FIFO queue a
live press waited behind the whole backlog (p99 6.5-10 s while 100k answers
drained). Here a message with few events (a press or two, a status) goes in the
live lane and every transaction takes the live lane first, then fills up with
catch-up; a transaction holds at most ``store.TX_MAX_EVENTS`` events, and one with
live messages at most ``LIVE_TX_EVENTS``, so a live press waits for the commit in
progress and one short commit of its own. Catch-up is never starved: every
transaction that has room takes from it.

Order within a lane is arrival order (statuses are all live, so a device's
statuses stay in order); events need no order (each is stored once by its id).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from fleet_server.ingest.store import InboundMessage

LIVE_MAX_EVENTS = 10
"""A message with at most this many events is live (a kiosk's backlog goes out 100 a message)."""

LIVE_TX_EVENTS = 500
"""A transaction carrying live messages takes at most this many events in all, so the press
is committed within one short transaction (catch-up goes on in full transactions after it)."""


class IngestLanes:
    """Thread-safe: the MQTT network thread puts, the writer thread takes."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._live: deque[tuple[InboundMessage, int]] = deque()
        self._bulk: deque[tuple[InboundMessage, int]] = deque()
        self._bulk_events = 0

    @staticmethod
    def is_live(message: InboundMessage) -> bool:
        return message.events <= LIVE_MAX_EVENTS

    def put(self, message: InboundMessage) -> None:
        n = message.events
        with self._cond:
            if n <= LIVE_MAX_EVENTS:
                self._live.append((message, n))
            else:
                self._bulk.append((message, n))
                self._bulk_events += n
            self._cond.notify()

    def live_waiting(self) -> bool:
        with self._cond:
            return bool(self._live)

    def bulk_events(self) -> int:
        """Events of the catch-up lane's messages (full batches) waiting to be taken."""
        with self._cond:
            return self._bulk_events

    def qsize(self) -> int:
        with self._cond:
            return len(self._live) + len(self._bulk)

    def _full(self, max_messages: int, max_events: int) -> bool:
        return len(self._live) + len(self._bulk) >= max_messages or self._bulk_events >= max_events

    def take(self, max_messages: int, max_events: int, *, wait_s: float, linger_s: float) -> list[InboundMessage]:
        """Up to ``max_messages`` messages and ``max_events`` events (at least one message), live first.

        Waits up to ``wait_s`` for a first message, then up to ``linger_s`` for
        more while the batch is not full; returns [] if nothing came.
        """
        with self._cond:
            if not (self._live or self._bulk) and not self._cond.wait_for(lambda: self._live or self._bulk, wait_s):
                return []
            deadline = time.monotonic() + linger_s
            while not self._full(max_messages, max_events):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    break
            batch: list[InboundMessage] = []
            events = 0
            if self._live:
                max_events = min(max_events, LIVE_TX_EVENTS)
            for lane in (self._live, self._bulk):
                while lane and len(batch) < max_messages:
                    message, n = lane[0]
                    if batch and events + n > max_events:
                        break
                    lane.popleft()
                    if lane is self._bulk:
                        self._bulk_events -= n
                    batch.append(message)
                    events += n
            return batch
