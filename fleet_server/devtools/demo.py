"""``palaute-server demo``: the whole system on one machine, with simulated kiosks.

Starts, as child processes it owns: a private Mosquitto on a free loopback port
(config written here, queue limits set deliberately, no anonymous access: every
kiosk is provisioned in the registry and gets its own password and ACL, exactly
as in production), the fleet server on SQLite (HTTP API + MQTT ingest), and one
simulated kiosk per sample station (the real kiosk code with gpiozero's
MockFactory pins). It prints the dashboard URL and a live table of what the
server has counted; Ctrl-C stops everything it started.

Every answer shown is produced by the simulated kiosks during the run: nothing
is written straight into the database.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from fleet_server.core import i18n
from fleet_server.core.i18n import gettext as _
from fleet_server.devtools.local_broker import Mosquitto, free_port, wait_for_port

_LOGGER = logging.getLogger(__name__)

SAMPLE_STATIONS: tuple[tuple[str, str], ...] = (
    ("kokkola", "Kokkola main health station"),
    ("koivuhaka", "Koivuhaka health station"),
    ("kalvia", "Kälviä health station"),
    ("lohtaja", "Lohtaja health station"),
    ("ullava", "Ullava health station"),
    ("kruunupyy", "Kruunupyy health station"),
    ("alaveteli", "Alaveteli health station"),
    ("teerijarvi", "Teerijärvi health station"),
)

SAMPLE_NAMES: dict[str, tuple[str, str, str]] = {
    # station: (Finnish, Swedish, municipality group)
    "kokkola": ("Kokkolan pääterveysasema", "Karleby huvudhälsostation", "kokkola-city"),
    "koivuhaka": ("Koivuhaan terveysasema", "Koivuhaka hälsostation", "kokkola-city"),
    "kalvia": ("Kälviän terveysasema", "Kelviå hälsostation", "kokkola-city"),
    "lohtaja": ("Lohtajan terveysasema", "Lochteå hälsostation", "kokkola-city"),
    "ullava": ("Ullavan terveysasema", "Ullava hälsostation", "kokkola-city"),
    "kruunupyy": ("Kruunupyyn terveysasema", "Kronoby hälsostation", "kruunupyy-municipality"),
    "alaveteli": ("Alavetelin terveysasema", "Nedervetil hälsostation", "kruunupyy-municipality"),
    "teerijarvi": ("Teerijärven terveysasema", "Terjärv hälsostation", "kruunupyy-municipality"),
}
"""The demo's stations in Finnish and Swedish, and the municipality each belongs to."""

SAMPLE_GROUPS: tuple[tuple[str, str | None, str, str, str, str], ...] = (
    # id, parent, kind, Finnish, Swedish, English
    ("soite", None, "county", "Keski-Pohjanmaan hyvinvointialue", "Välfärdsområdet i Mellersta Österbotten",
     "Central Ostrobothnia wellbeing services county"),
    ("kokkola-city", "soite", "municipality", "Kokkola", "Karleby", "Kokkola"),
    ("kruunupyy-municipality", "soite", "municipality", "Kruunupyy", "Kronoby", "Kruunupyy"),
)

# A different answer mix per station, so the comparison has something to show.
_MIXES = (
    (0.05, 0.10, 0.40, 0.45),
    (0.10, 0.15, 0.40, 0.35),
    (0.04, 0.08, 0.38, 0.50),
    (0.15, 0.20, 0.35, 0.30),
    (0.06, 0.10, 0.34, 0.50),
    (0.08, 0.12, 0.45, 0.35),
    (0.20, 0.25, 0.30, 0.25),
    (0.05, 0.10, 0.35, 0.50),
)


@dataclass
class DemoOptions:
    workdir: Path = Path("var/demo")
    http_port: int = 8000
    presses_per_minute: float = 20.0
    kiosks_per_station: int = 1
    stations: int = len(SAMPLE_STATIONS)
    duration_s: float | None = None
    fresh: bool = False
    live: bool = True
    lang: str = i18n.DEFAULT_LANG
    """The console's language (its texts, and the stations' names the server gives)."""


SERVER_MQTT_USER = "palaute-server"
"""The fleet server's broker account in the demo (its password is random per run)."""

DEMO_USERS: tuple[tuple[str, str, str | None], ...] = (
    ("coordinator", "coordinator", None),
    ("it", "it", None),
    ("admin", "admin", None),
    ("staff-kalvia", "staff", "kalvia"),
)
"""Sign-ins the demo creates (name, role, station); fresh passwords every run."""


