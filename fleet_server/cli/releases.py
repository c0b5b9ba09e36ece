"""``palaute-server release|rollout``: kiosk software releases and their rollouts.

    palaute-server release keygen --out ~/palaute-release.key   # once, on the operator's machine
    palaute-server release build --out dist/0.2.0 --version 0.2.0 [--python 3.11]  # Pi wheels
    palaute-server release sign dist/0.2.0 --key ~/palaute-release.key      # off the server
    palaute-server release add dist/0.2.0                                   # on the server
    palaute-server release list | withdraw 0.2.0 --reason "..."
    palaute-server rollout start 0.2.0 --all --waves 1,10%,50%,100% --healthy-for 3600 --max-failures 0
    palaute-server rollout status | pause ID | resume ID | abort ID

The private key never needs to be on the fleet server: ``sign`` runs where the key
file is, ``add`` checks the signature with PALAUTE_RELEASE_PUBLIC_KEY.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fleet_server.cli.common import ConfigOption, settings_or_exit
from fleet_server.cli.fleet import _fail, _sessions
from fleet_server.core import i18n
from fleet_server.core.i18n import N_, ngettext
from fleet_server.core.i18n import gettext as _

release_app = typer.Typer(help="Kiosk software releases: build, sign, add, list, withdraw.", no_args_is_help=True)
rollout_app = typer.Typer(help="Send a release to kiosks in waves; pause, resume, abort.", no_args_is_help=True)
console = Console()


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


@release_app.command("keygen")
def keygen(out: Annotated[Path, typer.Option("--out", help="private key file to create (mode 600)")]) -> None:
    """Make a release signing key; prints the public key for PALAUTE_RELEASE_PUBLIC_KEY and kiosk.toml."""
    from palaute_wire import signing

    key = signing.new_private_key()
    try:
        signing.write_private_key(out, key)
    except FileExistsError:
        _fail(_("{path} exists already; a release key is never overwritten").format(path=out))
    console.print(_("private key written to {path}: keep it off the fleet server").format(path=out))
    console.print(_("public key:") + f" {signing.public_key_text(key)}", highlight=False, soft_wrap=True)


@release_app.command("build")
def build(
    out: Annotated[Path, typer.Option("--out", help="empty directory for the wheels")],
    version: Annotated[str | None, typer.Option(help="set this version in the built wheel")] = None,
    source: Annotated[Path, typer.Option(help="the repository to build from")] = Path("."),
    platform: Annotated[str, typer.Option(help="'pi': the Raspberry Pi's aarch64 wheelhouse (also a first-install "
                                                "wheelhouse for device provision); 'here': this machine's wheels")] = "pi",
    python: Annotated[list[str] | None, typer.Option("--python", help="the Pi's Python (repeat; default 3.11 and "
                                                     "3.13)")] = None,
    extra: Annotated[list[str] | None, typer.Option(help="extras of palaute to install (--platform here; "
                                                    "default: kiosk)")] = None,
    download_cache: Annotated[Path | None, typer.Option(help="keep downloaded dependency wheels here and reuse "
                                                        "them")] = None,
) -> None:
    """Build the kiosk wheel and download its dependencies as wheels (pip)."""
    from fleet_server.fleet.releases import ReleaseError, build_release
    from fleet_server.fleet.wheelhouse import PI_PYTHONS

    if platform not in ("pi", "here"):
        _fail(f"--platform {platform}: use 'pi' (the Raspberry Pi's aarch64 wheels) or 'here' (this machine)")
    try:
        built = build_release(source, out, version=version,
                              python_versions=(python or list(PI_PYTHONS)) if platform == "pi" else None,
                              extras=tuple(e for e in (extra if extra is not None else ["kiosk"]) if e),
                              download_cache=download_cache)
    except ReleaseError as exc:
        _fail(str(exc))
        raise
    total = sum((out / f).stat().st_size for f in built.files)
    console.print(ngettext("release {version}: {n} wheel, {size} in {path}", "release {version}: {n} wheels, {size} in {path}",
                           len(built.files)).format(version=built.version, n=len(built.files), size=_size(total), path=out))
    console.print(_("next: {command}").format(command=f"palaute-server release sign {out} --key KEYFILE"))


@release_app.command("sign")
def sign(
    directory: Annotated[Path, typer.Argument(help="a built release directory")],
    key: Annotated[Path, typer.Option("--key", help="the operator's private key file")],
    station: Annotated[list[str] | None, typer.Option(help="only for these stations (default: the fleet)")] = None,
    device: Annotated[list[str] | None, typer.Option(help="only for these kiosks (default: the fleet)")] = None,
) -> None:
    """Write manifest.json (sha256 of every file) and its ed25519 signature."""
    from fleet_server.fleet.releases import ReleaseError, sign_release

    try:
        manifest = sign_release(directory, key, stations=station or (), devices=device or ())
    except ReleaseError as exc:
        _fail(str(exc))
        raise
    console.print(ngettext("signed release {version} ({n} file)", "signed release {version} ({n} files)",
                           len(manifest.files)).format(version=manifest.version, n=len(manifest.files)))


@release_app.command("add")
def add(directory: Annotated[Path, typer.Argument(help="a signed release directory")],
        config: ConfigOption = None) -> None:
    """Check a signed release and put it in the server's release store."""
    from fleet_server.fleet.releases import ReleaseError, add_release

    settings = settings_or_exit(config)
    with _sessions(settings) as sessions:
        try:
            with sessions() as s, s.begin():
                release = add_release(s, settings.release_store_dir, settings.release_public_key, directory)
                version, total = release.version, release.total_bytes
        except ReleaseError as exc:
            _fail(str(exc))
            raise
    console.print(_("release {version} added ({size})").format(version=version, size=_size(total)))


