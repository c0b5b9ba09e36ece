"""First boot of a kiosk, as on a Raspberry Pi: the real bundle's installer in an arm64 Debian 12 root.

The root runs under qemu-user emulation (tests/support/arm64-root.sh builds it once and
caches it under /var/tmp/palaute-arm64, with the kiosk's Debian packages installed, since
dpkg under emulation is the slow part). Each run unpacks a pristine copy, puts a recorder
in place of ``systemctl`` (no init runs in a chroot), and then does what cloud-init's
``runcmd`` does on a Pi: runs install-kiosk.sh from the bundle that ``palaute-server
device provision --wheelhouse`` wrote. Then, inside the root: ``palaute-kiosk
check-config`` and a short ``--simulate`` run as the ``palaute`` user against the
broker this test started on loopback (TLS, the device's own account), and the unit the
installer enabled is checked against what the root really has.

Needs root (chroot, mounts, binfmt_misc); ``bash run.sh test`` runs as root on CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fleet_server.devtools.local_broker import free_port
from fleet_server.fleet.broker_accounts import new_secret
from palaute_wire import contract as c
from tests.support.fleet_broker import DeployBroker
from tests.support.mqtt_probe import Probe
from tests.support.tls import make_tls

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CACHE = Path(os.environ.get("PALAUTE_ARM64_CACHE", "/var/tmp/palaute-arm64"))
RECORDER = """#!/bin/sh
# systemctl stand-in for the first-boot test: records each call, changes nothing.
echo "$*" >> /var/log/systemctl-calls
"""
CHROOT_ENV = ["/usr/bin/env", "-i", "HOME=/root", "LANG=C.UTF-8",
              "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

pytestmark = [pytest.mark.arm64, pytest.mark.broker, pytest.mark.timeout(1800)]


@pytest.fixture(scope="session")
def arm64_tarball(request) -> Path:
    """The cached arm64 root (built on first use, with progress on the terminal)."""
    if os.geteuid() != 0:
        pytest.fail("the arm64 first-boot test needs root (chroot, binfmt_misc): run bash run.sh test as root",
                    pytrace=False)
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        run = subprocess.run(["bash", str(ROOT / "tests/support/arm64-root.sh")], stdout=subprocess.PIPE,
                             text=True, check=False)
    if run.returncode != 0:
        pytest.fail(f"could not build the arm64 root (exit {run.returncode}); see {CACHE}/*.log", pytrace=False)
    return Path(run.stdout.strip().splitlines()[-1])


@pytest.fixture
def arm64_root(arm64_tarball):
    """A pristine arm64 root with /proc and /dev, removed after the test."""
    root = Path(tempfile.mkdtemp(prefix="run.", dir=CACHE))
    mounts: list[Path] = []
    try:
        subprocess.run(["tar", "-C", str(root), "-xf", str(arm64_tarball)], check=True)
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


def _palaute_server(env: dict, *args: str, timeout: float = 300) -> str:
    run = subprocess.run([str(BIN / "palaute-server"), *args], env=env, capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert run.returncode == 0, f"palaute-server {' '.join(args)}:\n{run.stdout}\n{run.stderr}"
    return run.stdout


def _in_root(root: Path, *argv: str, user: str | None = None, env: tuple[str, ...] = (),
             timeout: float = 900) -> subprocess.CompletedProcess:
    spec = ["--userspec", f"{user}:{user}"] if user else []
    return subprocess.run(["chroot", *spec, str(root), *CHROOT_ENV, *env, *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)


def _unit(text: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


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

    # IT builds the wheelhouse and provisions the kiosk, as docs/operations.md says.
    wheelhouse = tmp_path / "wheelhouse"
    _palaute_server(env, "device", "wheelhouse", str(wheelhouse), "--source", str(ROOT), "--python", "3.11",
                    "--download-cache", str(CACHE / "wheels"))
    _palaute_server(env, "station", "add", "kalvia", "--name", "Kälviä health station")
    _palaute_server(env, "device", "provision", "kalvia-1", "--station", "kalvia",
                    "--out", str(tmp_path / "bundles"), "--wheelhouse", str(wheelhouse))
    shutil.copytree(tmp_path / "bundles" / "kalvia-1", arm64_root / "root" / "bundle")
    prepared = time.monotonic()

    # First boot: the installer, exactly as shipped in the bundle, on arm64.
    arch = _in_root(arm64_root, "uname", "-m")
    assert arch.stdout.strip() == "aarch64", arch.stdout + arch.stderr
    # PIP_NO_COMPILE: byte-compiling some 30 packages under emulation is most of the install's time
    # and proves nothing about the installer (a real Pi compiles them at install, as pip does by default).
    install = _in_root(arm64_root, "sh", "/root/bundle/install-kiosk.sh", env=("PIP_NO_COMPILE=1",))
    installed = time.monotonic()
    assert install.returncode == 0, f"install-kiosk.sh failed:\n{install.stdout[-3000:]}\n{install.stderr[-3000:]}"
    calls = (arm64_root / "var/log/systemctl-calls").read_text().splitlines()
    assert calls == ["daemon-reload", "enable palaute-kiosk.service", "restart palaute-kiosk.service"]

    # The unit that would be enabled, against what the root has.
    unit_text = (arm64_root / "etc/systemd/system/palaute-kiosk.service").read_text()
    assert unit_text == (ROOT / "deploy/systemd/palaute-kiosk.service").read_text()
    unit = _unit(unit_text)
    exec_start = unit["ExecStart"][0].split()
    assert os.access(arm64_root / exec_start[0].lstrip("/"), os.X_OK), exec_start[0]
    config_path = exec_start[exec_start.index("--config") + 1]
    user = unit["User"][0]
    passwd = {line.split(":")[0]: line.split(":") for line in (arm64_root / "etc/passwd").read_text().splitlines()}
    assert user in passwd
    workdir = arm64_root / unit["WorkingDirectory"][0].lstrip("/")
    assert workdir.is_dir() and workdir.stat().st_uid == int(passwd[user][2])
    assert "GPIOZERO_PIN_FACTORY=lgpio" in unit["Environment"]
    lgpio = _in_root(arm64_root, "/opt/palaute/venv/bin/python", "-c", "import lgpio, gpiozero, kivy, paho.mqtt")
    assert lgpio.returncode == 0, lgpio.stderr[-2000:]

    check = _in_root(arm64_root, exec_start[0], "check-config", config_path, user=user)
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
