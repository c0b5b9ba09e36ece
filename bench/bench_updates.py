"""Software-update benchmark: bytes per update, the Pi's wheelhouse, and 100 kiosks downloading at once.

    python bench/bench_updates.py sizes [--platform pi|here] [--python 3.11] [--out DIR]
    python bench/bench_updates.py serve [--kiosks 100] [--samples 100] [--via both|uvicorn|nginx]
    python bench/bench_updates.py arm64 [--health-timeout 60]   # as root, 5-15 min under qemu

``sizes`` builds a release from this repository the way ``palaute-server release
build`` does (the kiosk wheel with ``pip wheel``, its dependencies as wheels, for the
Pi with ``--platform``), and prints the files and sizes: what a first install
downloads, and what an update that changes only the project downloads (the kiosk
wheel alone; the kiosk keeps the other files by hash).

``serve`` runs the fleet server (uvicorn, SQLite) with one release, and N kiosks
with their own device credentials fetch the kiosk wheel at the same time, in rounds,
until the dashboard's overview and devices pages (asked for in turn every 50 ms) have
each been timed ``--samples`` times during the downloads. It prints the downloads'
total time and throughput and each page's p50/p95 during the storm next to its p50/p95
when quiet, with the request counts. ``--via both`` (the default when nginx is
installed) runs it twice: uvicorn sending the files, and a private nginx on a loopback
port in deploy/nginx/palaute.conf's shape (no TLS) with
``PALAUTE_RELEASE_ACCEL_REDIRECT``: the server checks the device, nginx sends the file.

``arm64`` (as root) measures on the arm64 Debian 12 root under qemu-user that the first-boot
test uses (tests/support/arm64_root.py; the cached root is only read): it builds four Pi
releases from this repository, the first three differing only in the version (so only the
project's wheel changes), the fourth deliberately broken (its kiosk dies at start); provisions
a kiosk with the first and runs the bundle's install-kiosk.sh there; then runs the kiosk
(``--simulate``: no display under qemu) and its updater as their systemd units would
(:class:`RootUnits`), against a real fleet server (HTTP downloads with the device's own
credentials) and a private Mosquitto (the kiosk is online through it, its status reaches the
server). Each update is a rollout to the kiosk whose target the server's rollout pass sends;
it prints the whole path "target sent -> healthy on the new version", phase by phase:
download and verify, install and switch, restart, the health check (its version, outbox,
selftest, online), the commit, and when the server had it in the kiosk's status. The same
with the updater's file cache emptied (every file new), and for the broken release, the way
back: trial, rollback, the previous version healthy again. Under emulation every Python
instruction is several times slower than on a Pi 4/5, so the times are an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPO = Path(__file__).resolve().parents[1]


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def sizes(args: argparse.Namespace) -> None:
    from fleet_server.fleet.releases import build_release
    from fleet_server.fleet.wheelhouse import PI_PYTHONS

    pythons = (args.python or list(PI_PYTHONS)) if args.platform == "pi" else None
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        out = Path(args.out) if args.out else Path(tmp) / "r"
        built = build_release(REPO, out, version=args.version, python_versions=pythons,
                              extras=tuple(args.extra) if not pythons else ("kiosk",),
                              download_cache=Path(args.download_cache) if args.download_cache else None)
        took = time.monotonic() - started
        files = sorted(((out / f).stat().st_size, f) for f in built.files)
        total = sum(s for s, _ in files)
        own = next(s for s, f in files if f.startswith("palaute-"))
        print(f"release {built.version} for {'the Pi, python ' + ' '.join(pythons) if pythons else 'this machine'}, "
              f"built in {took:.0f} s: {len(files)} wheels")
        for size, name in reversed(files):
            print(f"  {_mb(size):>10}  {name}")
        for tag in ([f"cp{p.replace('.', '')}" for p in pythons] if pythons else []):
            reqs = out / f"requirements-{tag}.txt"
            if reqs.exists():
                names = {line.split("==")[0].split("[")[0].lower() for line in reqs.read_text().splitlines()
                         if line and not line.startswith("#")}
                mine = sum(s for s, f in files if f.split("-")[0].lower() in names and _for_python(f, tag))
                print(f"first install on {tag} downloads {_mb(mine)}")
        print(f"all files {_mb(total)}; an update of the project only downloads {_mb(own)} ({own / total:.1%})")


def _for_python(name: str, tag: str) -> bool:
    from kiosk.updater import wheel_fits

    return wheel_fits(name, tag)


def serve(args: argparse.Namespace) -> None:
    import shutil

    modes = ["uvicorn", "nginx"] if args.via == "both" else [args.via]
    if "nginx" in modes and shutil.which("nginx") is None:
        if args.via == "nginx":
            raise SystemExit("nginx is not installed (run.sh test installs nginx-light)")
        modes.remove("nginx")
        print("nginx is not installed: uvicorn alone")
    for mode in modes:
        _serve_once(args, mode)


_PAGES = ("/", "/devices")
"""The dashboard pages timed: the overview and the devices page (issue #11: p95 under 150 ms)."""


def _nginx_conf(tmp: Path, port: int, app_port: int, store: Path) -> Path:
    """deploy/nginx/palaute.conf's shape on a loopback port, without TLS: the internal release
    location on the store, everything else proxied to the server."""
    temp = ""
    for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / "nginx" / d).mkdir(parents=True, exist_ok=True)
        temp += f"    {d}_temp_path {tmp / 'nginx' / d};\n"
    conf = tmp / "nginx" / "nginx.conf"
    conf.write_text(f"""daemon off;
worker_processes auto;
pid {tmp / 'nginx' / 'nginx.pid'};
error_log {tmp / 'nginx' / 'error.log'} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    default_type application/octet-stream;
{temp}    server {{
        listen 127.0.0.1:{port};
        proxy_buffering off;
        client_max_body_size 2m;
        location /_palaute_releases/ {{
            internal;
            alias {store}/;
        }}
        location / {{
            proxy_pass http://127.0.0.1:{app_port};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 300s;
        }}
    }}
}}
""")
    return conf


