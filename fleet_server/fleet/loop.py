"""The fleet loop: one background thread beside the ingest (initial config publish,
registry and command bookkeeping, sequence gaps, alert rules and delivery), and
the publisher it shares with the routes.

One loop runs in the whole deployment: every process starts the thread, but only
the one holding the fleet-loop lock (fleet_server.core.locks.Leadership) runs
passes; the others ask for the lock every ``leader_poll_s`` and the first to get
it after the leader died takes over, starting from scratch (configs published
once more, a full gap scan).

``start_fleet_ops(app)`` and ``stop_fleet_ops(app)`` run inside the app's
lifespan, after the database is open.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from fastapi import FastAPI
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.core.clock import utcnow
from fleet_server.core.locks import Leadership
from fleet_server.core.settings import Settings
from fleet_server.fleet.alerts import channels_from, run_once
from fleet_server.fleet.publisher import Publisher

_LOGGER = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 3600
"""How often the leader applies the retention settings and makes the answers' next partitions."""


@dataclass
class GapSchedule:
    """When the next sequence-gap check is due (monotonic seconds).

    Why not a plain interval: after a broker lost messages (kill -9 between two
    autosaves) or the server was down, the gaps are there at once, and with one
    check every ``interval_s`` (300 s) plus the grace period the answers came back
    only after ~10 minutes. So a check runs ``soon_s`` after the server starts (the
    kiosks have reconnected and reported their last seq by then) and after each time
    the broker connection comes back, and keeps running every ``soon_s`` while open
    gaps wait for their grace period, a resend or its answer. Incremental checks cost
    about 1 ms per kiosk (bench/bench_gaps.py), so this is cheap.
    """

    interval_s: float
    soon_s: float
    next_at: float = float("-inf")
    soon_left: int = 1

    def due(self, now: float) -> bool:
        return now >= self.next_at

    def checked(self, now: float, pending: bool) -> None:
        if pending or self.soon_left > 0:
            self.soon_left = max(0, self.soon_left - 1)
            self.next_at = now + min(self.soon_s, self.interval_s)
        else:
            self.next_at = now + self.interval_s

    def connection_back(self, now: float) -> None:
        self.next_at = min(self.next_at, now + self.soon_s)
        self.soon_left = max(self.soon_left, 1)


