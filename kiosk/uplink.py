"""The kiosk's MQTT link: drains the outbox, publishes status, takes config and commands.

Why one thread and ``client.loop()`` instead of paho's ``loop_start()``:
with paho's own network thread, ``publish()`` in one thread can race the
PUBACK's ``on_publish`` in the other (the ack may arrive before the caller has
recorded which events the message id carries). Here a single uplink thread
publishes, reads acks and runs every callback, so the map ``mid -> seqs`` is
always complete before its ack can be read, and no lock guards it.

Delivery contract (see kiosk.outbox): events leave the pending set only after
``on_publish`` for their message id, i.e. on the broker's PUBACK. The PUBACKs one
``client.loop()`` read are marked in the outbox together, in one transaction, as
soon as it returns (a crash before that only sends them again); until then their
events count as in flight, so nothing sends them twice. In-flight
batches are bounded (``inflight_batches``); one that is not acknowledged within
``ack_timeout_s`` is forgotten so its events are sent again (the server drops
the copy by ``event_id``). paho keeps unacknowledged messages across a
reconnect and resends them itself; the persistent session (fixed client id,
clean_start=False, a session expiry) keeps config/cmd subscriptions and queued
commands while the kiosk is away.

MQTT 3.1.1 (``[broker] mqtt_version = "3.1.1"``, for brokers without 5) keeps the same
contract with what 3.1.1 has: ``clean_session=False`` instead of clean start plus expiry
(the broker's own setting then bounds how long it keeps the session), and no reason
codes: a 3.1.1 PUBACK is always a success, and a broker that refuses a publish closes
the connection instead (Mosquitto and RabbitMQ do), so unacknowledged events stay in
the outbox either way.

Connection: reconnects with capped exponential backoff and jitter
(:func:`reconnect_delay`): the cap is low (``reconnect_max_s``, 10 s by default) so a
kiosk is back within seconds of the broker, and each delay is drawn from the upper
half of its step so a fleet that lost the broker at one instant does not come back
at one instant either. A refusal for bad credentials or authorisation waits
``auth_retry_s`` (at least the cap) and is logged as an error each time, instead of
hammering the broker. The Last Will is
a retained ``StatusHeartbeat`` with ``online: false``; a clean :meth:`stop`
publishes an offline status itself and disconnects normally (no will).

Callbacks (``on_config``, ``on_identify``, ``on_restart``, ``on_connection``)
run on the uplink thread and must return quickly; a UI marshals them onto its
own thread (Kivy: ``Clock.schedule_once``).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from palaute_wire.contract import (
    CONFIG_FEATURES,
    CPU_TEMP_RANGE_C,
    MAX_BATCH_EVENTS,
    MAX_DISK_MB,
    MAX_DURATION_S,
    MAX_PAYLOAD_BYTES,
    Command,
    CommandAck,
    StationConfig,
    StatusHeartbeat,
    batch_payload,
    decode,
    encode,
    now_utc,
    topic,
)
from palaute_wire.errors import ContractError
from palaute_wire.mqtt_url import parse_mqtt_url

from .clock import ClockWatch
from .config import BrokerSection
from .health import Health
from .outbox import Outbox
from .state import save_station_config

_LOGGER = logging.getLogger(__name__)

AUTH_REFUSALS = {"Bad user name or password", "Not authorized", "Banned"}
"""CONNACK reasons that retrying soon cannot fix: back off to the maximum."""


@dataclass(frozen=True)
class UplinkTunables:
    batch_events: int = 100
    """Events per published batch (the contract allows up to MAX_BATCH_EVENTS)."""
    inflight_batches: int = 10
    """Batches published and not yet acknowledged, at most."""
    ack_timeout_s: float = 30.0
    """After this, an unacknowledged batch is forgotten and its events sent again."""
    loop_timeout_s: float = 0.05
    """Longest wait in ``client.loop``; bounds how late a ``wake()`` is noticed."""
    connack_timeout_s: float = 10.0
    """A connection without CONNACK for this long is dropped and retried."""
    session_expiry_s: int = 7 * 24 * 3600
    """How long the broker keeps this kiosk's session (subscriptions, queued commands)."""
    stop_timeout_s: float = 3.0
    """How long a clean stop waits for the broker to acknowledge the offline status."""
    jitter: float = 0.5
    """Reconnect delays are shortened by a random share up to this, so a fleet does not reconnect in step."""
    auth_retry_s: float = 60.0
    """Wait after a refusal for bad credentials (never shorter than ``reconnect_max_s``)."""
    idle_drain_s: float = 2.0
    """Look at the outbox at least this often even without a wake-up (belt and braces)."""
    command_max_age_s: float = 600.0
    """identify/restart issued longer ago than this (by a synchronised clock) are refused:
    a kiosk back after a week offline must not blink or restart for last week's request.
    resend is always run: it is harmless and fills gaps whenever it comes."""