def _serve_once(args: argparse.Namespace, mode: str) -> None:
    import httpx
    import uvicorn

    from fleet_server.app import create_app
    from fleet_server.core.settings import load_settings
    from fleet_server.devtools.local_broker import Mosquitto, free_port
    from fleet_server.fleet.provisioning import add_station, provision_device
    from fleet_server.fleet.releases import add_release, sign_release
    from palaute_wire import signing
    from tests.support.auth_helpers import make_user, sign_in

    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "broker") as broker:
        tmp_path = Path(tmp)
        key = tmp_path / "key"
        signing.write_private_key(key, signing.new_private_key())
        release = tmp_path / "release"
        release.mkdir()
        size = args.wheel_kb * 1024
        (release / "palaute-9.0.0-py3-none-any.whl").write_bytes(os.urandom(size))
        (release / "release.json").write_text('{"version": "9.0.0", "requirements": ["palaute==9.0.0"]}')
        sign_release(release, key)
        port = free_port()
        store = tmp_path / "store"
        settings = load_settings(environ={}, database_url=f"sqlite:///{tmp_path / 'fleet.db'}", mqtt_url=broker.url,
                                 session_secret="s" * 40, release_store_dir=store,
                                 release_public_key=signing.public_key_text(signing.load_private_key(key)),
                                 release_accel_redirect="/_palaute_releases/" if mode == "nginx" else None)
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        factory = app.state.session_factory
        with factory() as s, s.begin():
            add_station(s, "bench", "Bench")
            secrets = {f"bench-{i}": provision_device(s, f"bench-{i}", "bench")[1] for i in range(args.kiosks)}
            add_release(s, settings.release_store_dir, settings.release_public_key, release)
        make_user(factory, "it", "it")
        nginx = None
        base = f"http://127.0.0.1:{port}"
        if mode == "nginx":
            front = free_port()
            tmp_path.chmod(0o755)  # nginx's workers (not root) read the store
            conf = _nginx_conf(tmp_path, front, port, store.resolve())
            nginx = subprocess.Popen(["nginx", "-p", str(tmp_path / "nginx"), "-e", str(tmp_path / "nginx" / "error.log"),
                                      "-c", str(conf)])
            base = f"http://127.0.0.1:{front}"
            for _ in range(100):
                try:
                    httpx.get(base + "/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
        from fastapi.testclient import TestClient

        page = httpx.Client(base_url=base, timeout=60)
        # Sign in over real HTTP: reuse the helper's form flow on a TestClient bound to the same app.
        tc = TestClient(app, base_url=base)
        sign_in(tc, "it", next_url="/devices")
        page.cookies.update(tc.cookies)

        def page_times(until: Callable[[dict[str, list[float]]], bool], out: dict[str, list[float]]) -> None:
            while not until(out):
                for path in _PAGES:
                    t = time.perf_counter()
                    assert page.get(path).status_code == 200, path
                    out[path].append(time.perf_counter() - t)
                    time.sleep(0.05)

        def enough(out: dict[str, list[float]]) -> bool:
            return min(len(xs) for xs in out.values()) >= args.samples

        quiet: dict[str, list[float]] = {path: [] for path in _PAGES}
        page_times(enough, quiet)

        # The kiosks are another process, as they would be: their threads must not share the server's GIL.
        # They download in rounds (all at once each time) until the pages have been timed often enough.
        creds, started, stop = tmp_path / "kiosks.json", tmp_path / "started", tmp_path / "stop"
        creds.write_text(json.dumps({"base": base, "secrets": secrets, "started": str(started), "stop": str(stop)}))
        kiosks = subprocess.Popen([sys.executable, __file__, "_fetch", str(creds)], stdout=subprocess.PIPE, text=True)
        while not started.exists() and kiosks.poll() is None:
            time.sleep(0.01)
        busy: dict[str, list[float]] = {path: [] for path in _PAGES}
        page_times(lambda out: enough(out) or kiosks.poll() is not None, busy)
        stop.touch()
        out, _ = kiosks.communicate()
        if kiosks.returncode:
            raise SystemExit(f"the kiosks failed ({kiosks.returncode})")
        got, took, rounds, first = json.loads(out.strip().splitlines()[-1])
        server.should_exit = True
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)

        def p(xs: list[float], q: int) -> float:
            return statistics.quantiles(xs, n=100)[q - 1] * 1000 if len(xs) >= 2 else xs[0] * 1000

        front_desc = ("nginx in front (X-Accel-Redirect: the server checks the device, nginx sends the file)"
                      if mode == "nginx" else "uvicorn alone (the server sends the file)")
        print(f"--- {front_desc}; load average {_load(os.getloadavg())}")
        print(f"{args.kiosks} kiosks fetched a {args.wheel_kb} kB wheel at once, {rounds} rounds: {_mb(got)} in "
              f"{took:.2f} s ({got / took / 1e6:.1f} MB/s; the first round {first:.2f} s; "
              f"device secret checked on each request)")
        for path in _PAGES:
            print(f"{path:<8} quiet: p50 {p(quiet[path], 50):4.0f} ms, p95 {p(quiet[path], 95):4.0f} ms "
                  f"({len(quiet[path])} requests); during the downloads: p50 {p(busy[path], 50):4.0f} ms, "
                  f"p95 {p(busy[path], 95):4.0f} ms ({len(busy[path])} requests)")


