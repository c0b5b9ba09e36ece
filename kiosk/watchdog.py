"""systemd readiness and watchdog pings (sd_notify), without libsystemd.

palaute-kiosk.service is ``Type=notify`` with ``WatchdogSec=30``: systemd waits for
READY=1 before it calls the kiosk started, and kills and restarts it when no
WATCHDOG=1 arrives for 30 s. The pings come from the kiosk's tick hooks, which run on
the main loop (``Kiosk.wait()`` in headless/simulate modes, the Kivy clock in the UI),
so a hung UI or main loop stops the pings and systemd restarts the app.

Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping

_LOGGER = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, socket_path: str | None) -> None:
        self.address: str | bytes | None = None
        if socket_path:
            # A leading '@' names a socket in the abstract namespace.
            self.address = "\0" + socket_path[1:] if socket_path.startswith("@") else socket_path
        self._ready_sent = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SystemdNotifier:
        return cls(environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> bool:
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(state.encode(), self.address)
            return True
        except OSError as exc:  # systemd gone or socket unreadable: never take the kiosk down for it
            _LOGGER.warning("sd_notify %r failed: %s", state.split("\n", 1)[0], exc)
            return False

    def tick(self) -> None:
        """A tick hook: READY=1 with the first ping (the main loop is running), then WATCHDOG=1."""
        if not self._ready_sent:
            self._ready_sent = self.notify("READY=1\nSTATUS=answering\nWATCHDOG=1")
        else:
            self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")
