"""``palaute-server station|device|broker``: the IT commands for the device registry.

Every command that changes credentials commits, then regenerates the broker's
password and ACL files and reloads Mosquitto (when PALAUTE_BROKER_PASSWORD_FILE and
PALAUTE_BROKER_ACL_FILE are set), so "done" on the screen means the broker already
knows. Secrets are printed once and written only into the bundle.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.cli.common import ConfigOption, settings_or_exit
from fleet_server.core import i18n
from fleet_server.core.i18n import N_, ngettext
from fleet_server.core.i18n import gettext as _
from fleet_server.core.settings import Settings

station_app = typer.Typer(help="Health stations.", no_args_is_help=True)
device_app = typer.Typer(help="Kiosks: provision, rotate, retire, list.", no_args_is_help=True)
broker_app = typer.Typer(help="The broker's accounts and ACLs.", no_args_is_help=True)
alerts_app = typer.Typer(help="Fleet alerts: list them, test the delivery channels.", no_args_is_help=True)

OutOption = Annotated[
    Path | None, typer.Option("--out", "-o", help="write the provisioning bundle under this directory")
]
WheelhouseOption = Annotated[
    Path | None,
    typer.Option("--wheelhouse", help="the kiosk wheelhouse to put into the bundle (PALAUTE_KIOSK_WHEELHOUSE; "
                 "build it with: palaute-server device wheelhouse DIR)"),
]
SshKeyOption = Annotated[
    Path | None, typer.Option("--ssh-key", help="public key file for the Pi's IT admin account (else no SSH)")
]

console = Console()
err_console = Console(stderr=True)


def _settings(config: Path | None) -> Settings:
    return settings_or_exit(config)


@contextmanager
def _sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    from fleet_server.core.db import make_engine, make_session_factory, migrate

    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        engine.dispose()


def _fail(message: str) -> NoReturn:
    label = _("error:")
    err_console.print(f"[bold red]{label}[/] {message}", highlight=False)
    raise typer.Exit(1)


TEST_ALERT = N_("Test alert from palaute-server: if you read this, alert delivery works.")


def _warn(message: str) -> None:
    label = _("warning:")
    err_console.print(f"[yellow]{label}[/] {message}", highlight=False)


def broker_files(settings: Settings):
    from fleet_server.fleet.provisioning import BrokerFiles

    if settings.broker_password_file is None or settings.broker_acl_file is None:
        return None
    return BrokerFiles(
        settings.broker_password_file,
        settings.broker_acl_file,
        pid_file=settings.broker_pid_file,
        reload_command=settings.broker_reload_command,
    )


def sync(settings: Settings, sessions: sessionmaker[Session]) -> str:
    """Regenerate the broker files from the registry (when configured) and reload."""
    from fleet_server.fleet.broker_accounts import BrokerAuthError
    from fleet_server.fleet.provisioning import sync_broker

    files = broker_files(settings)
    if files is None:
        return _("broker files not configured ({settings}): not synced").format(
            settings="PALAUTE_BROKER_PASSWORD_FILE, PALAUTE_BROKER_ACL_FILE")
    username, password = settings.mqtt_credentials
    if not username or not password:
        _fail(_("the server's own broker account is needed for the ACL: set {settings}").format(
            settings="PALAUTE_MQTT_USERNAME, PALAUTE_MQTT_PASSWORD"))
    try:
        with sessions() as session:
            return sync_broker(session, files, username, password)
    except BrokerAuthError as exc:
        _fail(str(exc))
        raise  # unreachable


def bundle_options(settings: Settings, ssh_key: Path | None = None, wheelhouse: Path | None = None,
                   writes_bundle: bool = True):
    from fleet_server.fleet.provisioning import BundleOptions

    keys: tuple[str, ...] = ()
    if ssh_key is not None:
        if not ssh_key.is_file():
            _fail(_("--ssh-key {path}: no such file").format(path=ssh_key))
        keys = tuple(line.strip() for line in ssh_key.read_text().splitlines() if line.strip())
    url = settings.kiosk_broker_url or settings.mqtt_url
    ca = settings.kiosk_ca_file or settings.mqtt_ca_file
    if url.startswith("mqtts://") and ca is not None and not Path(ca).is_file():
        _fail(_("the broker's CA certificate {path} does not exist ({settings})").format(
            path=ca, settings="PALAUTE_KIOSK_CA_FILE / PALAUTE_MQTT_CA_FILE"))
    wheelhouse = wheelhouse or settings.kiosk_wheelhouse
    if wheelhouse is not None and not any(Path(wheelhouse).glob("requirements-cp*.txt")):
        _fail(_("{path} is not a kiosk wheelhouse; build one with: {command}").format(
            path=wheelhouse, command=f"palaute-server release build --out {wheelhouse}"))
    if wheelhouse is None and writes_bundle:
        _warn(_("no --wheelhouse: the bundle's install-kiosk.sh will stop until a wheelhouse is copied beside "
                "it ({command})").format(command="palaute-server device wheelhouse DIR"))
    if settings.release_public_key is None and writes_bundle:
        _warn(_("no {setting}: the kiosk will install no software updates ({command})").format(
            setting="PALAUTE_RELEASE_PUBLIC_KEY", command="palaute-server release keygen"))
    return BundleOptions(broker_url=url, ca_file=ca, wheelhouse=wheelhouse, ssh_authorized_keys=keys,
                         release_public_key=settings.release_public_key, mqtt_version=settings.mqtt_version)


def _show_secret(device_id: str, secret: str, bundle: Path | None) -> None:
    console.print(_("broker secret for {device} (shown once, stored only as a hash):").format(
        device=f"[bold]{device_id}[/]"))
    console.print(f"  {secret}", highlight=False, soft_wrap=True)
    if bundle is not None:
        console.print(_("bundle written to {path} (kiosk.toml, broker-password, user-data, ...)").format(
            path=f"[bold]{bundle}[/]"))
        console.print(_("copy user-data, network-config and meta-data onto the SD card's boot partition"))


# ----------------------------------------------------------------- station


@station_app.command("add")
def station_add(
    station_id: Annotated[str, typer.Argument(help="slug used in MQTT topics, e.g. kalvia")],
    name: Annotated[str, typer.Option("--name", help="the station's name as people say it")],
    config: ConfigOption = None,
) -> None:
    """Add a health station."""
    from fleet_server.fleet.provisioning import ProvisioningError, add_station

    settings = _settings(config)
    with _sessions(settings) as sessions:
        try:
            with sessions() as s, s.begin():
                add_station(s, station_id, name)
        except ProvisioningError as exc:
            _fail(str(exc))
    console.print(_("station {station} added").format(station=station_id))


@station_app.command("list")
def station_list(config: ConfigOption = None) -> None:
    """List stations and how many kiosks each has."""
    from sqlalchemy import select

    from fleet_server.models import Station

    settings = _settings(config)
    table = Table(_("station"), _("name"), _("kiosks (in use)"))
    with _sessions(settings) as sessions, sessions() as s:
        for station in s.scalars(select(Station).order_by(Station.id)):
            live = sum(1 for d in station.devices if d.state != "retired")
            table.add_row(station.id, station.name_in(i18n.lang()), str(live))
    console.print(table)


# ----------------------------------------------------------------- device


@device_app.command("provision")
def device_provision(
    device_id: Annotated[str, typer.Argument(help="slug, unique in the fleet, e.g. kalvia-1")],
    station: Annotated[str, typer.Option("--station", help="the station it stands at")],
    name: Annotated[str | None, typer.Option(help="where it stands, e.g. 'lobby'")] = None,
    out: OutOption = None,
    ssh_key: SshKeyOption = None,
    wheelhouse: WheelhouseOption = None,
    config: ConfigOption = None,
) -> None:
    """Register a kiosk, make its broker credentials and write its provisioning bundle."""
    from fleet_server.fleet.provisioning import ProvisioningError, provision_device, write_bundle

    settings = _settings(config)
    options = bundle_options(settings, ssh_key, wheelhouse, writes_bundle=out is not None)
    with _sessions(settings) as sessions:
        try:
            with sessions() as s, s.begin():
                device, secret = provision_device(s, device_id, station, name=name)
                bundle = write_bundle(out, device, secret, options) if out is not None else None
        except ProvisioningError as exc:
            _fail(str(exc))
        _show_secret(device_id, secret, bundle)
        console.print(sync(settings, sessions))


@device_app.command("rotate")
def device_rotate(
    device_id: str,
    out: OutOption = None,
    ssh_key: SshKeyOption = None,
    wheelhouse: WheelhouseOption = None,
    config: ConfigOption = None,
) -> None:
    """New broker secret (and bundle) for a kiosk; the old secret stops working now.

    Also the way to replace a broken Pi: set up the new card from the new bundle.
    """
    from fleet_server.fleet.provisioning import ProvisioningError, rotate_secret, write_bundle

    settings = _settings(config)
    options = bundle_options(settings, ssh_key, wheelhouse, writes_bundle=out is not None)
    with _sessions(settings) as sessions:
        try:
            with sessions() as s, s.begin():
                device, secret = rotate_secret(s, device_id)
                bundle = write_bundle(out, device, secret, options) if out is not None else None
        except ProvisioningError as exc:
            _fail(str(exc))
        _show_secret(device_id, secret, bundle)
        console.print(sync(settings, sessions))


@device_app.command("retire")
def device_retire(device_id: str, config: ConfigOption = None) -> None:
    """Retire a kiosk: its credentials are deleted and the broker disconnects and refuses it."""
    from fleet_server.fleet.provisioning import ProvisioningError, retire_device

    settings = _settings(config)
    with _sessions(settings) as sessions:
        try:
            with sessions() as s, s.begin():
                retire_device(s, device_id)
        except ProvisioningError as exc:
            _fail(str(exc))
        console.print(_("device {device} retired; its results stay").format(device=device_id))
        console.print(sync(settings, sessions))


@device_app.command("list")
def device_list(
    station: Annotated[str | None, typer.Option(help="only this station")] = None,
    config: ConfigOption = None,
) -> None:
    """List kiosks with their registry state and whether they are online."""
    from fleet_server.fleet.provisioning import list_devices

    settings = _settings(config)
    table = Table(_("device"), _("station"), _("state"), _("credentials"), _("online"), _("last seen"),
                  _("version"))
    with _sessions(settings) as sessions, sessions() as s:
        for row in list_devices(s, station):
            table.add_row(
                row.device_id, row.station_id, row.state, _("yes") if row.has_credentials else _("no"),
                _("online") if row.online else _("offline"),
                i18n.moment(row.last_seen_at) if row.last_seen_at else _("never"),
                row.software_version or "",
            )
    console.print(table)


@device_app.command("wheelhouse")
def device_wheelhouse(
    out: Annotated[Path, typer.Argument(help="directory to write the wheelhouse into")],
    source: Annotated[Path, typer.Option(help="this repository (the kiosk wheel is built from it)")] = Path("."),
    python: Annotated[list[str] | None, typer.Option(
        "--python", help="Python versions of the Pis (default: 3.11 Bookworm and 3.13 Trixie)")] = None,
    download_cache: Annotated[Path | None, typer.Option(
        help="keep the downloaded dependency wheels here and reuse them while the requirements are unchanged")] = None,
) -> None:
    """Build the kiosk wheelhouse: the kiosk wheel and its aarch64 dependencies, hash-pinned per Python."""
    from fleet_server.fleet.wheelhouse import PI_PYTHONS, WheelhouseError, build_wheelhouse

    if not (source / "pyproject.toml").is_file():
        _fail(_("--source {path}: no pyproject.toml there (give the Palaute repository)").format(path=source))
    try:
        with console.status(_("building the kiosk wheel and downloading its aarch64 dependencies...")):
            built = build_wheelhouse(source, out, python or list(PI_PYTHONS), download_cache=download_cache)
    except WheelhouseError as exc:
        _fail(str(exc))
    for tag, path in built.requirements.items():
        console.print(f"{tag}: {path}")
    for tag, why in built.missing.items():
        left_out = _("{tag} left out:").format(tag=tag)
        err_console.print(f"[yellow]{left_out}[/] {why}", highlight=False)
    console.print(_("wheelhouse in {path}: give {option} to device provision (or set {setting})").format(
        path=out, option=f"--wheelhouse {out}", setting="PALAUTE_KIOSK_WHEELHOUSE"))


@device_app.command("provision-csv")
def device_provision_csv(
    csv_file: Annotated[Path, typer.Argument(help="header device_id,station_id[,name][,station_name]")],
    out: Annotated[Path, typer.Option("--out", "-o", help="bundles are written under this directory")],
    ssh_key: SshKeyOption = None,
    wheelhouse: WheelhouseOption = None,
    config: ConfigOption = None,
) -> None:
    """Provision many kiosks from a CSV file, with a progress bar; bad rows are listed at the end."""
    from fleet_server.fleet.provisioning import ProvisioningError, provision_many, read_device_csv

    settings = _settings(config)
    options = bundle_options(settings, ssh_key, wheelhouse)
    try:
        rows = read_device_csv(csv_file)
    except (ProvisioningError, OSError) as exc:
        _fail(str(exc))
    failures = []
    done = 0
    with _sessions(settings) as sessions:
        with Progress(
            TextColumn(_("provisioning")), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[device]}"),
            TimeElapsedColumn(), console=console,
        ) as progress:
            task = progress.add_task("provision", total=len(rows), device="")
            for result in provision_many(sessions, rows, out, options):
                progress.update(task, advance=1, device=result.row.device_id)
                if result.error:
                    failures.append(result)
                else:
                    done += 1
        console.print(ngettext("{done} of {n} kiosk provisioned; bundles (with their secrets) under {path}",
                               "{done} of {n} kiosks provisioned; bundles (with their secrets) under {path}",
                               len(rows)).format(done=done, n=len(rows), path=out))
        for failure in failures:
            line = _("line {line}").format(line=failure.row.line)
            err_console.print(f"[red]{line}[/] {failure.row.device_id}: {failure.error}", highlight=False)
        console.print(sync(settings, sessions))
    if failures:
        raise typer.Exit(1)


# ----------------------------------------------------------------- broker


@broker_app.command("sync")
def broker_sync(config: ConfigOption = None) -> None:
    """Regenerate Mosquitto's password and ACL files from the registry and reload it."""
    settings = _settings(config)
    with _sessions(settings) as sessions:
        console.print(sync(settings, sessions))