class FleetLoop:
    """Every ``alert_check_interval_s``: publish all station configs until that has
    worked once (the broker may have lost its retained messages), later only to
    online kiosks that report another config version (remote_config.repair_drift) and to
    those whose web survey link is due for renewal (remote_config.renew_links);
    clear retired kiosks' retained configs; then run the alert pass
    (fleet_server.fleet.alerts.run_once); the sequence gap check (check_gaps) when
    its GapSchedule says so: soon after a start or a broker reconnect and while gaps
    are open, else every ``gap_check_interval_s``."""

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session], publisher: Publisher,
                 leadership: Leadership | None = None, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock  # "now" for the monthly reports (tests fix it)
        self.session_factory = session_factory
        self.publisher = publisher
        self.channels = channels_from(settings)
        self.leadership = leadership  # None: this loop is the only one (tests, single process)
        self._fresh_state()
        self.passes = 0
        self._next_full_pass = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _fresh_state(self) -> None:
        """What a loop knows only from its own passes; a new leader starts without it."""
        self.configs_published = False
        self._drift_attempts: dict[str, tuple[int, float]] = {}
        self._link_attempts: dict[str, float] = {}
        self._cleared: set[str] = set()
        self.gap_schedule = GapSchedule(self.settings.gap_check_interval_s, self.settings.gap_check_soon_s)
        self._retention_applied = float("-inf")
        self._broker_connections = 0
        self._gap_watermarks: dict[str, int] = {}  # device -> highest seq scanned (fleet_server.fleet.gaps)

    @property
    def leading(self) -> bool:
        return self.leadership is None or self.leadership.held

    def start(self) -> FleetLoop:
        self._thread = threading.Thread(target=self._run, name="palaute-fleet", daemon=True)
        self._thread.start()
        return self

    def run_pass(self) -> None:
        from fleet_server.fleet.remote_config import publish_all

        if not self.configs_published:
            try:
                with self.session_factory() as session:
                    publish_all(session, self.publisher)
                self.configs_published = True
            except Exception as exc:  # noqa: BLE001 - retried next pass
                _LOGGER.warning("station configs not published yet (%s); retrying", exc)
        else:
            self._repair_drift()
            self._renew_links()
        self._clear_retired()
        self.advance_rollouts()
        run_once(self.session_factory, self.settings, self.channels)
        self.correct_clocks()
        self.send_reports()
        self.gap_pass_if_due()
        if time.monotonic() - self._retention_applied >= RETENTION_INTERVAL_S:
            self._retention_applied = time.monotonic()
            self._retention()
        self.passes += 1

    def send_reports(self) -> int:
        """Monthly reports to their subscribers from the 1st (fleet_server.fleet.report_mail)."""
        from fleet_server.fleet.report_mail import run_once as send_monthly

        try:
            return send_monthly(self.session_factory, self.settings, self.clock())
        except Exception as exc:  # noqa: BLE001 - retried next pass
            _LOGGER.warning("monthly reports not sent (%s); retrying next pass", exc)
            return 0

    def correct_clocks(self) -> int:
        """Re-date answers kiosks sent before their clock synced (fleet_server.fleet.clock_corrections)."""
        from fleet_server.fleet.clock_corrections import apply_corrections

        try:
            with self.session_factory() as session, session.begin():
                return apply_corrections(session)
        except Exception as exc:  # noqa: BLE001 - retried next pass
            _LOGGER.warning("clock corrections not applied (%s); retrying next pass", exc)
            return 0

    def _retention(self) -> None:
        from fleet_server.core.clock import utcnow
        from fleet_server.fleet.retention import apply_retention

        try:
            apply_retention(self.session_factory.kw["bind"], self.settings, utcnow())
        except Exception as exc:  # noqa: BLE001 - retried next hour
            _LOGGER.warning("retention pass failed (%s); retrying in an hour", exc)

    def gap_pass_if_due(self) -> bool:
        """Run check_gaps if the schedule says so (the broker came back: soon). True if it ran."""
        now = time.monotonic()
        connections = getattr(self.publisher, "connections", 0)
        if connections != self._broker_connections:
            self._broker_connections = connections
            self.gap_schedule.connection_back(now)
        if not self.gap_schedule.due(now):
            return False
        result = self.check_gaps()
        self.gap_schedule.checked(time.monotonic(), pending=result is None or self._gaps_pending())
        return True

    def _gaps_pending(self) -> bool:
        """Open gaps that may still come back (waiting, asked or acknowledged)."""
        from sqlalchemy import func, select

        from fleet_server.models import SeqGap

        try:
            with self.session_factory() as session:
                return bool(session.scalar(select(func.count()).select_from(SeqGap).where(
                    SeqGap.resolved_at.is_(None), SeqGap.unrecoverable_at.is_(None))))
        except Exception:  # noqa: BLE001 - then look again soon
            return True

    def check_gaps(self, now=None):
        """Track missing seqs and ask online kiosks to resend them (fleet_server.fleet.gaps);
        ``now`` lets tests step through grace periods without waiting for them."""
        from fleet_server.core.clock import utcnow
        from fleet_server.fleet.alerts import device_online
        from fleet_server.fleet.gaps import track_gaps

        now = now or utcnow()
        marks = dict(self._gap_watermarks)  # kept only once the pass is committed
        try:
            with self.session_factory() as session, session.begin():
                result = track_gaps(session, self.settings, self.publisher, now,
                                    lambda d: device_online(d, now, self.settings.alert_heartbeat_timeout_s),
                                    watermarks=marks)
            self._gap_watermarks = marks
            return result
        except Exception as exc:  # noqa: BLE001 - retried next pass
            _LOGGER.warning("sequence gap check failed (%s); retrying next pass", exc)
            return None

    def advance_rollouts(self, now=None) -> list[str]:
        """Software rollouts: target the next wave, count failures (fleet_server.fleet.rollouts)."""
        from fleet_server.fleet.rollouts import advance

        try:
            with self.session_factory() as session, session.begin():
                happened = advance(session, self.settings, self.publisher, now)
            for line in happened:
                _LOGGER.info("%s", line)
            return happened
        except Exception as exc:  # noqa: BLE001 - retried next pass
            _LOGGER.warning("rollout pass failed (%s); retrying next pass", exc)
            return []

    def _repair_drift(self) -> None:
        from fleet_server.core.clock import utcnow
        from fleet_server.fleet.alerts import device_online
        from fleet_server.fleet.remote_config import repair_drift

        now = utcnow()
        try:
            with self.session_factory() as session:
                repaired = repair_drift(
                    session, self.publisher, self._drift_attempts, time.monotonic(),
                    lambda d: device_online(d, now, self.settings.alert_heartbeat_timeout_s),
                )
            if repaired:
                _LOGGER.info("sent the current config again to %s", ", ".join(repaired))
        except Exception as exc:  # noqa: BLE001 - retried next pass
            _LOGGER.warning("config drift repair failed (%s); retrying next pass", exc)

    def _renew_links(self) -> None:
        from fleet_server.core.clock import utcnow
        from fleet_server.fleet.alerts import device_online
        from fleet_server.fleet.remote_config import renew_links

        now = utcnow()
        try:
            with self.session_factory() as session:
                renewed = renew_links(
                    session, self.publisher, self._link_attempts, now, time.monotonic(),
                    lambda d: device_online(d, now, self.settings.alert_heartbeat_timeout_s),
                )
            if renewed:
                _LOGGER.info("sent a new survey link to %s", ", ".join(renewed))
        except Exception as exc:  # noqa: BLE001 - retried next pass
            _LOGGER.warning("survey link renewal failed (%s); retrying next pass", exc)

    def _clear_retired(self) -> None:
        """Remove retired kiosks' retained configs from the broker, once per process."""
        from sqlalchemy import select

        from fleet_server.fleet.remote_config import clear_retained_config
        from fleet_server.models import Device

        try:
            with self.session_factory() as session:
                retired = session.execute(
                    select(Device.station_id, Device.id).where(Device.state == "retired")
                ).all()
            for station_id, device_id in retired:
                if device_id not in self._cleared:
                    clear_retained_config(self.publisher, station_id, device_id)
                    self._cleared.add(device_id)
        except Exception as exc:  # noqa: BLE001 - retried next pass
            _LOGGER.warning("retired kiosks' configs not cleared yet (%s)", exc)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.leadership is not None:
                was = self.leadership.held
                if not self.leadership.try_acquire():
                    self._stop.wait(self.settings.leader_poll_s)
                    continue
                if not was:
                    self._fresh_state()
            now = time.monotonic()
            try:
                if now >= self._next_full_pass:
                    self._next_full_pass = now + self.settings.alert_check_interval_s
                    self.run_pass()
                else:
                    self.gap_pass_if_due()
            except Exception:
                _LOGGER.exception("fleet pass failed; retrying next interval")
            wake = min(self._next_full_pass, self.gap_schedule.next_at)
            self._stop.wait(min(self.settings.alert_check_interval_s, max(0.2, wake - time.monotonic())))

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.leadership is not None:
            self.leadership.release()


def start_fleet_ops(app: FastAPI, *, loop: bool = True) -> None:
    settings: Settings = app.state.settings
    from fleet_server.fleet.survey_links import survey_links_from

    # the web app's signer: the survey pages accept the links the kiosks show
    app.state.fleet_publisher = Publisher(
        settings, survey_links_from(settings, getattr(app.state, "web_links", None)))
    app.state.fleet_loop = FleetLoop(settings, app.state.session_factory, app.state.fleet_publisher,
                                     Leadership(app.state.engine) if loop else None)
    if loop:
        app.state.fleet_loop.start()


def stop_fleet_ops(app: FastAPI) -> None:
    fleet_loop = getattr(app.state, "fleet_loop", None)
    if fleet_loop is not None:
        fleet_loop.stop()
    publisher = getattr(app.state, "fleet_publisher", None)
    if publisher is not None:
        publisher.close()
