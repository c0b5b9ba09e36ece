"""One active MQTT consumer per deployment, hot standbys in the other server processes.

Why not a shared subscription across processes: the ingest's session must be
persistent (the broker queues for it while it is away, so nothing published in
that time is lost), and Mosquitto keeps routing ``$share`` messages to a member
whose persistent session is disconnected (its issue 2662): a process that dies
or is scaled away strands its share until the session expires. So every process
uses the same client id, and only the holder of the ingest lock (a PostgreSQL
session-level advisory lock per client id, fleet_server.core.locks) connects
with it. The others ask for the lock every ``leader_poll_s``; when the holder
dies its database session ends, the lock is free, and a standby connects with
the same client id within seconds, taking over the same broker session with
everything queued in it (and the messages the dead process had received but
not acknowledged: the broker sends them again; inserts are idempotent).

A process whose connection is taken over by someone outside the lock (another
deployment with the same client id) stops ingesting with a clear error instead
of fighting for the session (``Ingestor.fatal_error``; /healthz says it).

With ``mqtt_shared_group`` set (not recommended) every process consumes, each
with its own client id and a non-persistent session; the sequence-gap repair
(fleet_server.fleet.gaps) is then the safety net for what a dying member held.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import zlib
from typing import Any, Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.core.locks import Leadership
from fleet_server.core.settings import Settings
from fleet_server.ingest.consumer import IngestCounters, Ingestor, client_id_holder

_LOGGER = logging.getLogger(__name__)

INGEST_LOCK_BASE = 0x50414C55_10000000
"""Advisory lock keys of the ingest: this plus a CRC of the client id (one lock per broker session)."""


def ingest_lock_key(client_id: str) -> int:
    return INGEST_LOCK_BASE + zlib.crc32(client_id.encode())


class ActiveIngest:
    """The ingest of one server process: active (an ``Ingestor`` connected) or standing by.

    Offers what /healthz and the pages read from an Ingestor (``connected``, ``counters``,
    ``backlog``, ...); while standing by, those describe an idle consumer.
    """

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session], engine: Engine) -> None:
        self.settings = settings
        self._session_factory = session_factory
        self.shared = settings.mqtt_shared_group is not None
        if self.shared:
            base = settings.ingest_client_id
            self.client_id = f"{base}-{socket.gethostname()[:8]}-{os.getpid()}"[:64]
            self.leadership: Leadership | None = None
        else:
            self.client_id = settings.ingest_client_id
            self.leadership = Leadership(engine, ingest_lock_key(self.client_id), f"MQTT ingest ({self.client_id})")
        self.ingestor: Ingestor | None = None
        self._idle = IngestCounters()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._became_active = threading.Event()
        self.refused: str | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        if self.leadership is None:
            self._activate()
            return self
        if not self._try_lead():
            _LOGGER.info("MQTT client id %s is in use by another server process of this deployment; "
                         "standing by to take it over", self.client_id)
        self._thread = threading.Thread(target=self._watch, name="palaute-ingest-standby", daemon=True)
        self._thread.start()
        return self

    def _try_lead(self) -> bool:
        assert self.leadership is not None
        held = self.leadership.try_acquire()
        if held and self.ingestor is None and not self.refused:
            self._activate()
        elif not held and self.ingestor is not None:
            # Our database session (and the lock with it) is gone; a standby may connect any moment.
            # Drop the connection at once, acknowledging nothing more: the broker sends again.
            _LOGGER.error("lost the ingest lock; disconnecting so the process that holds it now can take over")
            self.ingestor.abort()
            self.ingestor = None
            self._became_active.clear()
        return held

    def _activate(self) -> None:
        if self.leadership is None:
            self.ingestor = Ingestor(self.settings, self._session_factory, client_id=self.client_id).start()
            self._became_active.set()
            return
        if self.refused:
            return
        holder = client_id_holder(self.settings, self.client_id)
        if holder is not None and holder.get("deployment") != self.settings.deployment_id:
            self.refused = (
                f"MQTT client id {self.client_id!r} is already connected for another deployment (a server on "
                f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, with another database); not "
                "taking its session over. Give this deployment its own PALAUTE_MQTT_CLIENT_ID (or leave it "
                "unset: the default is derived from the database)")
            _LOGGER.error("%s", self.refused)
            return
        self.ingestor = Ingestor(self.settings, self._session_factory, client_id=self.client_id,
                                 deployment=self.settings.deployment_id).start()
        self._became_active.set()

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.leader_poll_s):
            try:
                self._try_lead()
            except Exception:
                _LOGGER.exception("ingest standby check failed; trying again")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.ingestor is not None:
            self.ingestor.stop(timeout)
        if self.leadership is not None:
            self.leadership.release()  # after the DISCONNECT: the next holder finds the session free

    def abort(self) -> None:
        """As if the process died (tests): no DISCONNECT, no more acks; the lock goes with the session."""
        self._stop.set()
        if self.ingestor is not None:
            self.ingestor.abort()
        if self.leadership is not None:
            self.leadership.release()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ state

    @property
    def role(self) -> str:
        """active | standby (shared-group members are always active)."""
        return "active" if self.ingestor is not None else "standby"

    def wait_active(self, timeout: float) -> bool:
        return self._became_active.wait(timeout)

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        import time

        deadline = time.monotonic() + timeout
        if not self.wait_active(timeout):
            return False
        ingestor = self.ingestor
        return ingestor is not None and ingestor.wait_subscribed(max(0.0, deadline - time.monotonic()))

    @property
    def fatal_error(self) -> str | None:
        return self.refused or (self.ingestor.fatal_error if self.ingestor is not None else None)

    @property
    def connected(self) -> bool:
        return self.ingestor is not None and self.ingestor.connected

    @property
    def counters(self) -> IngestCounters:
        return self.ingestor.counters if self.ingestor is not None else self._idle

    @property
    def backlog(self) -> int:
        return self.ingestor.backlog if self.ingestor is not None else 0

    @property
    def writer_alive(self) -> bool:
        return self.ingestor.writer_alive if self.ingestor is not None else True

    def __getattr__(self, name: str) -> Any:
        # last_commit_at, failing_since, last_db_error, writing_since, fatal_error, started_at ...
        if name.startswith("_"):
            raise AttributeError(name)
        ingestor = self.__dict__.get("ingestor")
        if ingestor is not None:
            return getattr(ingestor, name)
        if name in ("last_commit_at", "failing_since", "last_db_error", "writing_since"):
            return None
        raise AttributeError(name)