def _fetch(creds_file: str) -> None:
    """The kiosks' side of ``serve``: every kiosk GETs the wheel at once, again until the stop file
    exists; prints [bytes, seconds, rounds, the first round's seconds]."""
    import httpx

    # Real kiosks download on their own CPUs: here they share the server's cores, so they yield to it.
    os.nice(19)
    creds = json.loads(Path(creds_file).read_text())

    def fetch(device_id: str) -> int:
        # A new connection each time, as a kiosk's download would open.
        with httpx.Client(base_url=creds["base"], auth=(device_id, creds["secrets"][device_id]), timeout=300) as c:
            r = c.get("/kiosk/v1/releases/9.0.0/palaute-9.0.0-py3-none-any.whl")
            r.raise_for_status()
            return len(r.content)

    got, rounds, first = 0, 0, 0.0
    started = time.perf_counter()
    Path(creds["started"]).touch()
    with ThreadPoolExecutor(len(creds["secrets"])) as pool:
        while rounds == 0 or not Path(creds["stop"]).exists():
            got += sum(pool.map(fetch, creds["secrets"]))
            rounds += 1
            first = first or time.perf_counter() - started
    print(json.dumps([got, time.perf_counter() - started, rounds, first]))


class RootUnits:
    """systemd for the arm64 root, from the host (a chroot runs no init): palaute-kiosk.service
    and palaute-kiosk-updater.service as their units say (the kiosk as palaute from
    releases/current, Restart=on-failure after 5 s; the updater as root from releases/stable,
    Restart=always after 5 s), and ``systemctl restart palaute-kiosk.service`` (the updater's
    restart command, recorded by the root's systemctl stand-in) stops the kiosk (SIGTERM,
    TimeoutStopSec 20 s) and starts it at once. The kiosk runs ``--simulate`` (mock pins,
    simulated presses): there is no display under qemu-user, the rest of it is the real kiosk.
    It also notes, every 0.1 s, each change of the updater's phase, the kiosk's health report and
    the ``current`` link, with its time: the bench's phases are read from that log."""

    KIOSK = ("/opt/palaute/releases/current/bin/palaute-kiosk", "--config", "/etc/palaute/kiosk.toml", "--simulate")
    UPDATER = ("/opt/palaute/releases/stable/bin/palaute-kiosk-updater", "--config", "/etc/palaute/kiosk.toml")
    RESTART_S = 5.0

    def __init__(self, root: Path, logs: Path) -> None:
        from tests.support.arm64_root import systemctl_calls

        self.root, self.logs = root, logs
        self.calls = len(systemctl_calls(root))
        self.procs: dict[str, subprocess.Popen | None] = {"kiosk": None, "updater": None}
        self.exited: dict[str, float] = {}
        self.restarts = 0
        self.log: list[tuple[float, str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._seen: dict[str, Any] = {}

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for unit in self.procs:
            self._kill(unit)

    def _start(self, unit: str) -> None:
        from tests.support.arm64_root import start_in_root

        if unit == "kiosk":
            argv, user, env = self.KIOSK, "palaute", ("HOME=/var/lib/palaute-home",)
        else:
            argv, user, env = self.UPDATER, None, ()
        self.procs[unit] = start_in_root(self.root, *argv, user=user, env=env, log=self.logs / f"{unit}.log")
        self._note(unit, "started")

    def _kill(self, unit: str) -> None:
        proc = self.procs[unit]
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs[unit] = None

    def _note(self, key: str, value: Any) -> None:
        self.log.append((time.monotonic(), key, value))

    def _run(self) -> None:
        from kiosk import release_switch as rs
        from tests.support.arm64_root import systemctl_calls

        state_dir = self.root / "var/lib/palaute"
        while not self._stop.wait(0.1):
            calls = systemctl_calls(self.root)
            for call in calls[self.calls:]:
                if call.startswith("restart") and "palaute-kiosk.service" in call.split():
                    self._note("kiosk", "restart requested")
                    self._kill("kiosk")
                    self._start("kiosk")
            self.calls = len(calls)
            for unit, proc in self.procs.items():
                if proc is not None and proc.poll() is not None:
                    self._note(unit, f"exited {proc.returncode}")
                    self.procs[unit] = None
                    self.exited[unit] = time.monotonic()
                    if unit == "kiosk" and proc.returncode == 0:
                        self.exited.pop(unit)  # Restart=on-failure
                if (self.procs[unit] is None and unit in self.exited
                        and time.monotonic() - self.exited[unit] >= self.RESTART_S):
                    del self.exited[unit]
                    if unit == "kiosk":  # systemd's NRestarts, which the updater reads
                        self.restarts += 1
                        (self.root / "var/log/nrestarts-palaute-kiosk.service").write_text(f"{self.restarts}\n")
                    self._start(unit)
            update = rs.read_json(state_dir / "update-state.json") or {}
            health = rs.read_json(state_dir / "health.json") or {}
            seen = {"phase": (update.get("phase"), update.get("version")),
                    "health": (health.get("version"), bool(health.get("online") and health.get("outbox_ok")
                                                            and health.get("selftest_ok")), health.get("pid")),
                    "current": rs.linked(self.root / "opt/palaute/releases", rs.CURRENT)}
            for key, value in seen.items():
                if self._seen.get(key) != value:
                    self._seen[key] = value
                    self._note(key, value)

    def start(self) -> None:
        self._start("kiosk")
        self._start("updater")

    def first(self, key: str, after: float | None, match: Callable[[Any], bool]) -> float | None:
        """When a ``key`` whose value ``match`` es was first noted after ``after`` (monotonic), or None."""
        if after is None:
            return None
        return next((t for t, k, v in list(self.log) if t >= after and k == key and match(v)), None)


def arm64(args: argparse.Namespace) -> None:
    import shutil

    import uvicorn
    from sqlalchemy import select

    from fleet_server.app import create_app
    from fleet_server.core.settings import load_settings
    from fleet_server.devtools.local_broker import Mosquitto, free_port
    from fleet_server.fleet import rollouts
    from fleet_server.fleet.provisioning import BundleOptions, add_station, provision_device, write_bundle
    from fleet_server.fleet.releases import add_release, build_release, sign_release
    from fleet_server.models import Device, Rollout
    from palaute_wire import signing
    from tests.support.arm64_root import CACHE, build_tarball, in_root, unpacked_root

    if os.geteuid() != 0:
        sys.exit("bench_updates.py arm64 needs root (chroot, binfmt_misc)")
    tarball = build_tarball()
    first_v, update_v, all_new_v, broken_v = "9.1.0", "9.2.0", "9.3.0", "9.4.0"
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "broker") as broker, \
            unpacked_root(tarball) as root:
        tmp_path = Path(tmp)
        key = tmp_path / "key"
        signing.write_private_key(key, signing.new_private_key())
        public = signing.public_key_text(signing.load_private_key(key))
        started = time.monotonic()
        broken_src = _broken_copy(tmp_path / "broken-src", broken_v)
        for version, src in ((first_v, REPO), (update_v, REPO), (all_new_v, REPO), (broken_v, broken_src)):
            build_release(src, tmp_path / version, version=version, python_versions=[args.python],
                          download_cache=CACHE / "wheels")
            sign_release(tmp_path / version, key)
        print(f"built and signed 4 releases for the Pi (python {args.python}) in {time.monotonic() - started:.0f} s "
              f"({broken_v} is deliberately broken: its kiosk dies at start)")
        port = free_port()
        settings = load_settings(environ={}, database_url=f"sqlite:///{tmp_path / 'fleet.db'}", mqtt_url=broker.url,
                                 session_secret="s" * 40, release_store_dir=tmp_path / "store",
                                 release_public_key=public, kiosk_release_url=f"http://127.0.0.1:{port}",
                                 alert_check_interval_s=3600)  # the bench runs the rollout passes itself
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        factory = app.state.session_factory
        with factory() as s, s.begin():
            add_station(s, "bench", "Bench")
            device, secret = provision_device(s, "bench-1", "bench")
            for version in (first_v, update_v, all_new_v, broken_v):
                add_release(s, settings.release_store_dir, public, tmp_path / version)
            bundle = write_bundle(tmp_path / "bundles", device, secret, BundleOptions(
                broker_url=broker.url, ca_file=None, wheelhouse=tmp_path / first_v, release_public_key=public))
        shutil.copytree(bundle, root / "root/bundle")

        t = time.monotonic()
        install = in_root(root, "sh", "/root/bundle/install-kiosk.sh", timeout=3600)
        first = time.monotonic() - t
        if install.returncode != 0:
            sys.exit(f"install-kiosk.sh failed:\n{install.stdout[-2000:]}\n{install.stderr[-2000:]}")
        wheels = sorted((tmp_path / first_v).glob("*.whl"))
        tag = "cp" + args.python.replace(".", "")
        mine = [w for w in wheels if _for_python(w.name, tag)]
        print(f"first install (install-kiosk.sh, pip from the bundle, byte-compiling): {first:.0f} s, "
              f"{len(mine)} wheels, {_mb(sum(w.stat().st_size for w in mine))}")

        releases = root / "opt/palaute/releases"
        state_dir = root / "var/lib/palaute"

        def device() -> dict:
            with factory() as s:
                d = s.get(Device, "bench-1")
                return {"version": d.software_version, **(d.last_status or {})}

        def wait(what: str, check, timeout: float) -> float:
            deadline = time.monotonic() + timeout
            while not check():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for: {what}\n{_tail(logs)}")
                time.sleep(0.1)
            return time.monotonic()

        def roll_out(version: str, health_timeout_s: float) -> float:
            """A rollout of ``version`` to the one kiosk, and the server's rollout pass that sends the
            target (a real server runs it every alert_check_interval_s). Returns when it was sent."""
            with factory() as s, s.begin():
                for active in s.scalars(select(Rollout.id).where(Rollout.state.in_(rollouts.ACTIVE))).all():
                    rollouts.abort(s, active, "the bench's next rollout")
                rollouts.create_rollout(s, version, {"kind": "all"}, waves="1", wave_healthy_s=1, max_failures=0,
                                        install_window="any", health_timeout_s=health_timeout_s)
            sent = time.monotonic()
            app.state.fleet_loop.advance_rollouts()
            return sent

        logs = tmp_path / "units"
        logs.mkdir()
        with RootUnits(root, logs) as units:
            units.start()
            up = wait("the kiosk online with its updater", lambda: device().get("update_state") == "idle"
                      and device().get("online"), timeout=900)
            print(f"kiosk {first_v} and its updater started and online: {up - units.log[0][0]:.0f} s after start "
                  "(under qemu-user)")

            def update_to(version: str, label: str) -> None:
                t0 = roll_out(version, 300)
                done = wait(f"{version} committed", lambda: device().get("update_state") == "committed"
                            and device().get("version") == version, timeout=1800)
                m = rs_state(state_dir)["measured"]
                phases = _phases(units, t0, version)
                print(f"{label}: downloaded {_mb(m['downloaded_bytes'])} ({m['reused_files']} files kept; "
                      f"the updater's own figures: download + verify {m['download_s']:.1f} s, install {m['install_s']:.1f} s)")
                _print_phases(phases, t0, done)

            own = next((tmp_path / update_v).glob("palaute-*.whl")).stat().st_size
            update_to(update_v, f"update {first_v} -> {update_v} (only the project's wheel changed, {_mb(own)})")
            shutil.rmtree(releases / ".files")
            update_to(all_new_v, f"update {update_v} -> {all_new_v} with the kiosk's file cache emptied (every file new)")

            t0 = roll_out(broken_v, args.health_timeout)
            done = wait("the rollback seen by the server", lambda: device().get("update_state") == "rolled_back"
                        and device().get("version") == all_new_v, timeout=1800)
            back = units.first("phase", t0, lambda v: v == ("rolled_back", broken_v))
            wait(f"{all_new_v} healthy again", lambda: units.first(
                "health", back, lambda v: v[0] == all_new_v and v[1]) is not None, timeout=600)
            print(f"update {all_new_v} -> {broken_v} (broken; health_timeout_s {args.health_timeout:.0f} s, "
                  f"300 s by default): {rs_state(state_dir).get('error')}")
            _print_phases(_phases(units, t0, broken_v, back_to=all_new_v), t0, done)
        server.should_exit = True
    print(f"load average (1, 5, 15 min) at the start {_load(load_at_start)}, at the end {_load(os.getloadavg())}")


def rs_state(state_dir: Path) -> dict:
    from kiosk import release_switch as rs

    return rs.read_json(state_dir / "update-state.json") or {}


def _phases(units: RootUnits, t0: float, version: str, back_to: str | None = None) -> list[tuple[str, float | None]]:
    """The path from the target sent to healthy (or, with ``back_to``, rolled back and healthy
    again), from what :class:`RootUnits` noted: each phase's end."""
    def phase(*names: str) -> Callable[[Any], bool]:
        return lambda v: v[0] in names and v[1] == version

    target = units.first("phase", t0, phase("downloading", "waiting", "installing"))
    installing = units.first("phase", target, phase("installing"))
    restart = units.first("kiosk", installing, lambda v: v == "restart requested")
    steps = [("the kiosk stored the target, the updater started downloading", target),
             ("download + verify (sha256)", installing),
             ("install (new venv, pip, byte-compile, import check), switch current", restart)]
    if back_to is None:
        up = units.first("health", restart, lambda v: v[0] == version)
        steps += [("restart: the new version's kiosk reports in", up),
                  ("healthy: its version, outbox, selftest, online", units.first(
                      "health", restart, lambda v: v[0] == version and v[1])),
                  ("committed by the updater (stable switched)", units.first("phase", restart, phase("committed")))]
    else:
        back = units.first("phase", restart, phase("rolled_back"))
        steps += [("trial: the broken kiosk never reports; the updater rolls back after its 3rd restart", back),
                  (f"rolled back: {back_to}'s kiosk restarted and healthy again",
                   units.first("health", back, lambda v: v[0] == back_to and v[1]))]
    return steps


def _print_phases(steps: list[tuple[str, float | None]], t0: float, seen: float) -> None:
    last = t0
    for name, at in steps:
        if at is None:
            print(f"  {name}: not seen")
            continue
        print(f"  {at - last:7.1f} s  {name}")
        last = at
    print(f"  total {last - t0:.1f} s from the target sent; the server had it in the kiosk's status "
          f"{seen - t0:.1f} s after the target was sent")


def _load(avg: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.1f}" for x in avg)


def _tail(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                     for p in sorted(logs.glob("*.log")))


def _broken_copy(dest: Path, version: str) -> Path:
    """This repository with a kiosk that installs and imports (the updater checks that before the
    switch) and dies when it starts, as tests/e2e/test_updates.py builds its broken release."""
    import shutil

    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(".git", ".venv", "var", "artifacts", "build",
                                                              "*.egg-info", "__pycache__", "docs"))
    app = dest / "kiosk/app.py"
    marker = 'raise RuntimeError("kiosk already started")'
    app.write_text(app.read_text().replace(
        marker, marker + f'\n        raise RuntimeError("release {version} is deliberately broken: the kiosk dies at start")',
        1))
    return dest


