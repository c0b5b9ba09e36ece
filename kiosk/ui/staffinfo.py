"""What the staff screen shows, gathered by the runtime and passed in as a callable.

Deliberately only device and connection facts: the staff screen must never
show feedback data (answers, counts), so nothing here can carry them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kiosk.i18n import N_


@dataclass(frozen=True)
class StaffInfo:
    device_id: str
    station_id: str
    station_name: str = ""
    broker: str = ""
    """Where the kiosk sends answers, e.g. mqtts://broker.example.fi:8883."""
    connected: bool = False
    queue_depth: int = 0
    last_send: datetime | None = None
    version: str = ""
    clock_synced: bool = False
    config_version: int = 0
    config_error: str | None = None
    """Why the newest station config from the server was rejected (the last good one is in use)."""
    refused: str | None = None
    """Why the broker refused the kiosk's login (user name or password), until it accepts."""
    next_retry_in_s: float | None = None
    """While not connected: when the next connection attempt is."""
    storage_error: str | None = None
    """The outbox's problem ('disk_full: ...', 'write_failed: ...', 'corrupt_replaced: ...') or None."""
    held: int = 0
    """Answers waiting in memory because the disk refused them."""


StaffInfoSource = Callable[[], StaffInfo]


def ago(when: datetime | None, now: datetime | None = None) -> str | None:
    """'12 s', '5 min', '3 h', '2 d' since ``when``; None when never."""
    if when is None:
        return None
    seconds = max(0.0, ((now or datetime.now(UTC)) - when).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


OK, BAD, WARN, PLAIN = "ok", "bad", "warn", ""
"""Row states: each has its own colour and mark on the staff screen, so "not connected"
never looks like "connected"."""


def staff_rows(info: StaffInfo, tr: Callable[[str], str]) -> list[tuple[str, str, str]]:
    """(label, value, state) rows of the staff screen, in the language ``tr`` translates to."""
    if info.connected:
        connection = (tr(N_("Connected")), OK)
    elif info.refused:
        connection = (tr(N_("Refused: the server did not accept the user name or password.")), BAD)
    else:
        connection = (tr(N_("No connection: the server cannot be reached.")), BAD)
    if not info.connected and info.next_retry_in_s is not None:
        retry = tr(N_("Next try in {seconds} s.")).format(seconds=round(info.next_retry_in_s))
        connection = (connection[0] + " " + retry, connection[1])
    last = ago(info.last_send)
    kind = (info.storage_error or "").split(":", 1)[0]
    if kind == "disk_full":
        storage = (tr(N_("Answers cannot be saved: the disk is full.")), BAD)
    elif kind == "write_failed":
        storage = (tr(N_("Answers cannot be saved: storage error.")), BAD)
    elif kind == "corrupt_replaced":
        storage = (tr(N_("The answer file was damaged. A new one was started.")), WARN)
    else:
        storage = (tr(N_("Answers are saved.")), OK)
    if info.held:
        held = tr(N_("{count} answers wait in memory.")).format(count=info.held)
        storage = (storage[0] + " " + held, storage[1])
    if info.config_error:
        settings = (tr(N_("Version {version}. The newest settings were rejected: {error}")).format(
            version=info.config_version, error=info.config_error), WARN)
    else:
        settings = (str(info.config_version), PLAIN)
    return [
        (tr(N_("Device")), info.device_id, PLAIN),
        (tr(N_("Server connection")), *connection),
        (tr(N_("Storage")), *storage),
        (tr(N_("Unsent answers")), str(info.queue_depth), WARN if info.queue_depth and not info.connected else PLAIN),
        (tr(N_("Last send")), tr(N_("{time} ago")).format(time=last) if last else tr(N_("Never")), PLAIN),
        (tr(N_("Clock")), *((tr(N_("On time")), OK) if info.clock_synced else (tr(N_("Not on time")), WARN))),
        (tr(N_("Settings")), *settings),
        (tr(N_("Message server")), info.broker or "-", PLAIN),
        (tr(N_("Version")), info.version or "-", PLAIN),
    ]


def station_line(info: StaffInfo) -> str:
    """The station's whole name and id: never shortened on the staff screen."""
    return f"{info.station_name} ({info.station_id})" if info.station_name else info.station_id