def reconnect_delay(failures: int, min_s: float, max_s: float, jitter: float, rng: random.Random) -> float:
    """Seconds to wait before connect attempt number ``failures + 1``.

    Doubles from ``min_s`` per failure up to ``max_s``, then shortens it by a random
    share in [0, jitter): with jitter 0.5 a fleet that lost its broker together spreads
    its reconnects over half the step (5 s at the 10 s cap) instead of one instant.
    """
    step = min(max_s, min_s * 2 ** max(0, min(failures - 1, 62)))
    return step * (1 - jitter * rng.random())


def _bounded(value: float | None, lo: float, hi: float) -> float | None:
    """A sensor reading the contract can carry, or None (a broken sensor must not stop the status)."""
    if value is None or not math.isfinite(value) or not lo <= value <= hi:
        return None
    return value


@dataclass
class _InFlight:
    seqs: tuple[int, ...]
    sent_at: float


@dataclass(frozen=True)
class UplinkSnapshot:
    """What the staff screen and the status LED need; safe to read from any thread."""

    connected: bool
    last_ack_at: float | None
    """Wall-clock time of the last PUBACK for events."""
    inflight_batches: int
    config_version: int
    config_error: str | None
    refused: str | None
    """Why the broker last refused the connection (e.g. bad password), until it accepts."""
    connect_attempts: int
    next_retry_in_s: float | None
    ack_timeouts: int = 0
    """Batches given up on after ack_timeout_s and queued again (a sick link shows here)."""


