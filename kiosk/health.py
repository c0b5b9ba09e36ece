"""What the kiosk reports about itself in its status heartbeat.

Why "never raises": the heartbeat is how IT learns that a kiosk is sick, so a
missing sensor or a failing command must not take the heartbeat down with it.
Every reading returns None when it cannot be known, and the status shows a gap.

Clock sync matters because a Pi has no real-time clock: until NTP syncs, event
times may be far off, and each event carries ``clock_synced`` so the server can
tell. The answer is cached briefly because the Recorder asks on every press.
"""

from __future__ import annotations

import functools
import logging
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

CLOCK_SYNC_CACHE_S = 30.0
"""How long a clock-sync answer is reused; a press must not wait for timedatectl."""

TIMEDATECTL_TIMEOUT_S = 2.0


@functools.cache
def _running_version() -> str | None:
    """The version this process runs: read once, since its code does not change under it (reading
    the package metadata took 5-6 ms, at every status)."""
    try:
        return metadata.version("palaute")
    except metadata.PackageNotFoundError:
        return None


@dataclass
class Health:
    """Readings for one kiosk process. Paths are parameters so tests can point them elsewhere."""

    outbox_dir: Path
    broker_host: str = "127.0.0.1"
    clock_synced_override: bool | None = None
    """Set in --simulate mode (or tests): report this instead of asking the system."""
    thermal_path: Path = Path("/sys/class/thermal/thermal_zone0/temp")
    timesync_flag: Path = Path("/run/systemd/timesync/synchronized")
    started: float = field(default_factory=time.monotonic)
    _sync_cache: tuple[float, bool | None] | None = field(default=None, repr=False)

    def uptime_s(self) -> float:
        """Seconds since this kiosk process started (not the machine)."""
        return max(0.0, time.monotonic() - self.started)

    def cpu_temp_c(self) -> float | None:
        try:
            return round(int(self.thermal_path.read_text().strip()) / 1000.0, 1)
        except (OSError, ValueError):
            return None

    def disk_free_mb(self) -> float | None:
        """Free space where the outbox lives: a full disk stops answers being stored."""
        path = self.outbox_dir
        try:
            while not path.exists() and path != path.parent:
                path = path.parent
            return round(shutil.disk_usage(path).free / 2**20, 1)
        except OSError:
            return None

    def software_version(self) -> str | None:
        return _running_version()

    def clock_synced(self) -> bool | None:
        if self.clock_synced_override is not None:
            return self.clock_synced_override
        now = time.monotonic()
        if self._sync_cache is not None and now - self._sync_cache[0] < CLOCK_SYNC_CACHE_S:
            return self._sync_cache[1]
        value = self._ask_clock_synced()
        self._sync_cache = (now, value)
        return value

    def _ask_clock_synced(self) -> bool | None:
        try:
            if self.timesync_flag.exists():
                return True
        except OSError:
            pass
        try:
            out = subprocess.run(
                ["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True, text=True, timeout=TIMEDATECTL_TIMEOUT_S, check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        answer = out.stdout.strip().lower()
        if out.returncode != 0 or answer not in ("yes", "no"):
            return None
        return answer == "yes"

    def local_ip(self) -> str | None:
        """The address this machine uses toward the broker.

        A UDP socket's connect() only picks a route; no packet is sent.
        """
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect((self.broker_host or "192.0.2.1", 9))
                return sock.getsockname()[0]
        except OSError:
            return None
