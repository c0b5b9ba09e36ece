"""Software-update benchmark: bytes per update, the Pi's wheelhouse, and 100 kiosks downloading at once.

    python bench/bench_updates.py sizes [--platform pi|here] [--python 3.11] [--out DIR]
    python bench/bench_updates.py serve [--kiosks 100]
    python bench/bench_updates.py arm64                 # as root, ~15 min under qemu

``sizes`` builds a release from this repository the way ``palaute-server release
build`` does (the kiosk wheel with ``pip wheel``, its dependencies as wheels, for the
Pi with ``--platform``), and prints the files and sizes: what a first install
downloads, and what an update that changes only the project downloads (the kiosk
wheel alone; the kiosk keeps the other files by hash).

``serve`` runs the fleet server (uvicorn, SQLite) with one release, and N kiosks
with their own device credentials fetch the kiosk wheel at the same time, while
the dashboard's devices page is asked for every 100 ms. It prints the downloads'
total time and throughput and the page's p50/p95 during the storm next to its p95
when quiet.

``arm64`` (as root) measures on the arm64 Debian 12 root under qemu-user that the first-boot
test uses (tests/support/arm64_root.py; the cached root is only read): it builds two Pi
releases from this repository that differ only in the version (so only the project's wheel
changes), provisions a kiosk with the first and runs the bundle's install-kiosk.sh there,
then gives the kiosk's updater the second as its target, served by the fleet server with the
device's own credentials, and runs one updater step: download, verify, install (a venv linked
from the running release plus pip), switch. Then once more with the updater's file cache
emptied (a release whose files are all new). It prints the times and the bytes downloaded.
Under emulation every Python instruction is several times slower than on a Pi 4/5, so the
times are an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

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
        settings = load_settings(environ={}, database_url=f"sqlite:///{tmp_path / 'fleet.db'}", mqtt_url=broker.url,
                                 session_secret="s" * 40, release_store_dir=tmp_path / "store",
                                 release_public_key=signing.public_key_text(signing.load_private_key(key)))
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
        from fastapi.testclient import TestClient

        base = f"http://127.0.0.1:{port}"
        page = httpx.Client(base_url=base)
        # Sign in over real HTTP: reuse the helper's form flow on a TestClient bound to the same app.
        tc = TestClient(app, base_url=base)
        sign_in(tc, "it", next_url="/devices")
        page.cookies.update(tc.cookies)

        def page_times(stop: threading.Event, out: list[float]) -> None:
            while not stop.is_set():
                t = time.perf_counter()
                assert page.get("/devices").status_code == 200
                out.append(time.perf_counter() - t)
                stop.wait(0.1)

        quiet: list[float] = []
        stop = threading.Event()
        t = threading.Thread(target=page_times, args=(stop, quiet))
        t.start()
        time.sleep(3)
        stop.set()
        t.join()

        busy: list[float] = []
        stop = threading.Event()
        t = threading.Thread(target=page_times, args=(stop, busy))
        t.start()
        # The kiosks are another process, as they would be: their threads must not share the server's GIL.
        creds = tmp_path / "kiosks.json"
        creds.write_text(json.dumps({"base": base, "secrets": secrets}))
        result = subprocess.run([sys.executable, __file__, "_fetch", str(creds)], capture_output=True, text=True,
                                check=True)
        got, took = json.loads(result.stdout.strip().splitlines()[-1])
        stop.set()
        t.join()
        server.should_exit = True

        def p(xs: list[float], q: float) -> float:
            return statistics.quantiles(xs, n=100)[q - 1] * 1000 if len(xs) >= 2 else xs[0] * 1000

        print(f"{args.kiosks} kiosks fetched a {args.wheel_kb} kB wheel at once: {_mb(got)} in {took:.2f} s "
              f"({got / took / 1e6:.1f} MB/s, device secret checked on each request)")
        print(f"/devices while quiet: p50 {p(quiet, 50):.0f} ms, p95 {p(quiet, 95):.0f} ms ({len(quiet)} requests)")
        print(f"/devices during the downloads: p50 {p(busy, 50):.0f} ms, p95 {p(busy, 95):.0f} ms "
              f"({len(busy)} requests)")


def _fetch(creds_file: str) -> None:
    """The kiosks' side of ``serve``: every kiosk GETs the wheel at once; prints [bytes, seconds]."""
    import httpx

    creds = json.loads(Path(creds_file).read_text())

    def fetch(device_id: str) -> int:
        with httpx.Client(base_url=creds["base"], auth=(device_id, creds["secrets"][device_id]), timeout=300) as c:
            r = c.get("/kiosk/v1/releases/9.0.0/palaute-9.0.0-py3-none-any.whl")
            r.raise_for_status()
            return len(r.content)

    started = time.perf_counter()
    with ThreadPoolExecutor(len(creds["secrets"])) as pool:
        got = sum(pool.map(fetch, creds["secrets"]))
    print(json.dumps([got, time.perf_counter() - started]))


