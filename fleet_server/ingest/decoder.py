"""SQLite's catch-up decoded in a process of its own, so that its interpreter lock is not the writer's.

Why: on SQLite the whole ingest is one Python process, and its threads take turns on one
interpreter lock. While a backlog drains, the writer's transaction of 2,000 answers took
45 ms: 31 ms inserting, the rest mostly waiting for the lock while the preparer decoded the
next transaction (13-20 ms of CPU each), and the machine's second core stayed idle
(docs/operations.md, "How fast one server stores answers").

Here the preparer sends a transaction's events messages to a child process, which validates
them (``sqlite_events.decode``), flattens their parameters and counts their rollup cells
(``sqlite_events.ahead``), and sends back only what the writer binds: per message its sender,
its highest seq and its ids, and for the whole transaction one flat list of parameters and
the cells. Unpickling that costs about 0.3 µs per answer; a decoded answer as a dict cost
2.0 µs (a first version that sent the dicts back gained nothing). The dicts are made from
the flat list only when the writer needs them (``sqlite_events.EventParams.packed``).

Nothing depends on the process: until it is ready, if it fails, stops answering or dies, the
preparer decodes in its own thread as before (the messages stay in hand until their
transaction commits), and a new process is started after ``RESTART_AFTER_S``. It reads
nothing but the payloads it is given; the database is the writer's alone.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import threading
import time
from collections.abc import Sequence
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from fleet_server.ingest import sqlite_events
from palaute_wire import contract
from palaute_wire.errors import ContractError

_LOGGER = logging.getLogger(__name__)

MIN_EVENTS = 100
"""A transaction's events (still to decode) from which the process decodes them: a kiosk's full
message and more. Live presses (a few events) are decoded as they arrive, in the network thread."""

REPLY_TIMEOUT_S = 10.0
"""Longest wait for the process's answer (a transaction takes it tens of milliseconds); then the
preparer decodes the transaction itself and the process is replaced."""

RESTART_AFTER_S = 30.0
"""After the process failed, how long the preparer decodes alone before a new one is started."""

_READY = b"ready"

Item = tuple[str, bytes, datetime]
"""A message as the process takes it: topic, payload, received at."""


def _decode_all(items: list[Item]) -> tuple[list[tuple[str, str, int, list[str]] | None], list[Any], Any]:
    """What the process answers for ``items``: per message None (not for the fast path: the preparer
    judges it) or (station, device, highest seq, ids); the decoded ones' flat parameters; their cells."""
    out: list[tuple[str, str, int, list[str]] | None] = []
    decoded = []
    for topic, payload, received_at in items:
        try:
            params = sqlite_events.decode(contract.parse_topic(topic), payload, sqlite_events.time_text(received_at))
        except ContractError:
            params = None
        if params is None:
            out.append(None)
        else:
            out.append((params.station_id, params.device_id, params.max_seq, params.ids))
            decoded.append(params)
    ahead = sqlite_events.ahead(decoded)
    return out, ahead.params if ahead else [], ahead.cells if ahead else None


def _serve(conn: Connection) -> None:
    """The child process: answer each request until the server closes its end."""
    try:
        conn.send_bytes(_READY)
        while True:
            request = conn.recv_bytes()
            try:
                reply: Any = _decode_all(pickle.loads(request))
            except Exception as exc:  # noqa: BLE001 - a bug here: the server decodes the batch itself
                reply = ("failed", f"{type(exc).__name__}: {exc}")
            conn.send_bytes(pickle.dumps(reply, pickle.HIGHEST_PROTOCOL))
    except (EOFError, OSError):  # the server closed its end (stopped, or gave up on this process)
        return


class Decoder:
    """The server's end: ``decode`` from the preparer thread (one caller at a time), ``close`` at stop."""

    def __init__(self, name: str = "palaute-ingest-decoder") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._process: Any = None
        self._conn: Connection | None = None
        self._ready = False
        self._failed_at: float | None = None
        self._closed = False
        self.batches = 0
        """Transactions the process decoded (for tests and the bench)."""

    @property
    def pid(self) -> int | None:
        """The running process's id (None: none is running)."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def start(self) -> Decoder:
        """Start the process in the background (its imports take a moment); ``decode`` declines until it is up."""

        def run() -> None:
            with self._lock:
                if not self._closed:
                    self._start_locked()

        threading.Thread(target=run, name=f"{self._name}-start", daemon=True).start()
        return self

    def _start_locked(self) -> None:
        if self._process is not None:
            return
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])  # each process a fork of one that imported this already
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child,), name=self._name, daemon=True)
        try:
            process.start()
        except OSError as exc:
            _LOGGER.warning("could not start the ingest's decoding process (%s); decoding in the server", exc)
            parent.close()
            self._failed_at = time.monotonic()
            return
        finally:
            child.close()
        self._process, self._conn, self._ready = process, parent, False

    def _usable_locked(self) -> bool:
        if self._process is None:
            if self._failed_at is not None and time.monotonic() - self._failed_at < RESTART_AFTER_S:
                return False
            self._start_locked()
            return False
        assert self._conn is not None
        if not self._ready:
            if not self._process.is_alive():
                self._fail_locked("it exited on start")
                return False
            try:
                if not self._conn.poll(0):
                    return False
                self._ready = self._conn.recv_bytes() == _READY
            except (EOFError, OSError):
                self._fail_locked("it exited on start")
                return False
        return self._ready

    def decode(self, items: Sequence[Item]) -> tuple[list[sqlite_events.EventParams | None], sqlite_events.Ahead | None] | None:
        """Each message's ``EventParams`` (packed; None: not for the fast path) and the ``Ahead`` of those,
        in order; or None when the process is not there to do it (the caller decodes)."""
        if not self._lock.acquire(blocking=False):  # starting (or closing): not worth waiting for
            return None
        try:
            if self._closed or not self._usable_locked():
                return None
            assert self._conn is not None
            try:
                self._conn.send_bytes(pickle.dumps(list(items), pickle.HIGHEST_PROTOCOL))
                if not self._conn.poll(REPLY_TIMEOUT_S):
                    self._fail_locked(f"no answer within {REPLY_TIMEOUT_S:.0f} s")
                    return None
                reply = pickle.loads(self._conn.recv_bytes())
            except (EOFError, OSError, pickle.UnpicklingError) as exc:
                self._fail_locked(f"{type(exc).__name__}: {exc}")
                return None
        finally:
            self._lock.release()
        if isinstance(reply[0], str):
            _LOGGER.error("the ingest's decoding process failed on a batch (%s); decoding it in the server", reply[1])
            return None
        out, flat, cells = reply
        params: list[sqlite_events.EventParams | None] = []
        start = sources = 0
        for entry in out:
            if entry is None:
                params.append(None)
                continue
            station_id, device_id, max_seq, ids = entry
            params.append(sqlite_events.EventParams.packed(station_id, device_id, max_seq, ids, flat, start))
            start += len(ids)
            sources += 1
        if out:
            self.batches += 1
        return params, (sqlite_events.Ahead(sources, start, flat, cells) if sources else None)

    def _fail_locked(self, why: str) -> None:
        _LOGGER.error("the ingest's decoding process failed (%s); decoding in the server, a new one in %.0f s",
                      why, RESTART_AFTER_S)
        self._stop_locked()
        self._failed_at = time.monotonic()

    def _stop_locked(self) -> None:
        process, conn = self._process, self._conn
        self._process, self._conn, self._ready = None, None, False
        if conn is not None:
            conn.close()  # the process reads EOF and exits
        if process is not None:
            process.join(2)
            if process.is_alive():
                process.kill()
                process.join(2)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop_locked()