@release_app.command("list")
def list_(config: ConfigOption = None,
          files: Annotated[bool, typer.Option("--files", help="every file with its size")] = True) -> None:
    """Releases with their files and sizes."""
    from fleet_server.fleet.releases import list_releases, release_files

    settings = settings_or_exit(config)
    with _sessions(settings) as sessions, sessions() as s:
        releases = list_releases(s)
        if not releases:
            console.print(_("no releases yet ({commands})").format(commands="palaute-server release build / sign / add"))
            return
        for release in releases:
            state = _("withdrawn {day}: {reason}").format(day=i18n.day(release.withdrawn_at.date()),
                                                          reason=release.withdrawn_reason) if release.withdrawn_at \
                else _("available")
            added = _("added {moment}").format(moment=i18n.moment(release.added_at))
            console.print(f"[bold]{release.version}[/]  {_size(release.total_bytes)}  {added}  {state}", highlight=False)
            if files:
                table = Table(_("file"), _("size"), "sha256", box=None, padding=(0, 2))
                for f in release_files(s, release.version):
                    table.add_row(f.name, _size(f.size), f.sha256[:16] + "…")
                console.print(table)


@release_app.command("withdraw")
def withdraw(version: str, reason: Annotated[str, typer.Option(help="why, for the record")] = "",
             config: ConfigOption = None) -> None:
    """Stop serving a release; its active rollouts are aborted."""
    from fleet_server.fleet.releases import withdraw_release

    settings = settings_or_exit(config)
    with _sessions(settings) as sessions:
        try:
            with sessions() as s, s.begin():
                withdraw_release(s, version, reason)
        except KeyError:
            _fail(_("no release {version}").format(version=version))
    console.print(_("release {version} withdrawn").format(version=version))


# ----------------------------------------------------------------- rollouts