class Uplink:
    """One MQTT connection for one kiosk; start() runs it on its own thread."""

    def __init__(
        self,
        broker: BrokerSection,
        station_id: str,
        device_id: str,
        outbox: Outbox,
        *,
        health: Health,
        state_dir: Path,
        station_config: StationConfig,
        on_config: Callable[[StationConfig], None] | None = None,
        on_identify: Callable[[], None] | None = None,
        on_restart: Callable[[], None] | None = None,
        on_connection: Callable[[bool], None] | None = None,
        tunables: UplinkTunables = UplinkTunables(),
        rng: random.Random | None = None,
    ) -> None:
        if not 1 <= tunables.batch_events <= MAX_BATCH_EVENTS:
            raise ValueError(f"batch_events must be 1..{MAX_BATCH_EVENTS}")
        self.broker = broker
        self.station_id = station_id
        self.device_id = device_id
        self.outbox = outbox
        self.health = health
        self.state_dir = Path(state_dir)
        self.on_config = on_config
        self.on_identify = on_identify
        self.on_restart = on_restart
        self.on_connection = on_connection
        self.t = tunables
        self._rng = rng or random.Random()
        self.topics = {ch: topic(station_id, device_id, ch) for ch in ("events", "status", "config", "cmd")}
        self.client_id = f"kiosk-{station_id}-{device_id}"

        self._station_config = station_config
        self._config_error: str | None = None
        self._last_command: CommandAck | None = None
        self._connected_at: datetime | None = None  # start of the current broker connection
        self._recent_cmds: list[str] = []
        self._restart_requested = False
        self.status_extra: Callable[[], dict] | None = None
        """More status fields, e.g. the updater's state (kiosk.updater.status_fields)."""

        # Connection state, owned by the uplink thread.
        self._state = "disconnected"  # disconnected | connecting | connected
        self._listening = False  # the broker acked this connection's config/cmd subscriptions
        self._connecting_since = 0.0
        self._url_index = 0  # which of broker.urls is tried next (failover on every failed attempt)
        self._failures = 0
        self._attempts = 0
        self._next_attempt = 0.0
        self._refused: str | None = None
        self._inflight: dict[int, _InFlight] = {}
        self._inflight_seqs: set[int] = set()
        """Seqs in flight or acknowledged and not yet marked in the outbox: never read as pending."""
        self._acked: list[int] = []
        """Seqs the broker acknowledged in this loop turn; ``_mark_acked`` records them in the outbox."""
        self._status_mids: set[int] = set()
        self._cursor = 0
        self._drain_needed = True
        self._next_drain_check = 0.0
        self._drain_paused_until = 0.0
        self._next_heartbeat = 0.0
        self._last_ack_at: float | None = None
        self._ack_timeouts = 0

        self.clock_watch = ClockWatch(outbox, health.clock_synced)
        self._next_clock_poll = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._snapshot = UplinkSnapshot(False, None, 0, station_config.config_version, None, None, 0, None)
        self._client = self._make_client()

    # -- public API (any thread) ----------------------------------------------

    def start(self) -> Uplink:
        if self._thread is not None:
            raise RuntimeError("uplink already started")
        self._thread = threading.Thread(target=self._run, name="palaute-uplink", daemon=True)
        self._thread.start()
        return self

    def wake(self, *_args: object) -> None:
        """Drain now (e.g. from ``Recorder.on_recorded``) instead of at the next idle check."""
        self._drain_needed = True
        self._wake.set()

    def send_status_soon(self) -> None:
        """Publish a status now instead of at the next heartbeat (something in it changed)."""
        self._next_heartbeat = 0.0
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._snapshot.connected

    @property
    def listening(self) -> bool:
        """Connected and the broker has acked the config/cmd subscriptions, so a command sent now
        reaches this kiosk even on a new session."""
        return self._listening and self._snapshot.connected

    def snapshot(self) -> UplinkSnapshot:
        return self._snapshot

    @property
    def station_config(self) -> StationConfig:
        return self._station_config

    def stop(self, timeout: float | None = None) -> None:
        """Publish an offline status, disconnect cleanly (no Last Will) and end the thread.

        Idempotent. Events still unacknowledged stay in the outbox for the next start.
        """
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout if timeout is not None else self.t.stop_timeout_s + 5)

    close = stop

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- client setup -----------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        if self.mqtt5:
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
            )
        else:  # 3.1.1: the persistent session is clean_session=False, kept as long as the broker is set to
            client = mqtt.Client(
                callback_api_version=CallbackAPIVersion.VERSION2, client_id=self.client_id,
                protocol=mqtt.MQTTv311, clean_session=False,
            )
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
        # paho must never queue beyond our window (+ room for status messages).
        client.max_inflight_messages_set(self.t.inflight_batches + 4)
        if self.broker.tls:
            client.tls_set(
                ca_certs=str(self.broker.ca_file) if self.broker.ca_file else None,
                certfile=str(self.broker.client_cert) if self.broker.client_cert else None,
                keyfile=str(self.broker.client_key) if self.broker.client_key else None,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    # -- the thread -------------------------------------------------------------

    def _run(self) -> None:
        _LOGGER.info("uplink to %s as %s", " or ".join(self.broker.urls), self.client_id)
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception:  # the uplink must outlive any one bad moment (disk full, odd packet)
                _LOGGER.exception("uplink step failed; continuing")
                self._stopping.wait(1.0)
            self._update_snapshot()
        try:
            self._shutdown()
        except Exception:
            _LOGGER.exception("uplink shutdown failed")
        self._state = "disconnected"
        self._update_snapshot()

    def _step(self) -> None:
        now = time.monotonic()
        if now >= self._next_clock_poll:  # re-date this boot's answers once NTP has synced (kiosk.clock)
            self._next_clock_poll = now + 2.0
            if self.clock_watch.poll(self._inflight_seqs) is not None:
                self._next_heartbeat = 0.0  # tell the server now
                self._cursor = 0
        if self._state == "disconnected":
            if now >= self._next_attempt:
                self._attempt_connect()
            else:
                self._wake.wait(min(1.0, self._next_attempt - now))
                self._wake.clear()
            return
        self._wake.clear()
        try:
            self._client.loop(timeout=self.t.loop_timeout_s)
        finally:
            self._mark_acked()
        if self._state == "connecting" and time.monotonic() - self._connecting_since > self.t.connack_timeout_s:
            _LOGGER.warning("no CONNACK from %s within %.0fs; dropping the connection", self.broker_url,
                            self.t.connack_timeout_s)
            self._client.disconnect()
            self._state = "disconnected"
            self._schedule_retry()
            return
        if self._state != "connected":
            return
        now = time.monotonic()
        self._expire_inflight(now)
        if now >= self._next_heartbeat:
            self._publish_status()
        if self._restart_requested:  # only once the status carrying its ack is queued
            self._restart_requested = False
            self._call(self.on_restart)
        if self._drain_needed or now >= self._next_drain_check:
            self._drain(now)

    def _attempt_connect(self) -> None:
        self._attempts += 1
        try:
            self._client.username_pw_set(self.broker.username, self.broker.secret())
        except OSError as exc:
            _LOGGER.error("cannot read [broker] password_file: %s", exc.strerror)
            self._schedule_retry(auth=True)
            return
        self._connected_at = now_utc()  # this connection's start: every status of it says so (ordering)
        self._client.will_set(
            self.topics["status"],
            encode(StatusHeartbeat(
                station_id=self.station_id, device_id=self.device_id, online=False, sent_at=self._connected_at,
                connected_at=self._connected_at,
            )),
            qos=1,
            retain=True,
        )
        endpoint = parse_mqtt_url(self.broker_url)
        try:
            if self.mqtt5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.t.session_expiry_s
                self._client.connect(
                    endpoint.host, endpoint.port, keepalive=self.broker.keepalive_s,
                    clean_start=False, properties=props,
                )
            else:
                self._client.connect(endpoint.host, endpoint.port, keepalive=self.broker.keepalive_s)
        except Exception as exc:  # noqa: BLE001 - OSError, ssl errors, DNS: all mean "not now", never a dead loop
            self._schedule_retry(reason=f"{type(exc).__name__}: {exc}")
            return
        self._state = "connecting"
        self._connecting_since = time.monotonic()

    @property
    def mqtt5(self) -> bool:
        """MQTT 5 (the default) or 3.1.1 (``[broker] mqtt_version``)."""
        return self.broker.mqtt_version == "5"

    @property
    def broker_url(self) -> str:
        """The broker in use (or tried next): one of ``broker.urls``."""
        return self.broker.urls[self._url_index]

    def _next_url(self) -> int:
        return (self._url_index + 1) % len(self.broker.urls)

    def _schedule_retry(self, *, auth: bool = False, reason: str | None = None) -> None:
        self._failures += 1
        top = self.broker.reconnect_max_s
        if auth:
            delay = max(top, self.t.auth_retry_s) * (1 - self.t.jitter * self._rng.random())
        else:
            delay = reconnect_delay(self._failures, self.broker.reconnect_min_s, top, self.t.jitter, self._rng)
        self._next_attempt = time.monotonic() + delay
        if reason is not None:
            log = _LOGGER.warning if self._failures == 1 else _LOGGER.info
            log("broker %s unreachable (%s); retrying in %.2fs%s", self.broker_url, reason, delay,
                f" with {self.broker.urls[self._next_url()]}" if len(self.broker.urls) > 1 else "")
        if not auth and len(self.broker.urls) > 1:
            self._url_index = self._next_url()  # the next broker gets the next attempt

    def _shutdown(self) -> None:
        self._mark_acked()
        if self._state == "connected":
            info = self._publish_status(online=False)
            deadline = time.monotonic() + self.t.stop_timeout_s
            while (
                info is not None and info.mid in self._status_mids
                and self._state == "connected" and time.monotonic() < deadline
            ):
                self._client.loop(timeout=self.t.loop_timeout_s)
                self._mark_acked()
        if self._state != "disconnected":
            self._client.disconnect()  # normal disconnect: the broker discards the will
            if self._client.socket() is not None:
                self._client.loop(timeout=self.t.loop_timeout_s)
                self._mark_acked()
        _LOGGER.info("uplink stopped; %d events unsent", self.outbox.stats().queue_depth)

    # -- paho callbacks (uplink thread) -----------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            name = str(reason_code)
            self._state = "disconnected"
            self._refused = name
            if name in AUTH_REFUSALS:
                self._schedule_retry(auth=True)
                _LOGGER.error(
                    "broker %s refused user %r: %s. Check [broker] username and password; "
                    "retrying in %.0fs", self.broker_url, self.broker.username, name,
                    self._next_attempt - time.monotonic(),
                )
            else:
                self._schedule_retry(reason=f"refused: {name}")
            return
        self._state = "connected"
        self._listening = False
        self._failures = 0
        self._refused = None
        _LOGGER.info("connected to %s (session %s)", self.broker_url,
                     "resumed" if flags.session_present else "new")
        client.subscribe([(self.topics["config"], 1), (self.topics["cmd"], 1)])
        now = time.monotonic()
        for entry in self._inflight.values():
            entry.sent_at = now  # paho resends these itself; give them a fresh timeout
        self._cursor = 0
        self._drain_needed = True
        self._next_heartbeat = 0.0
        self._update_snapshot()  # the listeners read the new state
        self._call(self.on_connection, True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        was = self._state
        self._state = "disconnected"
        self._listening = False
        if self._stopping.is_set():
            return
        if was == "connected":
            _LOGGER.warning("lost connection to %s (%s)", self.broker_url, reason_code)
            self._update_snapshot()
            self._call(self.on_connection, False)
        if self._next_attempt <= time.monotonic():
            self._schedule_retry(reason=str(reason_code) if was != "connected" else None)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [code for code in reason_codes if code.is_failure]
        for code in refused:
            _LOGGER.error("broker refused a subscription to config/cmd: %s (check the ACL)", code)
        self._listening = not refused

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        if mid in self._status_mids:
            self._status_mids.discard(mid)
            return
        entry = self._inflight.pop(mid, None)
        if entry is None:
            # A late ack for a batch already forgotten after ack_timeout_s: its events
            # were queued again and will be acknowledged under their new message id.
            # (An ack before publish() returned cannot happen: one thread does both.)
            _LOGGER.debug("ack for forgotten mid %d", mid)
            return
        self._settle(entry, ok=not reason_code.is_failure, reason=str(reason_code))

    def _settle(self, entry: _InFlight, *, ok: bool, reason: str) -> None:
        if ok:
            self._acked += entry.seqs  # marked when this loop turn ends (_mark_acked)
            self._last_ack_at = time.time()
            self._drain_needed = True
        else:
            self._inflight_seqs.difference_update(entry.seqs)
            _LOGGER.error("broker refused events %d..%d: %s; retrying in %.0fs",
                          entry.seqs[0], entry.seqs[-1], reason, self.t.ack_timeout_s)
            self._cursor = 0
            self._drain_paused_until = time.monotonic() + self.t.ack_timeout_s

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self.topics["config"]:
            self._handle_config(message.topic, message.payload)
        elif message.topic == self.topics["cmd"]:
            self._handle_command(message.topic, message.payload)

    # -- events -----------------------------------------------------------------

    def _mark_acked(self) -> None:
        """Record this loop turn's PUBACKs in the outbox, one transaction for all of them."""
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        self.outbox.mark_acked(acked)  # never raises: on a storage error they stay pending and go again
        self._inflight_seqs.difference_update(acked)

    def _drain(self, now: float) -> None:
        self._drain_needed = False
        self._next_drain_check = now + self.t.idle_drain_s
        if now < self._drain_paused_until:
            return
        budget = MAX_PAYLOAD_BYTES - 1024  # room for the batch envelope
        while len(self._inflight) < self.t.inflight_batches and self._state == "connected":
            seqs, payloads = self.outbox.next_batch(self.t.batch_events, budget, after_seq=self._cursor,
                                                    exclude=self._inflight_seqs)
            if not seqs:
                return
            payload = batch_payload(self.station_id, self.device_id, payloads)
            info = self._client.publish(self.topics["events"], payload, qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                _LOGGER.warning("publish of %d events failed: %s", len(seqs), mqtt.error_string(info.rc))
                return
            self._cursor = max(self._cursor, seqs[-1])
            self._inflight[info.mid] = _InFlight(tuple(seqs), time.monotonic())
            self._inflight_seqs.update(seqs)
            _LOGGER.debug("published %d events (seq %d..%d) as mid %d", len(seqs), seqs[0], seqs[-1], info.mid)

    def _expire_inflight(self, now: float) -> None:
        for mid, entry in list(self._inflight.items()):
            if now - entry.sent_at > self.t.ack_timeout_s:
                del self._inflight[mid]
                self._ack_timeouts += 1
                self._inflight_seqs.difference_update(entry.seqs)
                self._cursor = 0
                self._drain_needed = True
                _LOGGER.warning("no PUBACK for events %d..%d within %.1fs; sending them again",
                                entry.seqs[0], entry.seqs[-1], self.t.ack_timeout_s)

    # -- status -----------------------------------------------------------------

    def build_status(self, *, online: bool = True) -> StatusHeartbeat:
        stats = self.outbox.stats()
        h = self.health
        oldest = None if stats.oldest_queued_at is None else max(0.0, time.time() - stats.oldest_queued_at)
        return StatusHeartbeat(
            station_id=self.station_id,
            device_id=self.device_id,
            online=online,
            sent_at=now_utc(),
            software_version=h.software_version(),
            uptime_s=_bounded(round(h.uptime_s(), 1), 0, MAX_DURATION_S),
            queue_depth=stats.queue_depth,
            oldest_queued_age_s=None if oldest is None else _bounded(round(oldest, 1), 0, MAX_DURATION_S),
            shed_count=stats.shed_count,
            last_seq=stats.last_seq,
            epoch=self.outbox.epoch,
            clock_corrections=tuple(self.clock_watch.corrections) or None,
            held_from_seq=stats.held_from_seq,
            connected_at=self._connected_at,
            clock_synced=h.clock_synced(),
            config_version=self._station_config.config_version,
            cpu_temp_c=_bounded(h.cpu_temp_c(), *CPU_TEMP_RANGE_C),
            disk_free_mb=_bounded(h.disk_free_mb(), 0, MAX_DISK_MB),
            ip=h.local_ip(),
            last_command=self._last_command,
            config_error=self._config_error,
            **self._extra_status(),
            storage_error=stats.storage_error,
            accepts=CONFIG_FEATURES,
            survey_link_expires=link.expires if (link := self._station_config.survey_link) else None,
        )

    def _extra_status(self) -> dict:
        try:
            return self.status_extra() if self.status_extra is not None else {}
        except Exception:  # a status without the extras beats no status
            _LOGGER.exception("extra status fields failed")
            return {}

    def _publish_status(self, *, online: bool = True) -> mqtt.MQTTMessageInfo | None:
        self._next_heartbeat = time.monotonic() + self.broker.heartbeat_s
        info = self._client.publish(self.topics["status"], encode(self.build_status(online=online)),
                                    qos=1, retain=True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            _LOGGER.warning("status publish failed: %s", mqtt.error_string(info.rc))
            return None
        self._status_mids.add(info.mid)
        return info

    def _update_snapshot(self) -> None:
        nxt = self._next_attempt - time.monotonic() if self._state == "disconnected" else None
        self._snapshot = UplinkSnapshot(
            connected=self._state == "connected",
            last_ack_at=self._last_ack_at,
            inflight_batches=len(self._inflight),
            config_version=self._station_config.config_version,
            config_error=self._config_error,
            refused=self._refused,
            connect_attempts=self._attempts,
            next_retry_in_s=None if nxt is None else max(0.0, nxt),
            ack_timeouts=self._ack_timeouts,
        )

    # -- config and commands ------------------------------------------------------

    def _handle_config(self, topic_name: str, payload: bytes) -> None:
        if not payload:
            _LOGGER.info("retained config was cleared on the broker; keeping config %d",
                         self._station_config.config_version)
            return
        try:
            _, config = decode(topic_name, payload)
        except ContractError as exc:
            self._config_error = str(exc)[:500]
            _LOGGER.warning("rejected station config (%s); keeping config %d",
                            exc, self._station_config.config_version)
            self._next_heartbeat = 0.0
            return
        assert isinstance(config, StationConfig)
        self._config_error = None
        if config == self._station_config:
            return  # the retained copy, re-delivered on reconnect
        try:
            save_station_config(self.state_dir, config)
        except OSError as exc:
            _LOGGER.error("could not persist station config %d: %s (applied anyway)",
                          config.config_version, exc)
        self._station_config = config
        _LOGGER.info("applied station config %d", config.config_version)
        self._call(self.on_config, config)
        self._next_heartbeat = 0.0

    def _handle_command(self, topic_name: str, payload: bytes) -> None:
        try:
            _, cmd = decode(topic_name, payload)
        except ContractError as exc:
            _LOGGER.warning("ignored malformed command: %s", exc)
            return
        assert isinstance(cmd, Command)
        if cmd.cmd_id in self._recent_cmds:
            return  # QoS 1 redelivery
        self._recent_cmds = (self._recent_cmds + [cmd.cmd_id])[-50:]
        age_s = (now_utc() - cmd.issued_at).total_seconds()
        if cmd.name != "resend" and age_s > self.t.command_max_age_s and self.health.clock_synced():
            ok, detail = False, f"expired: issued {age_s / 60:.0f} min ago (limit {self.t.command_max_age_s / 60:.0f} min)"
        else:
            ok, detail = self._run_command(cmd)
        _LOGGER.info("command %s (%s): %s %s", cmd.name, cmd.cmd_id, "ok" if ok else "failed", detail)
        self._last_command = CommandAck(cmd_id=cmd.cmd_id, name=cmd.name, ok=ok, detail=detail[:500], at=now_utc())
        self._next_heartbeat = 0.0  # the ack goes out in the next status, now

    def _run_command(self, cmd: Command) -> tuple[bool, str]:
        if cmd.name == "resend":
            if cmd.from_seq is None:
                return False, "resend needs from_seq"
            self._mark_acked()  # acks read in this loop turn first: what the server asks for goes again
            count, lowest = self.outbox.resend_from(cmd.from_seq)
            self._cursor = 0
            self._drain_needed = True
            if lowest is None:
                return True, f"nothing held from seq {cmd.from_seq}"
            gone = f"; seq {cmd.from_seq}..{lowest - 1} no longer held" if lowest > cmd.from_seq else ""
            return True, f"{count} events queued again from seq {lowest}{gone}"
        if cmd.name == "identify":
            if self.on_identify is None:
                return False, "this kiosk has no lights to blink"
            return self._call(self.on_identify), "blinking"
        if cmd.name == "restart":
            if self.on_restart is None:
                return False, "restart is not supported by this process"
            self._restart_requested = True  # after the ack is published
            return True, "restarting"
        return False, f"unknown command {cmd.name}"

    @staticmethod
    def _call(callback: Callable | None, *args: object) -> bool:
        if callback is None:
            return True
        try:
            callback(*args)
            return True
        except Exception:
            _LOGGER.exception("uplink callback %r failed", callback)
            return False
