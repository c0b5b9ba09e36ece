"""The device registry: stations, devices, their broker credentials, and the
provisioning bundle that turns a blank SD card into a working kiosk.

Life of a device:
    provision -> state "provisioned", a random secret shown once (only its hash is
                 kept), a bundle written; the broker accepts it from the next sync.
    first valid message -> "active" (the ingest, in the same transaction).
    rotate    -> a new secret and bundle; the old secret stops working at the
                 next sync. This is also how a broken Pi is replaced: the new
                 card gets the same device id and a fresh secret.
    retire    -> "retired", credentials deleted; the next sync removes it from the
                 broker's files and the reload disconnects it. Its history stays.

Every change to credentials is followed by :func:`sync_broker`, which rebuilds the
Mosquitto password and ACL files from the database (see fleet_server.fleet.broker_accounts).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.core.clock import utcnow
from fleet_server.core.errors import ProvisioningError
from fleet_server.core.i18n import N_, ngettext
from fleet_server.core.i18n import gettext as _
from fleet_server.fleet.broker_accounts import (
    BRIDGE_PREFIX,
    BridgeAccount,
    DeviceAccount,
    ServerAccount,
    mosquitto_hash,
    new_secret,
    reload_broker,
    verify_hash,
    write_broker_files,
)
from fleet_server.models import BrokerBridge, Device, DeviceCredential, Station
from palaute_wire.contract import is_slug
from palaute_wire.opening_hours import LOCAL_ZONE_NAME

_LOGGER = logging.getLogger(__name__)

KIOSK_USER = "palaute"
"""The Linux account the kiosk runs as on the Pi."""
ETC_DIR = "/etc/palaute"
RELEASES_DIR = "/opt/palaute/releases"
KIOSK_UNITS = ("palaute-kiosk.service", "palaute-kiosk-updater.service")
"""The kiosk's systemd units, shipped in every bundle; install-kiosk.sh enables both."""


# ----------------------------------------------------------------- registry


_NOT_A_SLUG = {
    "station": N_("station id {id} is not a slug: use 1-64 characters a-z, 0-9 and '-' (e.g. kalvia)"),
    "device": N_("device id {id} is not a slug: use 1-64 characters a-z, 0-9 and '-' (e.g. kalvia-1)"),
    "bridge": N_("bridge name {id} is not a slug: use 1-64 characters a-z, 0-9 and '-' (e.g. keski-pohjanmaa)"),
}


def _check_slug(kind: str, value: str) -> None:
    if not is_slug(value):
        raise ProvisioningError(_(_NOT_A_SLUG[kind]).format(id=repr(value)))


def add_station(session: Session, station_id: str, name: str) -> Station:
    _check_slug("station", station_id)
    if not name.strip():
        raise ProvisioningError(_("a station needs a name people recognise, e.g. --name 'Kälviä health station'"))
    existing = session.get(Station, station_id)
    if existing is not None:
        raise ProvisioningError(_("station {station} already exists (named {name})").format(
            station=repr(station_id), name=repr(existing.name)))
    station = Station(id=station_id, name=name.strip())
    session.add(station)
    session.flush()
    return station


def provision_device(
    session: Session, device_id: str, station_id: str, *, name: str | None = None
) -> tuple[Device, str]:
    """Register a new device with fresh credentials; return it and its secret (shown once)."""
    _check_slug("device", device_id)
    if device_id.startswith(BRIDGE_PREFIX):
        raise ProvisioningError(_("device ids starting with {prefix} are the regional bridges' accounts").format(
            prefix=repr(BRIDGE_PREFIX)))
    station = session.get(Station, station_id)
    if station is None:
        raise ProvisioningError(_("no station {station}; add it first: {command}").format(
            station=repr(station_id), command=f"palaute-server station add {station_id} --name '...'"))
    device = session.get(Device, device_id)
    if device is not None:
        hint = (
            _("its id stays retired; give the new kiosk a new id")
            if device.state == "retired"
            else _("to replace its Pi or renew its secret use: {command}").format(
                command=f"palaute-server device rotate {device_id}")
        )
        raise ProvisioningError(_("device {device} already exists ({state}, station {station}); {hint}").format(
            device=repr(device_id), state=device.state, station=device.station_id, hint=hint))
    device = Device(id=device_id, station_id=station_id, name=name, state="provisioned")
    session.add(device)
    session.flush()
    secret = new_secret()
    session.add(DeviceCredential(device_id=device_id, username=device_id, password_hash=mosquitto_hash(secret)))
    session.flush()
    return device, secret


