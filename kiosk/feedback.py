"""Turning an answer into a durable FeedbackEvent: the one path for touch and buttons.

The screen (kiosk.ui), the physical buttons (kiosk.buttons) and the simulator all
call :meth:`Recorder.record`; it returns once the event is on disk, so whatever
the caller shows next ("thank you") is shown for an answer that is safe.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from uuid import UUID

import uuid6

from palaute_wire.contract import EventFlag, EventKind, FeedbackEvent, Lang, clamp_time

from .clock import boot_id, boottime
from .outbox import Outbox

_LOGGER = logging.getLogger(__name__)


@dataclass
class Recorder:
    """Makes events for one device and appends them to its outbox.

    ``clock_synced`` is asked at every answer (the Pi has no RTC, and NTP may sync
    at any moment); ``on_recorded`` callbacks run after the commit, e.g. to wake
    the uplink.
    """

    outbox: Outbox
    station_id: str
    device_id: str
    clock_synced: Callable[[], bool] = lambda: True
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    boot: Callable[[], UUID] = boot_id
    """The boot and the seconds since it (kiosk.clock): the time that does not depend on the wall clock."""
    mono: Callable[[], float] = boottime
    survey_version: int = 0
    on_recorded: list[Callable[[FeedbackEvent], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self,
        kind: EventKind,
        value: int | str,
        *,
        question_id: str,
        lang: Lang,
        answer_to: UUID | None = None,
        flags: Iterable[EventFlag] = (),
    ) -> FeedbackEvent:
        """Validate, store durably and return the event; raises ValueError on a bad answer."""
        read, since_boot, boot = self.now(), self.mono(), self.boot()
        ts = clamp_time(read)  # a clock outside the wire's window (1970) is kept, but as not synced
        synced = bool(self.clock_synced()) and ts == read
        event_id = uuid6.uuid7()

        def build(seq: int) -> FeedbackEvent:
            return FeedbackEvent(
                event_id=event_id,
                station_id=self.station_id,
                device_id=self.device_id,
                kind=kind,
                value=value,
                question_id=question_id,
                lang=lang,
                ts=ts,
                seq=seq,
                clock_synced=synced,
                survey_version=self.survey_version,
                answer_to=answer_to,
                flags=tuple(flags),
                epoch=self.outbox.epoch,
                boot_id=boot,
                mono_s=round(since_boot, 3),
            )

        with self._lock:
            event = self.outbox.append(build)
        _LOGGER.debug("recorded %s %s seq=%s", kind, value, event.seq)
        for callback in list(self.on_recorded):
            try:
                callback(event)
            except Exception:  # a listener must never undo or block a stored answer
                _LOGGER.exception("on_recorded listener failed for seq=%s", event.seq)
        return event