@rollout_app.command("start")
def start(
    version: str,
    all_: Annotated[bool, typer.Option("--all", help="the whole fleet")] = False,
    station: Annotated[list[str] | None, typer.Option(help="these stations' kiosks")] = None,
    device: Annotated[list[str] | None, typer.Option(help="these kiosks (a canary group)")] = None,
    percent: Annotated[float | None, typer.Option(help="this share of the fleet")] = None,
    canary: Annotated[list[str] | None, typer.Option(help="kiosks that go first")] = None,
    waves: Annotated[str, typer.Option(help="cumulative wave sizes")] = "1,10%,50%,100%",
    healthy_for: Annotated[float, typer.Option(help="seconds a wave stays healthy before the next")] = 3600,
    max_failures: Annotated[int, typer.Option(help="more failed kiosks than this halt the rollout")] = 0,
    any_time: Annotated[bool, typer.Option("--any-time", help="also while stations are open")] = False,
    health_timeout: Annotated[float, typer.Option(help="seconds a kiosk has to prove the release healthy")] = 300,
    config: ConfigOption = None,
) -> None:
    """Start a rollout; the fleet loop sends the first wave within one pass."""
    from fleet_server.fleet.rollouts import RolloutError, create_rollout

    chosen = [k for k, v in (("all", all_), ("station", station), ("devices", device), ("percent", percent)) if v]
    if len(chosen) != 1:
        _fail(_("choose one target: {options}").format(options="--all, --station, --device, --percent"))
    kind = chosen[0]
    target = {"kind": kind, "stations": station or [], "devices": device or [], "percent": percent}
    settings = settings_or_exit(config)
    with _sessions(settings) as sessions:
        try:
            with sessions() as s, s.begin():
                rollout = create_rollout(
                    s, version, target, waves=waves, canary=canary or (), wave_healthy_s=healthy_for,
                    max_failures=max_failures, install_window="any" if any_time else "closed",
                    health_timeout_s=health_timeout,
                )
                rollout_id = rollout.id
        except RolloutError as exc:
            _fail(str(exc))
            raise
    console.print(_("rollout {id} of {version} started").format(id=rollout_id, version=version))


@rollout_app.command("status")
def status(config: ConfigOption = None) -> None:
    """Recent rollouts: progress per wave, failures with their reasons."""
    from fleet_server.fleet.rollouts import recent_rollouts, view

    settings = settings_or_exit(config)
    with _sessions(settings) as sessions, sessions() as s:
        rollouts = recent_rollouts(s)
        if not rollouts:
            console.print(_("no rollouts"))
        for rollout in rollouts:
            v = view(s, rollout)
            title = _("rollout {id}").format(id=rollout.id)
            console.print(f"[bold]{title}[/] {rollout.release_version} {rollout.state}"
                          + (f": {rollout.reason}" if rollout.reason else ""), highlight=False)
            for w in v.waves:
                console.print("  " + _("wave {number}: {healthy}/{size} healthy, {updating} updating, {failed} failed, "
                                       "{skipped} skipped, {waiting} waiting").format(
                    number=w.number, healthy=w.healthy, size=w.size, updating=w.targeted, failed=w.failed,
                    skipped=w.skipped, waiting=w.pending), highlight=False)
            for m in v.failures:
                console.print("  " + _("failed {device}: {reason}").format(device=m.device_id, reason=m.reason),
                              highlight=False)


_DONE = {"pause": N_("rollout {id} paused"), "resume": N_("rollout {id} resumed"), "abort": N_("rollout {id} aborted")}


def _control(action: str, rollout_id: int, config: Path | None) -> None:
    from fleet_server.fleet import rollouts

    settings = settings_or_exit(config)
    with _sessions(settings) as sessions:
        try:
            with sessions() as s, s.begin():
                if action == "abort":
                    from fleet_server.fleet.publisher import Publisher

                    publisher = Publisher(settings)
                    try:
                        rollouts.abort(s, rollout_id, settings=settings, publisher=publisher)
                    finally:
                        publisher.close()
                else:
                    getattr(rollouts, action)(s, rollout_id)
        except KeyError:
            _fail(_("no rollout {id}").format(id=rollout_id))
        except rollouts.RolloutError as exc:
            _fail(str(exc))
    console.print(_(_DONE[action]).format(id=rollout_id))


@rollout_app.command("pause")
def pause_cmd(rollout_id: int, config: ConfigOption = None) -> None:
    """No new waves until resumed (kiosks already updating finish)."""
    _control("pause", rollout_id, config)


@rollout_app.command("resume")
def resume_cmd(rollout_id: int, config: ConfigOption = None) -> None:
    """Go on with a paused or halted rollout (the failures so far are accepted)."""
    _control("resume", rollout_id, config)


@rollout_app.command("abort")
def abort_cmd(rollout_id: int, config: ConfigOption = None) -> None:
    """Stop for good; kiosks not yet updated stay on their version."""
    _control("abort", rollout_id, config)