def _live_device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise ProvisioningError(_("no device {device} (see: {command})").format(
            device=repr(device_id), command="palaute-server device list"))
    if device.state == "retired":
        raise ProvisioningError(_("device {device} is retired; provision a new id instead").format(device=repr(device_id)))
    return device


def rotate_secret(session: Session, device_id: str) -> tuple[Device, str]:
    """A new secret for a device; the old one stops working at the next broker sync."""
    device = _live_device(session, device_id)
    secret = new_secret()
    credential = session.get(DeviceCredential, device_id)
    if credential is None:  # e.g. a device the ingest registered before the registry existed
        session.add(DeviceCredential(device_id=device_id, username=device_id, password_hash=mosquitto_hash(secret)))
    else:
        credential.password_hash = mosquitto_hash(secret)
        credential.rotated_at = utcnow()
    session.flush()
    return device, secret


def retire_device(session: Session, device_id: str) -> Device:
    device = _live_device(session, device_id)
    device.state = "retired"
    device.online = False
    credential = session.get(DeviceCredential, device_id)
    if credential is not None:
        session.delete(credential)
    session.flush()
    return device


@dataclass(frozen=True)
class DeviceRow:
    device_id: str
    station_id: str
    state: str
    has_credentials: bool
    online: bool
    last_seen_at: datetime | None
    software_version: str | None


def list_devices(session: Session, station_id: str | None = None) -> list[DeviceRow]:
    query = select(Device, DeviceCredential.device_id).outerjoin(
        DeviceCredential, DeviceCredential.device_id == Device.id
    )
    if station_id is not None:
        query = query.where(Device.station_id == station_id)
    rows = session.execute(query.order_by(Device.station_id, Device.id)).all()
    return [
        DeviceRow(d.id, d.station_id, d.state, cred is not None, d.online, d.last_seen_at, d.software_version)
        for d, cred in rows
    ]


# ----------------------------------------------------------------- broker sync


@dataclass(frozen=True)
class BrokerFiles:
    """Where the server writes Mosquitto's files and how it makes Mosquitto reload."""

    password_file: Path
    acl_file: Path
    pid_file: Path | None = None
    reload_command: str | None = None


def broker_accounts(session: Session) -> list[DeviceAccount]:
    rows = session.execute(
        select(Device.station_id, Device.id, DeviceCredential.password_hash)
        .join(DeviceCredential, DeviceCredential.device_id == Device.id)
        .where(Device.state != "retired")
    ).all()
    return [DeviceAccount(station_id, device_id, password_hash) for station_id, device_id, password_hash in rows]


def bridge_accounts(session: Session) -> list[BridgeAccount]:
    return [BridgeAccount(b.name, b.password_hash) for b in session.scalars(select(BrokerBridge))]


def add_bridge(session: Session, name: str) -> str:
    """A regional broker's bridge account (``palaute-bridge-<name>``); returns its secret (shown once).

    Adding an existing name gives it a new secret (the old one stops working at the next sync).
    """
    _check_slug("bridge", name)
    if session.get(Device, BRIDGE_PREFIX + name) is not None:
        raise ProvisioningError(_("a device is named {name}; choose another bridge name").format(
            name=repr(BRIDGE_PREFIX + name)))
    secret = new_secret()
    bridge = session.get(BrokerBridge, name)
    if bridge is None:
        session.add(BrokerBridge(name=name, password_hash=mosquitto_hash(secret)))
    else:
        bridge.password_hash, bridge.rotated_at = mosquitto_hash(secret), utcnow()
    session.flush()
    return secret


def remove_bridge(session: Session, name: str) -> None:
    bridge = session.get(BrokerBridge, name)
    if bridge is None:
        raise ProvisioningError(_("no bridge {name} (see: {command})").format(
            name=repr(name), command="palaute-server broker bridges"))
    session.delete(bridge)
    session.flush()


