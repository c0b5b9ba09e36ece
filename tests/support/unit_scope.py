"""Run one command the way systemd runs a unit: everything it starts goes down with it.

    python tests/support/unit_scope.py COMMAND [ARG...]

systemd keeps a unit's processes in one control group and stops them all together; the
update tests' systemd stand-in (tests/support/update_kiosk.py) gets the same from this
wrapper. It is started as the leader of a new process group (``start_new_session``) and
runs COMMAND in that group, so the updater's pip runs belong to its unit too. SIGTERM (a
stop, or the stand-in or pytest dying: the wrapper asks for SIGTERM at its parent's death)
is passed to COMMAND; whatever still runs after a grace period is killed, the whole group.
A power cut is ``os.killpg(pid, SIGKILL)`` from outside. The exit code is COMMAND's
(128 + the signal when a signal ended it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading

GRACE_S = 10.0
"""Less than tests.support.processes' own 15 s, so the group is killed before the wrapper is."""
_PR_SET_PDEATHSIG = 1


def _rest_of_group() -> list[int]:
    me, group = os.getpid(), os.getpgrp()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            try:
                if os.getpgid(int(entry)) == group:
                    pids.append(int(entry))
            except ProcessLookupError:
                pass
    return pids


def main(argv: list[str]) -> int:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    if os.getppid() == 1:  # the parent died before the death signal was asked for
        return 1
    child = subprocess.Popen(argv)
    while child.poll() is None:
        if stopping.wait(0.2):
            child.terminate()
            try:
                child.wait(GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            break
    code = child.poll()
    # Whatever the command left running in its group (a pip run) goes with it, as with systemd.
    # Only when this wrapper leads its own group: never the caller's.
    if os.getpgrp() == os.getpid():
        for pid in _rest_of_group():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if code is None:
        return 128 + signal.SIGKILL
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