def arm64(args: argparse.Namespace) -> None:
    import shutil

    import uvicorn

    from fleet_server.app import create_app
    from fleet_server.core.settings import load_settings
    from fleet_server.devtools.local_broker import Mosquitto, free_port
    from fleet_server.fleet.provisioning import BundleOptions, add_station, provision_device, write_bundle
    from fleet_server.fleet.release_targets import release_url
    from fleet_server.fleet.releases import add_release, build_release, sign_release
    from fleet_server.models import Release
    from kiosk import release_switch as rs
    from kiosk.state import save_station_config
    from palaute_wire import contract as c
    from palaute_wire import signing
    from palaute_wire.surveys import default_station_config
    from tests.support.arm64_root import CACHE, build_tarball, in_root, unpacked_root

    if os.geteuid() != 0:
        sys.exit("bench_updates.py arm64 needs root (chroot, binfmt_misc)")
    tarball = build_tarball()
    versions = ("9.1.0", "9.2.0", "9.3.0")
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "broker") as broker, \
            unpacked_root(tarball) as root:
        tmp_path = Path(tmp)
        key = tmp_path / "key"
        signing.write_private_key(key, signing.new_private_key())
        public = signing.public_key_text(signing.load_private_key(key))
        started = time.monotonic()
        for version in versions:
            build_release(REPO, tmp_path / version, version=version, python_versions=[args.python],
                          download_cache=CACHE / "wheels")
            sign_release(tmp_path / version, key)
        print(f"built and signed {len(versions)} releases for the Pi (python {args.python}) in "
              f"{time.monotonic() - started:.0f} s")
        port = free_port()
        settings = load_settings(environ={}, database_url=f"sqlite:///{tmp_path / 'fleet.db'}", mqtt_url=broker.url,
                                 session_secret="s" * 40, release_store_dir=tmp_path / "store",
                                 release_public_key=public, kiosk_release_url=f"http://127.0.0.1:{port}")
        app = create_app(settings)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        factory = app.state.session_factory
        with factory() as s, s.begin():
            add_station(s, "bench", "Bench")
            device, secret = provision_device(s, "bench-1", "bench")
            for version in versions:
                add_release(s, settings.release_store_dir, public, tmp_path / version)
            bundle = write_bundle(tmp_path / "bundles", device, secret, BundleOptions(
                broker_url=broker.url, ca_file=None, wheelhouse=tmp_path / versions[0], release_public_key=public))
        shutil.copytree(bundle, root / "root/bundle")

        t = time.monotonic()
        install = in_root(root, "sh", "/root/bundle/install-kiosk.sh", timeout=3600)
        first = time.monotonic() - t
        if install.returncode != 0:
            sys.exit(f"install-kiosk.sh failed:\n{install.stdout[-2000:]}\n{install.stderr[-2000:]}")
        wheels = sorted((tmp_path / versions[0]).glob("*.whl"))
        tag = "cp" + args.python.replace(".", "")
        mine = [w for w in wheels if _for_python(w.name, tag)]
        print(f"first install (install-kiosk.sh, pip from the bundle, byte-compiling): {first:.0f} s, "
              f"{len(mine)} wheels, {_mb(sum(w.stat().st_size for w in mine))}")

        releases = root / "opt/palaute/releases"
        state_dir = root / "var/lib/palaute"

        def update_to(version: str) -> dict:
            with factory() as s:
                release = s.get(Release, version)
                target = c.ReleaseTarget(device_id="bench-1", version=version, url=release_url(settings, version),
                                         manifest=release.manifest, signature=release.signature,
                                         install_window="any")
            save_station_config(state_dir, default_station_config("bench").model_copy(update={"release": target}))
            (state_dir / "update-state.json").unlink(missing_ok=True)
            t = time.monotonic()
            run = in_root(root, "/opt/palaute/releases/stable/bin/palaute-kiosk-updater", "--config",
                          "/etc/palaute/kiosk.toml", "--once", timeout=3600)
            took = time.monotonic() - t
            state = rs.read_json(state_dir / "update-state.json") or {}
            if state.get("phase") != "trial" or rs.linked(releases, rs.CURRENT) != version:
                sys.exit(f"the update to {version} did not switch ({state}):\n{run.stderr[-2000:]}")
            return {**state["measured"], "step_s": round(took, 1)}

        own = next(w for w in (tmp_path / versions[1]).glob("palaute-*.whl")).stat().st_size
        m = update_to(versions[1])
        print(f"update {versions[0]} -> {versions[1]} (only the project's wheel changed): downloaded "
              f"{_mb(m['downloaded_bytes'])} (the kiosk wheel is {_mb(own)}; {m['reused_files']} files kept), "
              f"download + verify {m['download_s']:.1f} s, install {m['install_s']:.1f} s, "
              f"whole updater step {m['step_s']:.0f} s")
        shutil.rmtree(releases / ".files")
        m = update_to(versions[2])
        print(f"update {versions[1]} -> {versions[2]} with an empty file cache (every file new): downloaded "
              f"{_mb(m['downloaded_bytes'])}, download + verify {m['download_s']:.1f} s, "
              f"install {m['install_s']:.1f} s, whole updater step {m['step_s']:.0f} s")
        server.should_exit = True


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
    v = sub.add_parser("serve")
    v.add_argument("--kiosks", type=int, default=100)
    v.add_argument("--wheel-kb", type=int, default=850, help="size of the served wheel (the kiosk wheel is ~850 kB)")
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
