"""What the staff screen shows, gathered by the runtime and passed in as a callable.

Deliberately only device and connection facts: the staff screen must never
show feedback data (answers, counts), so nothing here can carry them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime


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
