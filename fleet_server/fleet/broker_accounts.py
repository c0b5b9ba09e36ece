"""Broker credentials and ACLs, kept with Mosquitto's own mechanisms.

The device registry in the database is the source of truth; this module renders it
into the two files Mosquitto already knows how to enforce and then asks the
running broker to re-read them:

- a ``password_file`` of ``user:$7$...`` lines: PBKDF2-SHA512 hashes in the exact
  format ``mosquitto_passwd`` writes (Mosquitto 2.x), computed here in Python so
  the server needs no extra binary. The database stores the same hash and never
  the secret, so the file can be regenerated at any time without knowing secrets.
- an ``acl_file``: one ``user`` block per active device allowing exactly its own
  four topics, one for the fleet server's account, and one per regional broker's
  bridge (``palaute-bridge-<name>``: what the kiosks behind it may, for every kiosk).

Why explicit per-user blocks and not ``pattern`` lines: a pattern can substitute
only the whole username (``%u``) or client id (``%c``), while our topics carry two
ids (station and device). Per-user lines are generated from the registry anyway,
so they cost nothing and allow exactly one station/device pair per account. A
device moved to another station gets its ACL changed on the next sync.

Retired (or unknown) devices are simply absent from both files: Mosquitto then
refuses their CONNECT, and a SIGHUP makes it re-check connected clients, so a
retired device that is still connected is disconnected and cannot publish.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fleet_server.core.errors import BrokerAuthError
from fleet_server.core.i18n import gettext as _
from palaute_wire.contract import TOPIC_ROOT, is_slug

_LOGGER = logging.getLogger(__name__)

HASH_ITERATIONS = 10_000
"""PBKDF2 rounds. ``mosquitto_passwd`` uses 101; Mosquitto reads the count from each
line, so more is accepted. The secrets are 256-bit random tokens, so this guards
only against a slow day for PBKDF2, not against guessing; it costs the broker
about 10 ms per CONNECT on a small machine."""

SALT_BYTES = 12
"""The salt length ``mosquitto_passwd`` uses."""

SECRET_BYTES = 32


@dataclass(frozen=True)
class DeviceAccount:
    """One device's broker account: the username is the device id."""

    station_id: str
    device_id: str
    password_hash: str

    @property
    def username(self) -> str:
        return self.device_id


@dataclass(frozen=True)
class ServerAccount:
    """The fleet server's own account: reads every device's events and status,
    writes every device's config and cmd."""

    username: str
    password_hash: str


BRIDGE_PREFIX = "palaute-bridge-"
"""A regional bridge's user name on the central broker: this prefix and the bridge's name."""


@dataclass(frozen=True)
class BridgeAccount:
    """A regional Mosquitto's bridge (deploy/mosquitto/regional-bridge.conf) on the central broker:
    it forwards the region's answers and statuses and brings configs and commands back, so it
    writes every kiosk's ``events`` and ``status`` and reads every kiosk's ``config`` and ``cmd``
    (kiosks of any station may use any region's broker as a fallback)."""

    name: str
    password_hash: str

    @property
    def username(self) -> str:
        return BRIDGE_PREFIX + self.name


# ----------------------------------------------------------------- secrets and hashes


def new_secret() -> str:
    """A fresh random device secret (URL-safe, 43 characters), shown once."""
    return secrets.token_urlsafe(SECRET_BYTES)


