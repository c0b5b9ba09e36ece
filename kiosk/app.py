"""Runtime wiring of one kiosk process: config -> outbox -> recorder -> uplink -> buttons.

Why a class that every mode shares: the touch UI, the physical buttons, the
``--simulate`` mode and the self-test must all record answers through the same
path (``Kiosk.press_smiley`` / ``Kiosk.answer_followup`` -> ``Recorder.record``)
and report through the same uplink. A mode only adds a front end:

    with Kiosk(config) as kiosk:          # opens the outbox, builds the uplink
        kiosk.start()                     # buttons + uplink thread
        ... front end ...                 # simulator thread, or Kivy's App.run()
        kiosk.wait()                      # headless: block until request_stop()

Seams for the UI and for later work:
- ``kiosk.recorder.on_recorded``: every stored answer (touch *or* button), e.g. to
  show the thank-you screen after a physical press.
- ``kiosk.config_listeners``: a new station config was applied (uplink thread).
- ``kiosk.connection_listeners``: the broker connection came up (True) or went (False)
  (uplink thread), e.g. to report health at once instead of at the next tick.
- ``kiosk.button_handler``: what a physical smiley press does; defaults to
  ``press_smiley``; a UI may replace it (e.g. to add flags) before ``start()``.
- ``kiosk.tick_hooks`` run every ``TICK_S`` from ``wait()`` (or a UI clock calls
  ``kiosk.tick()``): the place for the systemd watchdog ping.
- ``kiosk.snapshot()``: everything the staff screen shows, without feedback data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Self
from uuid import UUID

from palaute_wire.contract import EventFlag, FeedbackEvent, FollowupQuestion, Lang, StationConfig
from palaute_wire.surveys import default_station_config, followup_for

from .answers import AnswerDesk
from .buttons import ButtonPanel
from .config import KioskConfig
from .feedback import Recorder
from .health import Health
from .outbox import Outbox, OutboxStats
from .pinmap import PinMap, load_pinmap
from .state import load_station_config
from .uplink import Uplink, UplinkSnapshot, UplinkTunables

_LOGGER = logging.getLogger(__name__)

RESTART_EXIT_CODE = 75
"""Exit status after a "restart" command (EX_TEMPFAIL); systemd's Restart= starts the kiosk again."""

TICK_S = 5.0
"""Period of ``tick_hooks`` in ``wait()``; well under a systemd WatchdogSec of 30 s."""


@dataclass(frozen=True)
class KioskSnapshot:
    """For the staff screen and the self-test: device state, never feedback content."""

    station_id: str
    device_id: str
    uplink: UplinkSnapshot
    outbox: OutboxStats
    software_version: str | None
    clock_synced: bool | None
    ip: str | None


