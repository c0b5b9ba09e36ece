"""A pristine arm64 Debian 12 root under qemu-user, for the first-boot test and the update benchmark.

tests/support/arm64-root.sh builds the root once (with the kiosk's Debian packages) and caches
it as a tarball under /var/tmp/palaute-arm64; :func:`unpacked_root` unpacks a private copy beside
it, mounts /proc and /dev, puts a recorder in place of ``systemctl`` (no init runs in a chroot)
and removes it all afterwards. The cached tarball itself is never changed. Needs root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("PALAUTE_ARM64_CACHE", "/var/tmp/palaute-arm64"))
RECORDER = """#!/bin/sh
# systemctl stand-in for the arm64 root: records each call, changes nothing. `show UNIT
# --property=NRestarts --value` prints the count a unit stand-in keeps in /var/log/nrestarts-UNIT.
echo "$*" >> /var/log/systemctl-calls
if [ "$1" = show ] && [ "$3" = --property=NRestarts ]; then cat "/var/log/nrestarts-$2" 2>/dev/null || echo 0; fi
"""
CHROOT_ENV = ["/usr/bin/env", "-i", "HOME=/root", "LANG=C.UTF-8",
              "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def build_tarball(stdout_to_terminal: bool = True) -> Path:
    """The cached root's tarball (arm64-root.sh builds it on first use); CalledProcessError if it cannot."""
    run = subprocess.run(["bash", str(ROOT / "tests/support/arm64-root.sh")], stdout=subprocess.PIPE,
                         text=True, check=True)
    return Path(run.stdout.strip().splitlines()[-1])


@contextmanager
def unpacked_root(tarball: Path) -> Iterator[Path]:
    """A private copy of the root with /proc, /dev and the systemctl recorder; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="run.", dir=CACHE))
    mounts: list[Path] = []
    try:
        subprocess.run(["tar", "-C", str(root), "-xf", str(tarball)], check=True)
        for source, target, args in (("proc", "proc", ["-t", "proc"]), ("/dev", "dev", ["--bind"]),
                                     ("/dev/pts", "dev/pts", ["--bind"])):
            subprocess.run(["mount", *args, source, str(root / target)], check=True)
            mounts.append(root / target)
        recorder = root / "usr/local/bin/systemctl"
        recorder.write_text(RECORDER)
        recorder.chmod(0o755)
        yield root
    finally:
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(root, ignore_errors=True)


def in_root(root: Path, *argv: str, user: str | None = None, env: tuple[str, ...] = (),
            timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``argv`` inside the root (as ``user``) with a clean environment plus ``env``."""
    spec = ["--userspec", f"{user}:{user}"] if user else []
    return subprocess.run(["chroot", *spec, str(root), *CHROOT_ENV, *env, *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


def systemctl_calls(root: Path) -> list[str]:
    path = root / "var/log/systemctl-calls"
    return path.read_text().splitlines() if path.exists() else []


def unit_keys(text: str) -> dict[str, list[str]]:
    """A unit file's ``Key=value`` lines (every value of a repeated key, in order)."""
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def start_in_root(root: Path, *argv: str, user: str | None = None, env: tuple[str, ...] = (),
                  log: Path) -> subprocess.Popen:
    """Start ``argv`` inside the root (as ``user``, clean environment plus ``env``) in a session of
    its own (stop it with ``os.killpg``), its output appended to ``log``."""
    spec = ["--userspec", f"{user}:{user}"] if user else []
    with open(log, "ab") as out:
        return subprocess.Popen(["chroot", *spec, str(root), *CHROOT_ENV, *env, *argv], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
