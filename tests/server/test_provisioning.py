"""The device registry and the provisioning bundle a blank SD card is set up from."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select, text

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.fleet.broker_accounts import verify_hash
from fleet_server.fleet.provisioning import (
    BrokerFiles,
    BundleOptions,
    ProvisioningError,
    add_station,
    provision_device,
    provision_many,
    read_device_csv,
    retire_device,
    rotate_secret,
    sync_broker,
    write_bundle,
)
from fleet_server.models import Device, DeviceCredential, Station
from kiosk.config import load_config
from tests.support.tls import make_ca
from tests.support.tools import require

ROOT = Path(__file__).parents[2]


@pytest.fixture
def sessions(sqlite_url):
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    yield make_session_factory(engine)
    engine.dispose()


@pytest.fixture
def options(tmp_path):
    ca, _ = make_ca(tmp_path / "ca")
    return BundleOptions(broker_url="mqtts://mqtt.palaute.example.fi:8883", ca_file=ca,
                         ssh_authorized_keys=("ssh-ed25519 AAAAC3Nza... it@county",))


def _provisioned(sessions, device_id="kalvia-1", station_id="kalvia"):
    with sessions() as s, s.begin():
        if s.get(Station, station_id) is None:
            add_station(s, station_id, "Kälviä health station")
        device, secret = provision_device(s, device_id, station_id)
    return device, secret


def test_secret_is_stored_only_as_a_mosquitto_hash(sessions, sqlite_url):
    _device, secret = _provisioned(sessions)
    with sessions() as s:
        cred = s.get(DeviceCredential, "kalvia-1")
        assert cred.password_hash.startswith("$7$") and verify_hash(secret, cred.password_hash)
        assert s.get(Device, "kalvia-1").state == "provisioned"
    # Nowhere in the database file, in any table.
    raw = Path(sqlite_url.removeprefix("sqlite:///")).read_bytes()
    wal = Path(sqlite_url.removeprefix("sqlite:///") + "-wal")
    raw += wal.read_bytes() if wal.exists() else b""
    assert secret.encode() not in raw


def test_bundle_kiosk_toml_loads_with_the_kiosks_own_loader(sessions, options, tmp_path):
    device, secret = _provisioned(sessions)
    bundle = write_bundle(tmp_path / "out", device, secret, options)
    config = load_config(bundle / "kiosk.toml")
    assert (config.device.station_id, config.device.device_id) == ("kalvia", "kalvia-1")
    assert config.broker.url == "mqtts://mqtt.palaute.example.fi:8883"
    assert config.broker.username == "kalvia-1"
    assert config.broker.secret() == secret
    assert config.broker.ca_file.read_text() == options.ca_file.read_text()
    assert stat.S_IMODE((bundle / "broker-password").stat().st_mode) == 0o600
    assert stat.S_IMODE((bundle / "user-data").stat().st_mode) == 0o600
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o700
    assert config.broker.mqtt_version == "5"


def test_a_server_on_mqtt_3_1_1_gives_its_kiosks_the_same_protocol(sessions, options, tmp_path):
    import dataclasses

    device, secret = _provisioned(sessions)
    bundle = write_bundle(tmp_path / "out", device, secret, dataclasses.replace(options, mqtt_version="3.1.1"))
    assert load_config(bundle / "kiosk.toml").broker.mqtt_version == "3.1.1"


def test_user_data_is_cloud_config_that_installs_the_kiosk(sessions, options, tmp_path):
    device, secret = _provisioned(sessions)
    bundle = write_bundle(tmp_path / "out", device, secret, options)
    text_ = (bundle / "user-data").read_text()
    assert text_.startswith("#cloud-config\n")
    doc = yaml.safe_load(text_)
    files = {f["path"]: f for f in doc["write_files"]}
    assert files["/etc/palaute/broker-password"]["content"].strip() == secret
    assert files["/etc/palaute/broker-password"]["permissions"] == "0600"
    assert files["/etc/palaute/broker-password"]["owner"] == "palaute:palaute"
    assert files["/etc/palaute/broker-password"]["defer"] is True  # written after the user exists
    assert files["/etc/palaute/kiosk.toml"]["content"] == (bundle / "kiosk.toml").read_text()
    assert files["/etc/palaute/ca.crt"]["content"] == options.ca_file.read_text()
    for name in ("palaute-kiosk.service", "palaute-kiosk-updater.service"):
        unit = files[f"/etc/systemd/system/{name}"]["content"]
        assert unit == (ROOT / "deploy/systemd" / name).read_text() == (bundle / name).read_text()
    assert "palaute-kiosk" in files["/usr/local/sbin/palaute-install"]["content"]
    assert doc["runcmd"] == [["systemctl", "enable", "--now", "ssh"], ["/usr/local/sbin/palaute-install"]]
    assert doc["ssh_pwauth"] is False
    kiosk_user = next(u for u in doc["users"] if u["name"] == "palaute")
    assert {"video", "render", "input", "gpio"} <= set(kiosk_user["groups"])
    assert kiosk_user["lock_passwd"] is True
    admin = next(u for u in doc["users"] if u["name"] == "palaute-admin")
    assert admin["ssh_authorized_keys"] == list(options.ssh_authorized_keys)
    assert doc["hostname"] == "palaute-kalvia-1"
    assert yaml.safe_load((bundle / "network-config").read_text())["network"]["version"] == 2
    assert "instance-id" in yaml.safe_load((bundle / "meta-data").read_text())


def test_install_script_is_valid_shell(sessions, options, tmp_path):
    device, secret = _provisioned(sessions)
    bundle = write_bundle(tmp_path / "out", device, secret, options)
    subprocess.run(["sh", "-n", str(bundle / "install-kiosk.sh")], check=True)


def test_kiosk_unit_passes_systemd_analyze_verify(tmp_path):
    tool = require("systemd-analyze")
    unit = (ROOT / "deploy/systemd/palaute-kiosk.service").read_text()
    assert "WatchdogSec=" in unit and "Type=notify" in unit and "SDL_VIDEODRIVER=kmsdrm" in unit
    # ProtectSystem=strict leaves / read-only; lgpio makes its notification pipe in the working directory.
    assert "ProtectSystem=strict" in unit
    assert "StateDirectory=palaute\n" in unit and "WorkingDirectory=/var/lib/palaute\n" in unit
    # verify insists the ExecStart binary exists; everything else is checked as shipped.
    (tmp_path / "palaute-kiosk.service").write_text(
        unit.replace("/opt/palaute/releases/current/bin/palaute-kiosk", "/bin/true")
    )
    result = subprocess.run([tool, "verify", str(tmp_path / "palaute-kiosk.service")],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_kiosk_runs_the_current_release_and_the_updater_the_stable_one(tmp_path):
    tool = require("systemd-analyze")
    kiosk = (ROOT / "deploy/systemd/palaute-kiosk.service").read_text()
    updater = (ROOT / "deploy/systemd/palaute-kiosk-updater.service").read_text()
    assert "ExecStart=/opt/palaute/releases/current/bin/palaute-kiosk " in kiosk
    assert "ExecStart=/opt/palaute/releases/stable/bin/palaute-kiosk-updater " in updater
    # One file per unit: deploy/ links to the bundle's.
    for name in ("palaute-kiosk.service", "palaute-kiosk-updater.service"):
        assert (ROOT / "deploy/systemd" / name).resolve() == ROOT / "fleet_server/fleet/bundle" / name
    (tmp_path / "palaute-kiosk-updater.service").write_text(
        updater.replace("/opt/palaute/releases/stable/bin/palaute-kiosk-updater", "/bin/true"))
    result = subprocess.run([tool, "verify", str(tmp_path / "palaute-kiosk-updater.service")],
                            check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_bundle_gives_the_kiosk_the_release_key_it_trusts(sessions, options, tmp_path):
    from dataclasses import replace

    from palaute_wire import signing

    key = signing.public_key_text(signing.new_private_key())
    device, secret = _provisioned(sessions)
    config = load_config(write_bundle(tmp_path / "out", device, secret, replace(options, release_public_key=key))
                         / "kiosk.toml")
    assert config.updates.release_public_key == key
    assert str(config.updates.releases_root) == "/opt/palaute/releases"
    assert load_config(write_bundle(tmp_path / "out2", device, secret, options) / "kiosk.toml"
                       ).updates.release_public_key is None


@pytest.mark.parametrize("unit", ["palaute-server.service", "palaute-broker-reload.service",
                                  "palaute-broker-reload.path"])
def test_server_side_units_pass_systemd_analyze_verify(tmp_path, unit):
    tool = require("systemd-analyze")
    for name in ("palaute-server.service", "palaute-broker-reload.service", "palaute-broker-reload.path"):
        text_ = (ROOT / "deploy/systemd" / name).read_text()
        (tmp_path / name).write_text(text_.replace("/opt/palaute/venv/bin/palaute-server", "/bin/true"))
    result = subprocess.run([tool, "verify", str(tmp_path / unit)], check=False, capture_output=True, text=True)
    # Units it refers to that this machine lacks (mosquitto, postgresql) are only warnings.
    assert result.returncode == 0, result.stderr


def test_registry_refuses_what_would_break_it(sessions):
    _provisioned(sessions)
    with sessions() as s, s.begin():
        with pytest.raises(ProvisioningError, match="already exists.*device rotate"):
            provision_device(s, "kalvia-1", "kalvia")
        with pytest.raises(ProvisioningError, match="no station 'nowhere'.*station add"):
            provision_device(s, "x-1", "nowhere")
        with pytest.raises(ProvisioningError, match="not a slug"):
            provision_device(s, "Kalvia_1", "kalvia")
        with pytest.raises(ProvisioningError, match="already exists"):
            add_station(s, "kalvia", "again")
    with sessions() as s, s.begin():
        retire_device(s, "kalvia-1")
    with sessions() as s, s.begin():
        with pytest.raises(ProvisioningError, match="retired"):
            rotate_secret(s, "kalvia-1")
        with pytest.raises(ProvisioningError, match="retired.*new id"):
            provision_device(s, "kalvia-1", "kalvia")


def test_sync_writes_only_live_devices_and_rotation_changes_the_hash(sessions, tmp_path):
    files = BrokerFiles(tmp_path / "auth/passwd", tmp_path / "auth/acl")
    _, first = _provisioned(sessions, "kalvia-1")
    _provisioned(sessions, "kalvia-2")
    with sessions() as s:
        assert "written (2 device accounts)" in sync_broker(s, files, "palaute-server", "server-secret")
        assert "unchanged" in sync_broker(s, files, "palaute-server", "server-secret")
    with sessions() as s, s.begin():
        _, second = rotate_secret(s, "kalvia-1")
        retire_device(s, "kalvia-2")
    with sessions() as s:
        sync_broker(s, files, "palaute-server", "server-secret")
    lines = dict(line.split(":", 1) for line in files.password_file.read_text().splitlines()[1:])
    assert set(lines) == {"palaute-server", "kalvia-1"}
    assert verify_hash(second, lines["kalvia-1"]) and not verify_hash(first, lines["kalvia-1"])
    assert verify_hash("server-secret", lines["palaute-server"])
    acl = files.acl_file.read_text()
    assert "user kalvia-1\ntopic write palaute/v1/kalvia/kalvia-1/events" in acl
    assert "kalvia-2" not in acl


def test_csv_provisions_each_row_and_reports_bad_ones(sessions, options, tmp_path):
    csv_path = tmp_path / "devices.csv"
    csv_path.write_text(
        "device_id,station_id,name,station_name\n"
        "kalvia-1,kalvia,Lobby,Kälviä health station\n"
        "kalvia-2,kalvia,Upstairs,\n"
        "lohtaja-1,lohtaja,,\n"  # no such station and no name to create it
        "BAD ID,kalvia,,\n"
    )
    rows = read_device_csv(csv_path)
    results = list(provision_many(sessions, rows, tmp_path / "out", options))
    assert [r.error is None for r in results] == [True, True, False, False]
    assert "no station 'lohtaja'" in results[2].error and "not a slug" in results[3].error
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"kalvia-1", "kalvia-2"}
    with sessions() as s:
        assert s.scalars(select(Device.id).order_by(Device.id)).all() == ["kalvia-1", "kalvia-2"]
        assert s.execute(text("select count(*) from device_credentials")).scalar() == 2


def test_csv_without_the_needed_columns_says_which(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("device,station\nkalvia-1,kalvia\n")
    with pytest.raises(ProvisioningError, match="missing: device_id, station_id"):
        read_device_csv(path)


# ----------------------------------------------------------------- cloud-init and the installer

CLOUD_INIT = ROOT / "tests" / "vendor" / "cloud-init"


def _validate(document: object, schema_file: str) -> None:
    import json

    from jsonschema.validators import validator_for

    schema = json.loads((CLOUD_INIT / schema_file).read_text())
    validator = validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


KEYS_WITH_AWKWARD_COMMENTS = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ0lY4 IT: Maija's laptop",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIK9pQ2 helpdesk #2 (spare)",
)


@pytest.mark.parametrize("variant", ["mqtts-with-ssh", "mqtt-without-ssh"])
def test_every_user_data_and_network_config_passes_cloud_inits_schema(sessions, tmp_path, variant):
    ca, _ = make_ca(tmp_path / "ca")
    options = (BundleOptions(broker_url="mqtts://mqtt.palaute.example.fi:8883", ca_file=ca,
                             ssh_authorized_keys=KEYS_WITH_AWKWARD_COMMENTS)
               if variant == "mqtts-with-ssh" else BundleOptions(broker_url="mqtt://10.0.0.5:1883", ca_file=None))
    device, secret = _provisioned(sessions)
    bundle = write_bundle(tmp_path / "out", device, secret, options)
    _validate(yaml.safe_load((bundle / "user-data").read_text()), "schema-cloud-config-v1.json")
    network = yaml.safe_load((bundle / "network-config").read_text())
    _validate(network["network"], "schema-network-config-v2.json")


def test_ssh_key_comments_with_colon_or_hash_survive_in_user_data(sessions, tmp_path):
    options = BundleOptions(broker_url="mqtt://10.0.0.5:1883", ca_file=None,
                            ssh_authorized_keys=KEYS_WITH_AWKWARD_COMMENTS)
    device, secret = _provisioned(sessions)
    doc = yaml.safe_load((write_bundle(tmp_path / "out", device, secret, options) / "user-data").read_text())
    admin = next(u for u in doc["users"] if u["name"] == "palaute-admin")
    assert admin["ssh_authorized_keys"] == list(KEYS_WITH_AWKWARD_COMMENTS)


def test_cloud_init_and_the_install_script_install_one_package_list(sessions, options, tmp_path):
    from fleet_server.fleet.provisioning import debian_packages

    packages = debian_packages()
    assert {"python3-venv", "espeak-ng", "libgl1", "libegl1", "libgbm1", "libmtdev1"} <= set(packages)
    device, secret = _provisioned(sessions)
    bundle = write_bundle(tmp_path / "out", device, secret, options)
    assert yaml.safe_load((bundle / "user-data").read_text())["packages"] == packages
    script = (bundle / "install-kiosk.sh").read_text()
    assert f'DEBIAN_PACKAGES="{" ".join(packages)}"' in script


def test_install_script_installs_only_from_the_bundles_wheelhouse_pinned_by_hash(sessions, options, tmp_path):
    device, secret = _provisioned(sessions)
    script = (write_bundle(tmp_path / "out", device, secret, options) / "install-kiosk.sh").read_text()
    pip_lines = [line for line in script.replace("\\\n", " ").splitlines() if "/bin/pip\" install" in line]
    assert pip_lines, "the installer no longer installs the kiosk with the venv's pip"
    for line in pip_lines:
        assert "--no-index" in line and "--require-hashes" in line and "--find-links" in line, line
    assert "palaute[kiosk]" not in script


def test_a_bundle_carries_the_wheelhouse_it_is_given(sessions, tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "requirements-cp311.txt").write_text("palaute[kiosk]==0.1.0 --hash=sha256:00\n")
    (wheelhouse / "palaute-0.1.0-py3-none-any.whl").write_bytes(b"PK")
    options = BundleOptions(broker_url="mqtt://10.0.0.5:1883", ca_file=None, wheelhouse=wheelhouse)
    device, secret = _provisioned(sessions)
    bundle = write_bundle(tmp_path / "out", device, secret, options)
    assert sorted(p.name for p in (bundle / "wheelhouse").iterdir()) == [
        "palaute-0.1.0-py3-none-any.whl", "requirements-cp311.txt"]
    with pytest.raises(ProvisioningError, match="not a kiosk wheelhouse"):
        write_bundle(tmp_path / "out2", device, secret,
                     BundleOptions(broker_url="mqtt://10.0.0.5:1883", ca_file=None, wheelhouse=tmp_path / "ca"))