def _server_account(files: BrokerFiles, username: str, password: str) -> ServerAccount:
    """The server's own account; the existing hash is kept while it still matches, so an
    unchanged registry rewrites nothing and needs no reload."""
    if files.password_file.exists():
        for line in files.password_file.read_text().splitlines():
            user, _, existing = line.partition(":")
            if user == username and verify_hash(password, existing):
                return ServerAccount(username, existing)
    return ServerAccount(username, mosquitto_hash(password))


def sync_broker(session: Session, files: BrokerFiles, server_username: str, server_password: str) -> str:
    """Rewrite the broker's password and ACL files from the registry and reload it.

    Returns what happened, for the operator. Call after committing registry changes.
    """
    accounts = broker_accounts(session)
    bridges = bridge_accounts(session)
    server = _server_account(files, server_username, server_password)
    counted = ngettext("{n} device account", "{n} device accounts", len(accounts)).format(n=len(accounts))
    if bridges:
        counted += ", " + ngettext("{n} bridge", "{n} bridges", len(bridges)).format(n=len(bridges))
    if not write_broker_files(files.password_file, files.acl_file, accounts, server, bridges):
        return _("broker files unchanged ({counted})").format(counted=counted)
    done = reload_broker(pid_file=files.pid_file, command=files.reload_command)
    return _("broker files written ({counted}); {done}").format(counted=counted, done=done)


# ----------------------------------------------------------------- the bundle


@dataclass(frozen=True)
class BundleOptions:
    broker_url: str
    """What the kiosk connects to, e.g. mqtts://mqtt.palaute.example.fi:8883."""
    ca_file: Path | None
    """The broker's CA certificate, copied into the bundle (mqtts only)."""
    wheelhouse: Path | None = None
    """The kiosk's wheelhouse (fleet_server.fleet.wheelhouse, ``palaute-server device wheelhouse``),
    copied into every bundle as wheelhouse/ (hard links where it can): the Pi installs only from it."""
    ssh_authorized_keys: tuple[str, ...] = ()
    """IT's public keys for the admin account the first boot creates (none: no SSH login)."""
    admin_user: str = "palaute-admin"
    timezone: str = LOCAL_ZONE_NAME
    mqtt_version: str = "5"
    """The kiosk's [broker] mqtt_version: the server's PALAUTE_MQTT_VERSION (one broker, one protocol)."""
    release_public_key: str | None = None
    """The operator's release signing key (public half, PALAUTE_RELEASE_PUBLIC_KEY), written into
    kiosk.toml ``[updates]``: the kiosk's updater installs only releases it signed. None: no updates."""


def _bundle_file(name: str) -> str:
    return resources.files("fleet_server.fleet").joinpath("bundle", name).read_text(encoding="utf-8")


def render_kiosk_toml(device: Device, options: BundleOptions) -> str:
    tls = options.broker_url.startswith("mqtts://")
    lines = [
        f"# Palaute kiosk {device.id} at station {device.station_id}: {ETC_DIR}/kiosk.toml",
        "# Written by palaute-server device provision; check with: palaute-kiosk check-config <file>",
        "# Relative paths are relative to this file's directory.",
        "",
        "[device]",
        f'station_id = "{device.station_id}"',
        f'device_id = "{device.id}"',
        "",
        "[broker]",
        f'url = "{options.broker_url}"',
        f'username = "{device.id}"',
        'password_file = "broker-password"',
    ]
    if tls and options.ca_file is not None:
        lines.append('ca_file = "ca.crt"')
    if options.mqtt_version != "5":
        lines.append(f'mqtt_version = "{options.mqtt_version}"  # the broker speaks only this (docs/operations.md)')
    lines += [
        "",
        "[outbox]",
        'path = "/var/lib/palaute/outbox.db"',
        "",
        "[state]",
        'dir = "/var/lib/palaute"',
        "",
    ]
    if options.release_public_key:
        lines += [
            "[updates]",
            "# Software updates (palaute-kiosk-updater): only releases signed with this key are installed.",
            f'release_public_key = "{options.release_public_key}"',
            "",
        ]
    return "\n".join(lines)


def debian_packages() -> list[str]:
    """The Debian packages a kiosk needs (bundle/debian-packages.txt, the one list):
    cloud-init's ``packages:`` and install-kiosk.sh both install these."""
    lines = (line.split("#", 1)[0].strip() for line in _bundle_file("debian-packages.txt").splitlines())
    return [line for line in lines if line]