@broker_app.command("bridge-add")
def broker_bridge_add(
    name: Annotated[str, typer.Argument(help="the region, e.g. keski-pohjanmaa: user palaute-bridge-<name>")],
    config: ConfigOption = None,
) -> None:
    """An account for a regional broker's bridge (deploy/mosquitto/regional-bridge.conf); again: a new secret."""
    from fleet_server.core.errors import ProvisioningError
    from fleet_server.fleet.broker_accounts import BRIDGE_PREFIX
    from fleet_server.fleet.provisioning import add_bridge

    settings = _settings(config)
    with _sessions(settings) as sessions:
        try:
            with sessions() as session, session.begin():
                secret = add_bridge(session, name)
        except ProvisioningError as exc:
            _fail(str(exc))
        console.print(_("bridge account {account}; its password (shown once), for the regional broker's "
                        "remote_password:").format(account=f"[bold]{BRIDGE_PREFIX}{name}[/]") + f"\n{secret}",
                      highlight=False)
        console.print(sync(settings, sessions))


@broker_app.command("bridge-remove")
def broker_bridge_remove(name: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """Remove a regional bridge's account; the broker drops it at the sync."""
    from fleet_server.core.errors import ProvisioningError
    from fleet_server.fleet.provisioning import remove_bridge

    settings = _settings(config)
    with _sessions(settings) as sessions:
        try:
            with sessions() as session, session.begin():
                remove_bridge(session, name)
        except ProvisioningError as exc:
            _fail(str(exc))
        console.print(sync(settings, sessions))


@broker_app.command("bridges")
def broker_bridges(config: ConfigOption = None) -> None:
    """The regional bridges' accounts."""
    from fleet_server.fleet.provisioning import bridge_accounts

    settings = _settings(config)
    with _sessions(settings) as sessions, sessions() as session:
        for bridge in bridge_accounts(session):
            console.print(bridge.username, highlight=False)


# ----------------------------------------------------------------- alerts


@alerts_app.command("list")
def alerts_list(
    all_: Annotated[bool, typer.Option("--all", help="recent history, cleared ones included")] = False,
    config: ConfigOption = None,
) -> None:
    """Open alerts (the same as the devices page shows)."""
    from fleet_server.fleet.alerts import alert_text, open_alerts, recent_alerts, rule_name

    settings = _settings(config)
    table = Table(_("since"), _("rule"), _("where"), _("message"), _("cleared"))
    with _sessions(settings) as sessions, sessions() as s:
        rows = recent_alerts(s) if all_ else open_alerts(s)
        for a in rows:
            table.add_row(i18n.moment(a.started_at), rule_name(a.rule),
                          a.station_id + (f"/{a.device_id}" if a.device_id else ""), alert_text(a),
                          i18n.moment(a.cleared_at) if a.cleared_at else "")
    console.print(table if rows else _("no open alerts"))


@alerts_app.command("test")
def alerts_test(config: ConfigOption = None) -> None:
    """Send a test alert through every configured channel (SMTP e-mail, webhook)."""
    from fleet_server.core.clock import utcnow
    from fleet_server.fleet.alerts import channels_from

    settings = _settings(config)
    channels = channels_from(settings)
    if not channels:
        _fail(_("no alert channel configured: set {email} and/or {webhook}").format(
            email="PALAUTE_SMTP_HOST + PALAUTE_ALERT_EMAIL_TO", webhook="PALAUTE_ALERT_WEBHOOK_URL"))
    payload = {"event": "test", "id": 0, "key": "test", "rule": "test", "severity": "info",
               "station_id": "-", "device_id": None, "started_at": utcnow().isoformat(), "cleared_at": None,
               "message": TEST_ALERT, "text": TEST_ALERT, "params": {}}  # the e-mail says it in its own language
    for channel in channels:
        try:
            channel(payload)
        except Exception as exc:  # noqa: BLE001 - reported to the operator
            _fail(_("delivery failed: {error}").format(error=exc))
    console.print(ngettext("test alert sent through {n} channel", "test alert sent through {n} channels",
                           len(channels)).format(n=len(channels)))


def register(app: typer.Typer) -> None:
    app.add_typer(station_app, name="station")
    app.add_typer(device_app, name="device")
    app.add_typer(broker_app, name="broker")
    app.add_typer(alerts_app, name="alerts")