def mosquitto_hash(secret: str, *, iterations: int = HASH_ITERATIONS, salt: bytes | None = None) -> str:
    """The ``$7$`` line Mosquitto 2.x checks a password against (PBKDF2-HMAC-SHA512)."""
    if ":" in secret or "\n" in secret:
        raise ValueError("a broker password may not contain ':' or a newline")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_hash(secret: str, password_hash: str) -> bool:
    """True when ``secret`` matches a ``$7$`` hash (ours or ``mosquitto_passwd``'s)."""
    try:
        _, kind, iterations, salt, digest = password_hash.split("$")
        if kind != "7":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.pbkdf2_hmac("sha512", secret.encode(), base64.b64decode(salt), int(iterations), len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


# ----------------------------------------------------------------- rendering


def render_password_file(
    devices: Iterable[DeviceAccount], server: ServerAccount, bridges: Iterable[BridgeAccount] = ()
) -> str:
    lines = [
        "# Generated by palaute-server from the device registry; edits are overwritten.",
        f"{server.username}:{server.password_hash}",
    ]
    for bridge in sorted(bridges, key=lambda b: b.username):
        lines.append(f"{bridge.username}:{bridge.password_hash}")
    for device in sorted(devices, key=lambda d: d.username):
        lines.append(f"{device.username}:{device.password_hash}")
    return "\n".join(lines) + "\n"


def render_acl_file(
    devices: Iterable[DeviceAccount], server: ServerAccount, bridges: Iterable[BridgeAccount] = ()
) -> str:
    root = TOPIC_ROOT
    lines = [
        "# Generated by palaute-server from the device registry; edits are overwritten.",
        "# Anything not allowed here is denied. A denied PUBLISH is dropped by the broker;",
        "# a denied SUBSCRIBE delivers nothing.",
        "",
        f"user {server.username}",
        f"topic read {root}/+/+/events",
        f"topic read {root}/+/+/status",
        f"topic write {root}/+/+/config",
        f"topic write {root}/+/+/cmd",
        "topic readwrite palaute/_server/ingest/#",  # who holds the ingest session (fleet_server.ingest.consumer)
    ]
    for bridge in sorted(bridges, key=lambda b: b.username):
        if not is_slug(bridge.name):
            raise ValueError(f"bridge name {bridge.name!r} is not a slug; refusing to write it into an ACL")
        lines += [
            "",
            f"user {bridge.username}",
            f"topic write {root}/+/+/events",
            f"topic write {root}/+/+/status",
            f"topic read {root}/+/+/config",
            f"topic read {root}/+/+/cmd",
        ]
    for device in sorted(devices, key=lambda d: d.username):
        for name, value in (("station", device.station_id), ("device", device.device_id)):
            if not is_slug(value):
                # A slug cannot contain MQTT wildcards or '/', so it cannot widen an ACL.
                raise ValueError(f"{name} id {value!r} is not a slug; refusing to write it into an ACL")
        base = f"{root}/{device.station_id}/{device.device_id}"
        lines += [
            "",
            f"user {device.username}",
            f"topic write {base}/events",
            f"topic write {base}/status",
            f"topic read {base}/config",
            f"topic read {base}/cmd",
        ]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str, mode: int) -> bool:
    """Replace ``path`` atomically; return False when the content was already the same."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() == text:
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def write_broker_files(
    password_file: Path, acl_file: Path, devices: Iterable[DeviceAccount], server: ServerAccount,
    bridges: Iterable[BridgeAccount] = (),
) -> bool:
    """Write both files; return True when either changed (a reload is needed).

    The files are 0640: Mosquitto reads them as its own user, so install them in a
    directory group-owned by ``mosquitto`` (see docs/operations.md).
    """
    devices, bridges = list(devices), list(bridges)
    changed = _write_atomic(password_file, render_password_file(devices, server, bridges), 0o640)
    changed = _write_atomic(acl_file, render_acl_file(devices, server, bridges), 0o640) or changed
    return changed


def reload_broker(*, pid_file: Path | None = None, command: str | None = None) -> str:
    """Ask Mosquitto to re-read its password and ACL files.

    ``command`` (e.g. ``systemctl reload mosquitto``) wins over ``pid_file``; with
    neither, nothing is done and the caller is told so. Returns what was done.
    """
    if command:
        result = subprocess.run(shlex.split(command), check=False, capture_output=True, text=True, timeout=30)
        if result.returncode != 0:
            raise BrokerAuthError(_("the broker reload command {command} failed ({code}): {error}").format(
                command=repr(command), code=result.returncode, error=result.stderr.strip()))
        return _("ran {command}").format(command=repr(command))
    if pid_file:
        try:
            pid = int(Path(pid_file).read_text().strip())
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError) as exc:
            raise BrokerAuthError(_("cannot signal Mosquitto through the pid file {path}: {error}; is it running "
                                    "with `pid_file` set? Else set PALAUTE_BROKER_RELOAD_COMMAND").format(
                path=pid_file, error=exc)) from None
        return _("sent SIGHUP to process {pid}").format(pid=pid)
    return _("no reload signalled (on a server the palaute-broker-reload.path unit does it; else set "
             "PALAUTE_BROKER_PID_FILE or PALAUTE_BROKER_RELOAD_COMMAND)")