class _CloudConfigDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, writing multi-line strings (file contents) as literal blocks.

    Only safe YAML comes out (plain strings, lists, mappings, booleans); every value is
    quoted or escaped as YAML needs, so an SSH key comment with ``: `` or `` #`` stays a string.
    """


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_CloudConfigDumper.add_representer(str, _represent_str)


def render_user_data(device: Device, options: BundleOptions, files: dict[str, tuple[str, str, str]]) -> str:
    """cloud-init user-data for Raspberry Pi OS images that ship cloud-init (Trixie, 2025-10 on).

    ``files`` maps a target path to (content, owner, octal permissions). Files owned
    by the kiosk user are written ``defer: true`` (after the user exists). Checked
    against cloud-init's own JSON schema in tests/server/test_provisioning.py.
    """
    users: list[dict[str, object]] = [{
        "name": KIOSK_USER,
        "gecos": "Palaute kiosk",
        "shell": "/usr/sbin/nologin",
        "lock_passwd": True,
        "groups": ["video", "render", "input", "gpio", "audio"],
        "no_create_home": False,
    }]
    if options.ssh_authorized_keys:
        users.append({
            "name": options.admin_user,
            "gecos": "Palaute IT",
            "shell": "/bin/bash",
            "lock_passwd": True,
            "sudo": "ALL=(ALL) NOPASSWD:ALL",
            "ssh_authorized_keys": list(options.ssh_authorized_keys),
        })
    write_files = []
    for path, (content, owner, mode) in files.items():
        entry: dict[str, object] = {"path": path, "owner": owner, "permissions": mode}
        if owner != "root:root":
            entry["defer"] = True
        entry["content"] = content
        write_files.append(entry)
    runcmd: list[list[str]] = []
    if options.ssh_authorized_keys:
        runcmd.append(["systemctl", "enable", "--now", "ssh"])  # key-only: ssh_pwauth is off
    runcmd.append(["/usr/local/sbin/palaute-install"])
    doc = {
        "hostname": f"palaute-{device.id}"[:63],
        "timezone": options.timezone,
        "ssh_pwauth": False,
        "users": users,
        "package_update": True,
        "packages": debian_packages(),
        "write_files": write_files,
        "runcmd": runcmd,
    }
    header = (
        "#cloud-config\n"
        f"# Palaute kiosk {device.id} at station {device.station_id}.\n"
        "# Copy this file (and network-config, meta-data, and the folder wheelhouse/) onto the SD card's\n"
        "# boot partition. It holds the device's broker secret: treat the card like a key.\n"
    )
    body = yaml.dump(doc, Dumper=_CloudConfigDumper, sort_keys=False, allow_unicode=True, width=1000,
                     default_flow_style=False)
    return header + body


NETWORK_CONFIG = """\
# cloud-init network-config (netplan v2) for the kiosk. Wired Ethernet with DHCP works
# as is; for Wi-Fi fill in the access point and remove the comment marks.
network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
      optional: true