def main() -> None:
    if sys.argv[1:2] == ["_fetch"]:
        _fetch(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sizes")
    s.add_argument("--platform", choices=("pi", "here"), default="pi")
    s.add_argument("--python", action="append", default=None, help="the Pi's Python (repeat; default 3.11 and 3.13)")
    s.add_argument("--download-cache", default=None, help="reuse downloaded dependency wheels from here")
    s.add_argument("--version", default="0.2.0")
    s.add_argument("--out", default=None, help="keep the wheelhouse here (an empty directory)")
    s.add_argument("--extra", action="append", default=None, help="palaute extras (default: kiosk)")
    a = sub.add_parser("arm64")
    a.add_argument("--python", default="3.11", help="the root's Python (Debian 12: 3.11)")
    a.add_argument("--health-timeout", type=float, default=60,
                   help="the broken release's trial: how long the updater waits before it rolls back")
    v = sub.add_parser("serve")
    v.add_argument("--kiosks", type=int, default=100)
    v.add_argument("--wheel-kb", type=int, default=850, help="size of the served wheel (the kiosk wheel is ~850 kB)")
    v.add_argument("--samples", type=int, default=100, help="requests timed per page, quiet and during the downloads")
    v.add_argument("--via", choices=("both", "uvicorn", "nginx"), default="both",
                   help="what sends the files: uvicorn alone, or nginx in front as deployed (default both)")
    args = parser.parse_args()
    if args.what == "sizes":
        args.extra = args.extra if args.extra is not None else ["kiosk"]
        sizes(args)
    elif args.what == "arm64":
        arm64(args)
    else:
        serve(args)


if __name__ == "__main__":
    main()