class Kiosk:
    """One kiosk: owns the outbox, recorder, uplink and (after ``start``) the buttons."""

    def __init__(
        self,
        config: KioskConfig,
        *,
        pin_factory=None,
        clock_synced_override: bool | None = None,
        uplink_tunables: UplinkTunables = UplinkTunables(),
        pinmap: PinMap | None = None,
    ) -> None:
        self.config = config
        self.station_id = config.device.station_id
        self.device_id = config.device.device_id
        self.pinmap = pinmap or load_pinmap(config.hardware.pin_map)
        self._pin_factory = pin_factory
        self.health = Health(
            outbox_dir=config.outbox.path.parent,
            broker_host=config.broker.host,
            clock_synced_override=clock_synced_override,
        )
        self.outbox = Outbox(
            config.outbox.path,
            max_events=config.outbox.max_events,
            retention_s=config.outbox.retention_days * 86400,
        )
        stored = load_station_config(config.state.dir, self.station_id)
        self._from_server = stored is not None
        self._station_config = stored or default_station_config(self.station_id)
        self.recorder = Recorder(
            self.outbox,
            station_id=self.station_id,
            device_id=self.device_id,
            clock_synced=lambda: bool(self.health.clock_synced()),
            survey_version=self._station_config.survey_version,
        )
        desk_config = self._station_config
        if self.default_lang != desk_config.default_lang:
            desk_config = desk_config.model_copy(update={"default_lang": self.default_lang})
        self.desk = AnswerDesk(self.recorder, desk_config)
        """Counting rules (burst, out-of-hours) for buttons and touch alike: kiosk.answers."""
        self.config_listeners: list[Callable[[StationConfig], None]] = []
        self.connection_listeners: list[Callable[[bool], None]] = []
        self.tick_hooks: list[Callable[[], None]] = []
        self.button_handler: Callable[[int], object] = lambda value: self.desk.smiley(value, source="button")
        self.listen_handler: Callable[[], object] | None = None
        """The fifth "listen" button; the UI sets it when audio is on."""
        self.buttons: ButtonPanel | None = None
        self.uplink = Uplink(
            config.broker,
            self.station_id,
            self.device_id,
            self.outbox,
            health=self.health,
            state_dir=config.state.dir,
            station_config=self._station_config,
            on_config=self._apply_config,
            on_identify=self.identify,
            on_restart=lambda: self.request_stop(RESTART_EXIT_CODE),
            on_connection=self._connection_changed,
            tunables=uplink_tunables,
        )
        self.recorder.on_recorded.append(self.uplink.wake)
        self.exit_code = 0
        self._stop = threading.Event()
        self._closed = False
        self._started = False

    # -- answers (the one path for touch, buttons and simulator) ----------------

    @property
    def station_config(self) -> StationConfig:
        return self._station_config

    @property
    def default_lang(self) -> Lang:
        """The station's language; the kiosk's [ui] default_lang until the server says otherwise."""
        if not self._from_server:
            return self.config.ui.default_lang
        return self._station_config.default_lang

    def press_smiley(self, value: int, *, lang: Lang | None = None, flags: Iterable[EventFlag] = ()) -> FeedbackEvent:
        """Store one smiley answer durably and return it."""
        return self.recorder.record(
            "smiley", value,
            question_id=self._station_config.survey.question_id,
            lang=lang or self.default_lang,
            flags=flags,
        )

    def followup_for(self, value: int) -> FollowupQuestion | None:
        return followup_for(self._station_config, value)

    def answer_followup(
        self, question_id: str, option_id: str, answer_to: UUID, *, lang: Lang | None = None,
        flags: Iterable[EventFlag] = (),
    ) -> FeedbackEvent:
        """Store the follow-up choice for the smiley event ``answer_to``."""
        return self.recorder.record(
            "followup", option_id, question_id=question_id, lang=lang or self.default_lang,
            answer_to=answer_to, flags=flags,
        )

    # -- lifecycle ------------------------------------------------------------

    def start(self, *, buttons: bool = True) -> Kiosk:
        """Claim the pins (if ``buttons``) and start the uplink thread."""
        if self._started:
            raise RuntimeError("kiosk already started")
        self._started = True
        if buttons:
            hw = self.config.hardware
            self.buttons = ButtonPanel(
                self.pinmap,
                lambda value: self.button_handler(value),
                bounce_time_s=hw.bounce_time_s,
                confirm_s=hw.confirm_s,
                on_listen=lambda: self.listen_handler() if self.listen_handler else None,
                pin_factory=self._pin_factory,
            )
        self.uplink.start()
        stats = self.outbox.stats()
        _LOGGER.info("kiosk %s/%s started; %d events waiting, config %d",
                     self.station_id, self.device_id, stats.queue_depth, self._station_config.config_version)
        return self

    def request_stop(self, exit_code: int = 0) -> None:
        """Ask ``wait()`` to return (signal handlers, the restart command, a UI's quit)."""
        self.exit_code = exit_code
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self) -> int:
        """Block until ``request_stop``, running ``tick_hooks`` every TICK_S; returns the exit code."""
        while not self._stop.wait(TICK_S):
            self.tick()
        return self.exit_code

    def tick(self) -> None:
        for hook in list(self.tick_hooks):
            try:
                hook()
            except Exception:
                _LOGGER.exception("tick hook %r failed", hook)

    def close(self) -> None:
        """Stop buttons and uplink (clean offline status, no Last Will), close the outbox. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self.buttons is not None:
            self.buttons.close()
        self.uplink.stop()
        self.outbox.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state for staff screen / selftest -------------------------------------

    def snapshot(self) -> KioskSnapshot:
        return KioskSnapshot(
            station_id=self.station_id,
            device_id=self.device_id,
            uplink=self.uplink.snapshot(),
            outbox=self.outbox.stats(),
            software_version=self.health.software_version(),
            clock_synced=self.health.clock_synced(),
            ip=self.health.local_ip(),
        )

    def identify(self) -> None:
        if self.buttons is None:
            raise RuntimeError("no buttons/LEDs in this mode")
        self.buttons.identify()

    # -- uplink callbacks (uplink thread) --------------------------------------

    def _apply_config(self, config: StationConfig) -> None:
        self._station_config = config
        self._from_server = True
        self.recorder.survey_version = config.survey_version
        self.desk.set_config(config)
        for listener in list(self.config_listeners):
            try:
                listener(config)
            except Exception:
                _LOGGER.exception("config listener %r failed", listener)

    def _connection_changed(self, connected: bool) -> None:
        if self.buttons is not None:
            self.buttons.set_connected(connected)
        for listener in list(self.connection_listeners):
            try:
                listener(connected)
            except Exception:
                _LOGGER.exception("connection listener %r failed", listener)
