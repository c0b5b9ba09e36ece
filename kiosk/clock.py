"""Time on a Pi without a real-time clock: boot id, time since boot, and the correction at NTP sync.

After a power cut a Pi boots with the last saved time (fake-hwclock), hours or days
behind, and answers given before NTP sync would keep that wrong time for good. So
every event also carries the boot it was made in (``boot_id``, Linux's
/proc/sys/kernel/random/boot_id) and the seconds since that boot (``mono_s``,
CLOCK_BOOTTIME, which never jumps). When the clock synchronises, the true time of
an event of this boot is ``anchor + mono_s`` with ``anchor = now - boottime()``.

:class:`ClockWatch` does that once per boot, at the first poll that sees the clock
synced: events of this boot still queued (not in flight) get their ``ts`` rewritten
and ``ts_offset_s`` set (kiosk.outbox.Outbox.correct_boot); those already sent, or in
flight, are reported as a :class:`palaute_wire.contract.ClockCorrection` in status so
the server moves them too. Events of an earlier boot that never synced cannot be
dated: they keep ``clock_synced: false`` without ``ts_offset_s``, which is the mark.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from palaute_wire.contract import ClockCorrection

_LOGGER = logging.getLogger(__name__)

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
_FALLBACK_BOOT = uuid.uuid4()  # no /proc (not Linux): one "boot" per process
MAX_REPORTED = 5
"""Clock corrections repeated in every status (the newest), so a lost status does not lose one."""


def boot_id() -> uuid.UUID:
    try:
        return uuid.UUID(BOOT_ID_FILE.read_text().strip())
    except (OSError, ValueError):
        return _FALLBACK_BOOT


def boottime() -> float:
    """Seconds since boot, counting suspend; never set, never stepped."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return time.monotonic()


class ClockWatch:
    """Corrects this boot's unsynced events once the clock is synced; keeps what to tell the server."""

    def __init__(self, outbox, clock_synced: Callable[[], bool | None], *,
                 wall: Callable[[], float] = time.time, mono: Callable[[], float] = boottime,
                 boot: Callable[[], uuid.UUID] = boot_id) -> None:
        self.outbox = outbox
        self.clock_synced = clock_synced
        self.wall, self.mono, self.boot = wall, mono, boot
        self.done = False
        saved = outbox.get_meta("clock_corrections")
        self.corrections: list[ClockCorrection] = (
            [ClockCorrection.model_validate(c) for c in json.loads(saved)] if saved else [])

    def poll(self, in_flight: Iterable[int] = ()) -> ClockCorrection | None:
        """Call often (the uplink does, every step); cheap until the clock first reads synced."""
        if self.done or not self.clock_synced():
            return None
        self.done = True
        anchor = self.wall() - self.mono()
        fixed, sent = self.outbox.correct_boot(self.boot(), anchor, set(in_flight))
        correction = None
        if sent is not None:
            first, last, offset = sent
            correction = ClockCorrection(boot_id=self.boot(), epoch=self.outbox.epoch, first_seq=first,
                                         last_seq=last, offset_s=round(offset, 3),
                                         synced_at=datetime.fromtimestamp(self.wall(), UTC))
            self.corrections = (self.corrections + [correction])[-MAX_REPORTED:]
            self.outbox.set_meta("clock_corrections", json.dumps(
                [c.model_dump(mode="json") for c in self.corrections]))
        if fixed or sent:
            _LOGGER.warning("clock synced: %d queued answers of this boot re-dated%s", fixed,
                            f"; seq {sent[0]}..{sent[1]} already sent, {sent[2]:+.0f} s reported to the server"
                            if sent else "")
        return correction
