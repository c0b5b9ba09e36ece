"""Processes a test starts, owned by one object that stops them all, also when the test fails.

Every long-running process in the suite (the fleet server, a simulated kiosk) is started
through :class:`Processes` (the ``processes`` fixture in tests/conftest.py), never with a
bare ``subprocess.Popen``: the fixture's teardown sends SIGTERM, then SIGKILL after a grace
period. And because a teardown does not run when pytest itself is killed (a CI timeout, a
Ctrl-C pressed twice), each child also asks the kernel for SIGKILL when its parent dies
(``PR_SET_PDEATHSIG``): no orphan outlives the run.
"""

from __future__ import annotations

import functools
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from fleet_server.devtools.local_broker import die_with_parent

_die_with_parent = functools.partial(die_with_parent, signal.SIGKILL)  # runs in the child between fork and exec


class Processes:
    """Start processes; :meth:`close` stops whichever still run (idempotent)."""

    def __init__(self) -> None:
        self._running: list[tuple[subprocess.Popen, IO[bytes] | None]] = []

    def start(self, argv: Sequence[str], *, log: Path | None = None, **popen: Any) -> subprocess.Popen:
        """``subprocess.Popen(argv)``; with ``log`` its stdout and stderr are appended to that file."""
        handle = open(log, "ab") if log is not None else None  # noqa: SIM115 - closed in stop()
        if handle is not None:
            popen.setdefault("stdout", handle)
            popen.setdefault("stderr", subprocess.STDOUT)
        try:
            proc = subprocess.Popen(list(argv), preexec_fn=_die_with_parent, **popen)  # noqa: PLW1509
        except BaseException:
            if handle is not None:
                handle.close()
            raise
        self._running.append((proc, handle))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 15) -> int:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for entry in [e for e in self._running if e[0] is proc]:
            self._running.remove(entry)
            if entry[1] is not None:
                entry[1].close()
        return proc.returncode

    def close(self) -> None:
        for proc, _ in list(reversed(self._running)):
            self.stop(proc)

    def __enter__(self) -> Processes:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
