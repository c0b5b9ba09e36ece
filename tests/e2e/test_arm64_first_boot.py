"""First boot of a kiosk, as on a Raspberry Pi: the real bundle's installer in an arm64 Debian 12 root.

The root runs under qemu-user emulation (tests/support/arm64-root.sh builds it once and
caches it under /var/tmp/palaute-arm64, with the kiosk's Debian packages installed, since
dpkg under emulation is the slow part; tests/support/arm64_root.py unpacks a pristine copy
per run with a recorder in place of ``systemctl``: no init runs in a chroot). IT builds a
release for the Pi (``palaute-server release build``), signs it, adds it to the release
store and provisions the kiosk with that release as its wheelhouse; then the test does what
cloud-init's ``runcmd`` does on a Pi: runs install-kiosk.sh from the bundle. Then, inside
the root: the release layout the updater works in (``/opt/palaute/releases/<version>``,
``current``, ``stable``, the wheels kept by hash), the two units the installer enabled
against what the root really has, the updater started as its unit starts it,
``palaute-kiosk check-config`` and a short ``--simulate`` run as the ``palaute`` user
against the broker this test started on loopback (TLS, the device's own account).

Needs root (chroot, mounts, binfmt_misc); ``bash run.sh test`` runs as root on CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from fleet_server.devtools.local_broker import free_port
from fleet_server.fleet.broker_accounts import new_secret
from kiosk import release_switch as rs
from kiosk.updater import sha256_file
from palaute_wire import contract as c
from palaute_wire import signing
from tests.support.arm64_root import (
    CACHE,
    CHROOT_ENV,
    ROOT,
    build_tarball,
    in_root,
    systemctl_calls,
    unit_keys,
    unpacked_root,
)
from tests.support.fleet_broker import DeployBroker
from tests.support.mqtt_probe import Probe
from tests.support.tls import make_tls

BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.arm64, pytest.mark.broker, pytest.mark.timeout(1800)]


@pytest.fixture(scope="session")
def arm64_tarball(request) -> Path:
    """The cached arm64 root (built on first use, with progress on the terminal)."""
    if os.geteuid() != 0:
        pytest.fail("the arm64 first-boot test needs root (chroot, binfmt_misc): run bash run.sh test as root",
                    pytrace=False)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        try:
            return build_tarball()
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"could not build the arm64 root (exit {exc.returncode}); see {CACHE}/*.log", pytrace=False)


@pytest.fixture
def arm64_root(arm64_tarball):
    """A pristine arm64 root with /proc and /dev, removed after the test."""
    with unpacked_root(arm64_tarball) as root:
        yield root


def _palaute_server(env: dict, *args: str, timeout: float = 300) -> str:
    run = subprocess.run([str(BIN / "palaute-server"), *args], env=env, capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert run.returncode == 0, f"palaute-server {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
    return run.stdout


def test_a_provisioned_bundle_installs_and_runs_on_arm64_debian_12(tmp_path, arm64_root, processes):
    started = time.monotonic()
    tls = make_tls(tmp_path / "tls")
    kiosk_port, server_port = free_port(), free_port()
    auth = tmp_path / "auth"
    server_password = new_secret()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAUTE_")}
    env.update({
        "PALAUTE_DATABASE_URL": f"sqlite:///{tmp_path / 'fleet.db'}",
        "PALAUTE_BROKER_PASSWORD_FILE": str(auth / "passwd"),
        "PALAUTE_BROKER_ACL_FILE": str(auth / "acl"),
        "PALAUTE_MQTT_URL": f"mqtt://127.0.0.1:{server_port}",
        "PALAUTE_MQTT_USERNAME": "palaute-server",
        "PALAUTE_MQTT_PASSWORD": server_password,
        "PALAUTE_KIOSK_BROKER_URL": f"mqtts://127.0.0.1:{kiosk_port}",
        "PALAUTE_KIOSK_CA_FILE": str(tls.ca_cert),
    })

    # IT builds a release for the Pi, signs it off the server, adds it to the release store and
    # provisions the kiosk from that same release directory, as docs/operations.md says.
    key = tmp_path / "operator.key"
    signing.write_private_key(key, signing.new_private_key())
    public_key = signing.public_key_text(signing.load_private_key(key))
    env.update({"PALAUTE_RELEASE_PUBLIC_KEY": public_key, "PALAUTE_RELEASE_STORE_DIR": str(tmp_path / "store")})
    release = tmp_path / "release"
    _palaute_server(env, "release", "build", "--out", str(release), "--source", str(ROOT), "--python", "3.11",
                    "--download-cache", str(CACHE / "wheels"))
    _palaute_server(env, "release", "sign", str(release), "--key", str(key))
    _palaute_server(env, "release", "add", str(release))
    version = next(release.glob("palaute-*.whl")).name.split("-")[1]
    _palaute_server(env, "station", "add", "kalvia", "--name", "Kälviä health station")
    _palaute_server(env, "device", "provision", "kalvia-1", "--station", "kalvia",
                    "--out", str(tmp_path / "bundles"), "--wheelhouse", str(release))
    shutil.copytree(tmp_path / "bundles" / "kalvia-1", arm64_root / "root" / "bundle")
    prepared = time.monotonic()

    # First boot: the installer, exactly as shipped in the bundle, on arm64.
    arch = in_root(arm64_root, "uname", "-m")
    assert arch.stdout.strip() == "aarch64", arch.stdout + arch.stderr
    # PIP_NO_COMPILE: byte-compiling some 30 packages under emulation is most of the install's time
    # and proves nothing about the installer (a real Pi compiles them at install, as pip does by default).
    install = in_root(arm64_root, "sh", "/root/bundle/install-kiosk.sh", env=("PIP_NO_COMPILE=1",))
    installed = time.monotonic()
    assert install.returncode == 0, f"install-kiosk.sh failed:\n{install.stdout[-3000:]}\n{install.stderr[-3000:]}"
    units = ("palaute-kiosk.service", "palaute-kiosk-updater.service")
    assert systemctl_calls(arm64_root) == ["daemon-reload", f"enable {' '.join(units)}", f"restart {' '.join(units)}"]

    # The release layout from the first boot: the release is a venv of its own, current and stable name it.
    releases = arm64_root / "opt/palaute/releases"
    assert (releases / version).is_dir() and not (releases / version).is_symlink()
    assert rs.is_installed(releases, version)
    assert (rs.linked(releases, rs.CURRENT), rs.linked(releases, rs.STABLE)) == (version, version)
    assert not (arm64_root / "opt/palaute/venv").exists()
    # The release's wheels for this Python are kept by hash: an update downloads only what changed.
    pinned = [line.split("--hash=sha256:")[1].strip() for line in
              (release / "requirements-cp311.txt").read_text().splitlines() if "--hash=" in line]
    assert set(pinned) <= {p.name for p in (releases / ".files").iterdir()}
    assert sha256_file(next(release.glob("palaute-*.whl"))) in pinned
    # Its marker records the signed manifest it was installed from: the first update installs only what changed.
    assert (releases / version / rs.INSTALLED_MARKER).read_text() == (release / "manifest.json").read_text()
    kiosk_toml = tomllib.loads((arm64_root / "etc/palaute/kiosk.toml").read_text())
    assert kiosk_toml["updates"]["release_public_key"] == public_key

    # The units that would be enabled, against what the root has: the kiosk from current, the updater from stable.
    unit_files = {name: (arm64_root / "etc/systemd/system" / name).read_text() for name in units}
    for name, text in unit_files.items():
        assert text == (ROOT / "deploy/systemd" / name).read_text(), name
    updater_exec = unit_keys(unit_files["palaute-kiosk-updater.service"])["ExecStart"][0].split()
    assert updater_exec[0] == "/opt/palaute/releases/stable/bin/palaute-kiosk-updater"
    assert os.access(arm64_root / updater_exec[0].lstrip("/"), os.X_OK), updater_exec[0]
    unit = unit_keys(unit_files["palaute-kiosk.service"])
    exec_start = unit["ExecStart"][0].split()
    assert exec_start[0] == "/opt/palaute/releases/current/bin/palaute-kiosk"
    assert os.access(arm64_root / exec_start[0].lstrip("/"), os.X_OK), exec_start[0]
    config_path = exec_start[exec_start.index("--config") + 1]
    user = unit["User"][0]
    passwd = {line.split(":")[0]: line.split(":") for line in (arm64_root / "etc/passwd").read_text().splitlines()}
    assert user in passwd
    workdir = arm64_root / unit["WorkingDirectory"][0].lstrip("/")
    assert workdir.is_dir() and workdir.stat().st_uid == int(passwd[user][2])
    assert "GPIOZERO_PIN_FACTORY=lgpio" in unit["Environment"]
    lgpio = in_root(arm64_root, "/opt/palaute/releases/current/bin/python", "-c",
                    "import lgpio, gpiozero, kivy, paho.mqtt")
    assert lgpio.returncode == 0, lgpio.stderr[-2000:]
    # The updater starts from stable, as its unit runs it (no target yet: it has nothing to do).
    updater = in_root(arm64_root, *updater_exec, "--once")
    assert updater.returncode == 0, updater.stdout[-2000:] + updater.stderr[-2000:]
    assert (rs.read_json(arm64_root / "var/lib/palaute/update-state.json") or {"phase": "idle"})["phase"] == "idle"

    check = in_root(arm64_root, exec_start[0], "check-config", config_path, user=user)
    assert check.returncode == 0, check.stdout + check.stderr

    # A short simulated run as the service user, against the broker on loopback.
    with DeployBroker(tmp_path / "broker", auth / "passwd", auth / "acl", tls=tls,
                      kiosk_port=kiosk_port, server_port=server_port) as broker, \
            Probe(broker.server_port, username="palaute-server", password=server_password) as server:
        assert server.connect()
        events = c.topic("kalvia", "kalvia-1", "events")
        server.subscribe(events)
        kiosk = processes.start(["chroot", "--userspec", f"{user}:{user}", str(arm64_root), *CHROOT_ENV,
                                 *unit["Environment"],  # as systemd would set them
                                 exec_start[0], "--config", config_path, "--simulate", "--rate", "120", "--count", "3"],
                                log=tmp_path / "kiosk.log")
        try:
            message = server.expect(events, timeout=240)
        except TimeoutError:
            pytest.fail(f"no events from the arm64 kiosk:\n{(tmp_path / 'kiosk.log').read_text()[-3000:]}",
                        pytrace=False)
        _, batch = c.decode(message.topic, message.payload)
        assert batch.device_id == "kalvia-1" and batch.events
        assert processes.stop(kiosk, timeout=60) == 0, (tmp_path / "kiosk.log").read_text()[-3000:]
    done = time.monotonic()
    print(f"\narm64 first boot: prepare {prepared - started:.0f} s, install {installed - prepared:.0f} s, "
          f"check + simulate {done - installed:.0f} s")