#  wifis:
#    wlan0:
#      dhcp4: true
#      regulatory-domain: FI
#      access-points:
#        "station-wifi":
#          password: "..."
"""


def _copy_wheelhouse(source: Path, target: Path) -> None:
    if not any(source.glob("requirements-cp*.txt")):
        raise ProvisioningError(_("{path} is not a kiosk wheelhouse (no requirements-cp*.txt); build one with: "
                                  "{command}").format(path=source, command="palaute-server device wheelhouse <dir>"))

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target, copy_function=link_or_copy)


def write_bundle(out_dir: Path, device: Device, secret: str, options: BundleOptions) -> Path:
    """Write the provisioning bundle for one device into ``out_dir/<device_id>/``.

    Contents: kiosk.toml, broker-password (0600), ca.crt (mqtts), install-kiosk.sh,
    palaute-kiosk.service and palaute-kiosk-updater.service, wheelhouse/ (with ``options.wheelhouse``), and the cloud-init
    trio user-data / network-config / meta-data. The kiosk.toml loads as is from the bundle directory (relative
    paths), and again from /etc/palaute on the Pi.
    """
    bundle = Path(out_dir) / device.id
    bundle.mkdir(parents=True, exist_ok=True)
    os.chmod(bundle, 0o700)
    kiosk_toml = render_kiosk_toml(device, options)
    ca_text = options.ca_file.read_text() if (options.ca_file and options.broker_url.startswith("mqtts://")) else None
    units = {name: _bundle_file(name) for name in KIOSK_UNITS}
    install = _bundle_file("install-kiosk.sh").replace("@DEBIAN_PACKAGES@", " ".join(debian_packages()))

    def put(name: str, text: str, mode: int) -> None:
        path = bundle / name
        path.write_text(text)
        os.chmod(path, mode)

    put("kiosk.toml", kiosk_toml, 0o644)
    put("broker-password", secret + "\n", 0o600)
    if ca_text is not None:
        put("ca.crt", ca_text, 0o644)
    for name, unit in units.items():
        put(name, unit, 0o644)
    put("install-kiosk.sh", install, 0o755)
    if options.wheelhouse is not None:
        _copy_wheelhouse(Path(options.wheelhouse), bundle / "wheelhouse")

    owner = f"root:{KIOSK_USER}"
    files: dict[str, tuple[str, str, str]] = {
        f"{ETC_DIR}/kiosk.toml": (kiosk_toml, owner, "0640"),
        f"{ETC_DIR}/broker-password": (secret + "\n", f"{KIOSK_USER}:{KIOSK_USER}", "0600"),
    }
    if ca_text is not None:
        files[f"{ETC_DIR}/ca.crt"] = (ca_text, "root:root", "0644")
    for name, unit in units.items():
        files[f"/etc/systemd/system/{name}"] = (unit, "root:root", "0644")
    files["/usr/local/sbin/palaute-install"] = (install, "root:root", "0755")
    put("user-data", render_user_data(device, options, files), 0o600)
    put("network-config", NETWORK_CONFIG, 0o644)
    put("meta-data", f"instance-id: palaute-{device.id}-{int(utcnow().timestamp())}\n", 0o644)
    return bundle


# ----------------------------------------------------------------- many at once


@dataclass(frozen=True)
class CsvRow:
    line: int
    device_id: str
    station_id: str
    name: str | None
    station_name: str | None


def read_device_csv(path: Path) -> list[CsvRow]:
    """Rows of ``device_id,station_id[,name][,station_name]`` with a header line.

    A ``station_name`` creates the station when it does not exist yet.
    """
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"device_id", "station_id"} - set(reader.fieldnames or ())
        if missing:
            raise ProvisioningError(_("{path}: the header needs the columns device_id,station_id (optional: "
                                      "name,station_name); missing: {missing}").format(
                path=path, missing=", ".join(sorted(missing))))
        rows = []
        for number, raw in enumerate(reader, start=2):
            device_id = (raw.get("device_id") or "").strip()
            station_id = (raw.get("station_id") or "").strip()
            if not device_id and not station_id:
                continue
            rows.append(
                CsvRow(number, device_id, station_id, (raw.get("name") or "").strip() or None,
                       (raw.get("station_name") or "").strip() or None)
            )
    seen: set[str] = set()
    for row in rows:
        if row.device_id in seen:
            raise ProvisioningError(_("{path}:{line}: device {device} appears twice").format(
                path=path, line=row.line, device=repr(row.device_id)))
        seen.add(row.device_id)
    return rows


@dataclass(frozen=True)
class CsvResult:
    row: CsvRow
    bundle: Path | None
    error: str | None


def provision_many(
    session_factory: Callable[[], Session],
    rows: Iterable[CsvRow],
    out_dir: Path,
    options: BundleOptions,
) -> Iterator[CsvResult]:
    """Provision each row in its own transaction; a bad row is reported, not fatal.

    Yields one result per row (the caller draws the progress bar). Secrets go only
    into the bundles.
    """
    for row in rows:
        try:
            with session_factory() as session, session.begin():
                if row.station_name and session.get(Station, row.station_id) is None:
                    add_station(session, row.station_id, row.station_name)
                device, secret = provision_device(session, row.device_id, row.station_id, name=row.name)
                bundle = write_bundle(out_dir, device, secret, options)
            yield CsvResult(row, bundle, None)
        except ProvisioningError as exc:
            yield CsvResult(row, None, str(exc))