@dataclass
class Demo:
    options: DemoOptions
    broker: Mosquitto | None = None
    server: subprocess.Popen | None = None
    kiosks: list[Supervised] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)
    api_token: str | None = None
    device_secrets: dict[tuple[str, str], str] = field(default_factory=dict)
    """(station, device) -> this run's broker password of each simulated kiosk."""
    server_mqtt_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.options.http_port}"

    # -- start ----------------------------------------------------------------

    def start(self) -> None:
        opts = self.options
        if not port_is_free(opts.http_port):
            raise RuntimeError(f"port {opts.http_port} is busy: use --port (e.g. --port {free_port()})")
        workdir = opts.workdir.resolve()
        if opts.fresh and workdir.exists():
            shutil.rmtree(workdir)
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        self._prepare_database(workdir)
        self.broker = self._start_broker(workdir)
        _LOGGER.info("broker on %s", self.broker.url)
        self.server = self._spawn(
            [_script("palaute-server"), "serve"], workdir / "logs" / "server.log", env=self._server_env(workdir)
        )
        try:
            wait_for_port(opts.http_port, timeout=60)
        except TimeoutError:
            raise RuntimeError(
                f"the fleet server did not start; see {workdir / 'logs' / 'server.log'}"
            ) from None
        time.sleep(0.2)  # a server that lost the port to another process has exited by now
        if self.server.poll() is not None:  # what answered on the port was someone else
            raise RuntimeError(
                f"the fleet server exited at start (port {opts.http_port} taken?); see {workdir / 'logs' / 'server.log'}"
            )
        for index, (station_id, _name) in enumerate(SAMPLE_STATIONS[: opts.stations]):
            for device_id in self._device_ids(station_id):
                config = self._write_kiosk_config(workdir, station_id, device_id, _MIXES[index % len(_MIXES)])
                self.kiosks.append(
                    Supervised([_script("palaute-kiosk"), "--config", str(config), "--simulate"],
                               workdir / "logs" / f"kiosk-{device_id}.log").start()
                )

    def _device_ids(self, station_id: str) -> list[str]:
        return [f"{station_id}-{n}" for n in range(1, self.options.kiosks_per_station + 1)]

    def _start_broker(self, workdir: Path) -> Mosquitto:
        """Mosquitto with the registry's password file and ACL (fleet_server.fleet.broker_accounts)."""
        from fleet_server.fleet.broker_accounts import DeviceAccount, ServerAccount, mosquitto_hash, write_broker_files

        auth = workdir / "broker-auth"
        auth.mkdir(parents=True, exist_ok=True)
        write_broker_files(
            auth / "passwd",
            auth / "acl",
            [DeviceAccount(s, d, mosquitto_hash(secret)) for (s, d), secret in self.device_secrets.items()],
            ServerAccount(SERVER_MQTT_USER, mosquitto_hash(self.server_mqtt_password)),
        )
        return Mosquitto(
            workdir / "broker",
            allow_anonymous=False,
            extra_config=f"password_file {auth / 'passwd'}\nacl_file {auth / 'acl'}",
        ).start()

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.options.workdir.resolve() / 'palaute.db'}"

    def _prepare_database(self, workdir: Path) -> None:
        """Migrate, name the sample stations, and (re)create the demo sign-ins and API token.

        Passwords are random per run and written to credentials.txt (mode 0600):
        the demo never ships a known password.
        """
        from sqlalchemy import select

        from fleet_server.auth.service import add_user, create_token, set_password
        from fleet_server.core.db import make_engine, make_session_factory, migrate
        from fleet_server.fleet.provisioning import add_station, provision_device, rotate_secret
        from fleet_server.models import ApiToken, Device, Station, StationGroup, User

        migrate(self.database_url)
        engine = make_engine(self.database_url)
        try:
            with make_session_factory(engine)() as session:
                for group_id, parent, kind, name_fi, name_sv, name_en in SAMPLE_GROUPS:
                    if session.get(StationGroup, group_id) is None:
                        session.add(StationGroup(id=group_id, parent_id=parent, kind=kind, name=name_fi,
                                                 name_fi=name_fi, name_sv=name_sv, name_en=name_en))
                        session.flush()
                for station_id, name in SAMPLE_STATIONS[: self.options.stations]:
                    if session.get(Station, station_id) is None:
                        add_station(session, station_id, name)
                    station = session.get_one(Station, station_id)
                    if station_id in SAMPLE_NAMES:
                        station.name_fi, station.name_sv, station.group_id = SAMPLE_NAMES[station_id]
                        station.name_en = name
                    for device_id in self._device_ids(station_id):
                        # A fresh secret every run, as IT would rotate it; only hashes are stored.
                        if session.get(Device, device_id) is None:
                            _device, secret = provision_device(session, device_id, station_id)
                        else:
                            _device, secret = rotate_secret(session, device_id)
                        self.device_secrets[(station_id, device_id)] = secret
                for username, role, user_station in DEMO_USERS:
                    password = secrets.token_urlsafe(12)
                    if session.scalar(select(User).where(User.username == username)) is None:
                        add_user(session, username, role, password, user_station)
                    else:
                        set_password(session, username, password)
                    self.passwords[username] = password
                old_token = session.scalar(select(ApiToken).where(ApiToken.name == "demo-monitor"))
                if old_token is not None:  # the previous run's token: shown once, long gone
                    session.delete(old_token)
                    session.flush()
                self.api_token = create_token(session, "demo-monitor", "coordinator").token
                session.commit()
        finally:
            engine.dispose()
        creds = workdir / "credentials.txt"
        creds.write_text("".join(f"{u}\t{p}\n" for u, p in self.passwords.items()))
        creds.chmod(0o600)

    @property
    def _broker_url(self) -> str:
        if self.broker is None:
            raise RuntimeError("the demo's broker is not started")
        return self.broker.url

    def _server_env(self, workdir: Path) -> dict[str, str]:
        env = dict(os.environ)
        secret_file = workdir / "session-secret"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(32))
            secret_file.chmod(0o600)
        env.update(
            PALAUTE_DATABASE_URL=self.database_url,
            PALAUTE_MODE="demo",
            PALAUTE_MQTT_URL=self._broker_url,
            PALAUTE_MQTT_USERNAME=SERVER_MQTT_USER,
            PALAUTE_MQTT_PASSWORD=self.server_mqtt_password,
            PALAUTE_HTTP_HOST="127.0.0.1",
            PALAUTE_HTTP_PORT=str(self.options.http_port),
            PALAUTE_SESSION_SECRET=secret_file.read_text().strip(),
        )
        return env

    def _write_kiosk_config(self, workdir: Path, station_id: str, device_id: str, mix) -> Path:
        kiosk_dir = workdir / "kiosks" / device_id
        kiosk_dir.mkdir(parents=True, exist_ok=True)
        password_file = kiosk_dir / "broker-password"
        password_file.write_text(self.device_secrets[(station_id, device_id)] + "\n")
        password_file.chmod(0o600)
        path = kiosk_dir / "kiosk.toml"
        path.write_text(
            "\n".join(
                [
                    "# Written by palaute-server demo: a simulated kiosk on the demo broker.",
                    "[device]",
                    f'station_id = "{station_id}"',
                    f'device_id = "{device_id}"',
                    "",
                    "[broker]",
                    f'url = "{self._broker_url}"',
                    f'username = "{device_id}"',
                    f'password_file = "{password_file}"',
                    "heartbeat_s = 10",
                    "",
                    "[outbox]",
                    f'path = "{kiosk_dir / "outbox.db"}"',
                    "",
                    "[state]",
                    f'dir = "{kiosk_dir / "state"}"',
                    "",
                    "[simulate]",
                    f"presses_per_minute = {self.options.presses_per_minute}",
                    f"mix = [{', '.join(str(m) for m in mix)}]",
                    "followup_share = 0.5",
                    "",
                ]
            )
        )
        return path

    @staticmethod
    def _spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
        # Own process group: Ctrl-C reaches the demo only, which then stops children in order.
        # The child keeps its own copy of the log's descriptor; ours closes at once.
        with open(log_path, "ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    # -- watch ----------------------------------------------------------------

    def _api(self, path: str):
        return _get_json(f"{self.base_url}{path}", {"Authorization": f"Bearer {self.api_token}",
                                                     "Accept-Language": self.options.lang})

    def stations(self) -> list[dict]:
        return self._api("/api/v1/stations")

    def devices(self) -> list[dict]:
        return self._api("/api/v1/devices")

    def check_children(self) -> None:
        """The server ending ends the demo; a kiosk that exits is restarted, as systemd would
        (palaute-kiosk.service: Restart=on-failure, RestartForceExitStatus=75 for "restart the app")."""
        if self.server is not None and self.server.poll() is not None:
            raise RuntimeError(
                f"{' '.join(cast(list[str], self.server.args))} exited with {self.server.returncode}; "
                f"see {self.options.workdir / 'logs'}"
            )
        for kiosk in self.kiosks:
            kiosk.check()

    # -- stop -----------------------------------------------------------------

    def stop(self) -> None:
        """Kiosks first (they publish offline), then the server, then the broker."""
        for kiosk in self.kiosks:
            _terminate(kiosk.proc)
        for kiosk in self.kiosks:
            _wait(kiosk.proc)
        if self.server is not None:
            _terminate(self.server)
            _wait(self.server)
        if self.broker is not None:
            self.broker.stop()


def _script(name: str) -> str:
    """The console script next to this interpreter (the venv's), else from PATH."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether the fleet server could listen on ``port`` (the same SO_REUSEADDR bind as uvicorn's)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


RESTART_LIMIT = 5
"""Restarts within RESTART_WINDOW_S before a kiosk counts as broken (systemd's StartLimitBurst)."""
RESTART_WINDOW_S = 60.0


class Supervised:
    """One kiosk process, restarted when it exits as systemd restarts palaute-kiosk.service:
    any exit but a clean 0 (75 is the kiosk's "restart the app"), up to RESTART_LIMIT times a minute."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.argv, self.log_path = argv, log_path
        self.proc: subprocess.Popen = cast(subprocess.Popen, None)
        self.restarts: list[float] = []

    def start(self) -> Supervised:
        self.proc = Demo._spawn(self.argv, self.log_path)
        return self

    def check(self) -> bool:
        """True when the process had exited and was started again; raises when it keeps failing."""
        code = self.proc.poll()
        if code is None or code == 0:
            return False
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_S] + [now]
        if len(self.restarts) > RESTART_LIMIT:
            raise RuntimeError(f"{' '.join(self.argv)} exited {len(self.restarts)} times within "
                               f"{RESTART_WINDOW_S:.0f} s (last code {code}); see {self.log_path}")
        _LOGGER.info("%s exited with %s; restarting it", self.argv[0], code)
        with open(self.log_path, "ab") as log:
            log.write(f"--- exited with {code}; the demo restarts it, as systemd would ---\n".encode())
        self.start()
        return True


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)


def _wait(proc: subprocess.Popen, timeout: float = 15) -> None:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _get_json(url: str, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def console_rows(stations: list[dict], devices: list[dict]) -> list[tuple[str, str, str, str]]:
    """The console table's rows (station, devices online, answers, satisfaction) from /api/v1/stations
    and /api/v1/devices: the server has applied the small-count rule, and a station it marks
    ``suppressed`` shows "too few" and no satisfaction, whatever else the row holds."""
    online: dict[str, int] = {}
    for d in devices:
        online[d["station_id"]] = online.get(d["station_id"], 0) + (1 if d.get("online") else 0)
    rows = []
    for s in stations:
        sat, total = s.get("satisfaction"), s.get("total")
        hidden = bool(s.get("suppressed")) or total is None
        rows.append((s.get("name") or s["station_id"], str(online.get(s["station_id"], 0)),
                     _("too few") if hidden else str(total),
                     "-" if hidden or sat is None else i18n.percent(sat)))
    return rows


def run(options: DemoOptions) -> int:
    """Run the demo until Ctrl-C (or ``duration_s``); return a process exit code. The console speaks
    ``options.lang``."""
    with i18n.using(options.lang):
        return _run(options)


def _run(options: DemoOptions) -> int:
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    console = Console(stderr=True)
    demo = Demo(options)
    stop = {"now": False}

    def _on_signal(signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        with console.status(_("starting broker, fleet server and kiosks...")):
            demo.start()
        dashboard, docs = _("Dashboard:"), _("API docs:")
        console.print(f"[bold green]{dashboard}[/] {demo.base_url}/   {docs} {demo.base_url}/docs")
        console.print(_("Sign in as (user / password, also in credentials.txt):"))
        for user, password in demo.passwords.items():
            console.print(f"  [bold]{user}[/] / {password}", soft_wrap=True)
        logs, stop_with = _("Logs and data:"), _("Stop with Ctrl-C.")
        console.print(f"{logs} {options.workdir.resolve()}   {stop_with}")

        def table() -> Table:
            t = Table(title=_("Answers counted by the fleet server (live)"))
            for i, col in enumerate((_("station"), _("devices online"), _("answers"), _("satisfaction"))):
                t.add_column(col, justify="left" if i == 0 else "right")
            try:
                stations = demo.stations()
                devices = demo.devices()
            except (urllib.error.URLError, OSError, ValueError) as exc:
                t.caption = _("The server does not answer: {error}").format(error=exc)
                return t
            for row in console_rows(stations, devices):
                t.add_row(*row)
            return t

        started = time.monotonic()
        with Live(table(), console=console, refresh_per_second=1, transient=not options.live) as live:
            while not stop["now"]:
                if options.duration_s is not None and time.monotonic() - started >= options.duration_s:
                    break
                time.sleep(1)
                demo.check_children()
                live.update(table())
        return 0
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        stopped = _("The demo stopped:")
        console.print(f"[bold red]{stopped}[/] {exc}")
        return 1
    finally:
        with console.status(_("stopping kiosks, server and broker...")):
            demo.stop()
