"""Releases on the server: signed manifests only, files served to kiosks with their own
credentials (and Range), rollouts in waves that halt themselves, the devices page."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet_server.api.releases import router as kiosk_releases_router
from fleet_server.app import install_fleet_routes
from fleet_server.auth.setup import install_auth
from fleet_server.core.clock import utcnow
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.fleet import releases, rollouts
from fleet_server.fleet.alerts import evaluate
from fleet_server.fleet.loop import start_fleet_ops, stop_fleet_ops
from fleet_server.fleet.provisioning import provision_device, retire_device
from fleet_server.fleet.release_targets import release_target_for
from fleet_server.models import Device, Release, RolloutDevice, Station
from fleet_server.web.rollouts_pages import router as rollouts_pages_router
from palaute_wire import contract as c
from palaute_wire import signing
from tests.support.auth_helpers import make_user, page_csrf, sign_in
from tests.support.mqtt_probe import Probe

pytestmark = pytest.mark.broker

DEVICES = [f"kalvia-{i}" for i in range(1, 6)] + ["lohtaja-1"]


def built_release(directory, version="0.2.0", files=None):
    """A release directory as `release build` leaves it (the wheels' bytes do not matter here)."""
    directory.mkdir(parents=True)
    files = files or {f"palaute-{version}-py3-none-any.whl": os.urandom(300_000), "dep-1.0-py3-none-any.whl": b"dep"}
    for name, data in files.items():
        (directory / name).write_bytes(data)
    (directory / "release.json").write_text(json.dumps({"version": version, "requirements": [f"palaute=={version}"]}))
    return directory


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "release.key"
    signing.write_private_key(path, signing.new_private_key())
    return path


@pytest.fixture
def world(tmp_path, sqlite_url, broker, key):
    engine = make_engine(sqlite_url)
    migrate(engine)
    factory = make_session_factory(engine)
    secrets = {}
    with factory() as s, s.begin():
        s.add_all([Station(id="kalvia", name="Kälviä"), Station(id="lohtaja", name="Lohtaja")])
        s.flush()
        for device_id in DEVICES:
            device, secrets[device_id] = provision_device(s, device_id, device_id.split("-")[0])
            device.state, device.software_version = "active", "0.1.0"
            device.last_status = {"software_version": "0.1.0", "update_state": "idle"}
    settings = load_settings(environ={}, database_url=sqlite_url, mqtt_url=broker.url, session_secret="s" * 40,
                             release_store_dir=tmp_path / "store",
                             release_public_key=signing.public_key_text(signing.load_private_key(key)),
                             kiosk_release_url="https://fleet.example.fi")
    app = FastAPI()
    app.state.settings = settings
    app.state.session_factory = factory
    install_auth(app, settings)
    install_fleet_routes(app)
    app.include_router(kiosk_releases_router)
    app.include_router(rollouts_pages_router)
    start_fleet_ops(app, loop=False)
    with TestClient(app) as client:
        yield app, client, factory, settings, secrets
    stop_fleet_ops(app)
    engine.dispose()


def add(factory, settings, directory):
    with factory() as s, s.begin():
        return releases.add_release(s, settings.release_store_dir, settings.release_public_key, directory).version


def test_only_a_release_signed_with_the_operators_key_is_added_and_its_files_are_checked(world, tmp_path, key):
    _, _, factory, settings, _ = world
    unsigned = built_release(tmp_path / "unsigned")
    with pytest.raises(releases.ReleaseError, match="sign the release first"):
        add(factory, settings, unsigned)
    other = tmp_path / "other.key"
    signing.write_private_key(other, signing.new_private_key())
    foreign = built_release(tmp_path / "foreign")
    releases.sign_release(foreign, other)
    with pytest.raises(releases.ReleaseError, match="does not match this kiosk's release key"):
        add(factory, settings, foreign)
    tampered = built_release(tmp_path / "tampered")
    releases.sign_release(tampered, key)
    (tampered / "dep-1.0-py3-none-any.whl").write_bytes(b"evil")
    with pytest.raises(releases.ReleaseError, match="does not match its hash"):
        add(factory, settings, tampered)
    good = built_release(tmp_path / "good")
    manifest = releases.sign_release(good, key)
    assert add(factory, settings, good) == "0.2.0"
    assert {f.name: f.size for f in manifest.files}["dep-1.0-py3-none-any.whl"] == 3
    with factory() as s:
        (listed,) = releases.list_releases(s)
        assert listed.total_bytes == 300_003
        assert [f.name for f in releases.release_files(s, "0.2.0")] == sorted(manifest_names(manifest))
    with pytest.raises(releases.ReleaseError, match="exists already"):
        add(factory, settings, good)


def manifest_names(manifest):
    return [f.name for f in manifest.files]


def test_files_are_served_only_to_a_kiosk_with_its_own_secret_and_resume_with_range(world, tmp_path, key):
    app, client, factory, settings, secrets = world
    directory = built_release(tmp_path / "r")
    releases.sign_release(directory, key)
    add(factory, settings, directory)
    url = "/kiosk/v1/releases/0.2.0/palaute-0.2.0-py3-none-any.whl"
    data = (directory / "palaute-0.2.0-py3-none-any.whl").read_bytes()
    assert client.get(url).status_code == 401
    assert client.get(url, auth=("kalvia-1", secrets["kalvia-2"])).status_code == 401
    assert client.get(url, auth=("nobody", secrets["kalvia-1"])).status_code == 401
    whole = client.get(url, auth=("kalvia-1", secrets["kalvia-1"]))
    assert whole.status_code == 200 and whole.content == data
    part = client.get(url, auth=("kalvia-1", secrets["kalvia-1"]), headers={"Range": "bytes=1000-"})
    assert part.status_code == 206 and part.content == data[1000:]
    assert client.get("/kiosk/v1/releases/0.2.0/other.whl", auth=("kalvia-1", secrets["kalvia-1"])).status_code == 404
    app.state.settings = settings.model_copy(update={"release_accel_redirect": "/_palaute_releases/"})
    behind_nginx = client.get(url, auth=("kalvia-1", secrets["kalvia-1"]))
    sha = releases.sha256_file(directory / "palaute-0.2.0-py3-none-any.whl")
    assert behind_nginx.headers["x-accel-redirect"] == f"/_palaute_releases/{sha[:2]}/{sha}"
    assert behind_nginx.content == b""  # nginx sends the bytes from its internal location
    app.state.settings = settings
    with factory() as s, s.begin():
        retire_device(s, "kalvia-1")
    assert client.get(url, auth=("kalvia-1", secrets["kalvia-1"])).status_code == 401
    with factory() as s, s.begin():
        releases.withdraw_release(s, "0.2.0", "bad build")
    assert client.get(url, auth=("kalvia-2", secrets["kalvia-2"])).status_code == 404


def _report(factory, device_id, **status):
    with factory() as s, s.begin():
        device = s.get(Device, device_id)
        device.last_status = {**(device.last_status or {}), **status}
        device.software_version = device.last_status.get("software_version")


def _states(factory, rollout_id):
    with factory() as s:
        return {m.device_id: (m.wave, m.state) for m in s.scalars(
            select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id))}


def test_a_rollout_goes_wave_by_wave_sends_each_kiosk_its_target_and_halts_on_a_failure(world, tmp_path, key, broker):
    app, client, factory, settings, _ = world
    directory = built_release(tmp_path / "r")
    releases.sign_release(directory, key)
    add(factory, settings, directory)
    loop = app.state.fleet_loop
    with factory() as s, s.begin():
        rollout = rollouts.create_rollout(s, "0.2.0", {"kind": "station", "stations": ["kalvia"]},
                                          waves="1,50%,100%", canary=["kalvia-3"], wave_healthy_s=600,
                                          max_failures=0, install_window="any", health_timeout_s=120)
        rid = rollout.id
    waves = _states(factory, rid)
    assert waves["kalvia-3"] == (0, "pending") and "lohtaja-1" not in waves
    assert sorted(w for w, _ in waves.values()) == [0, 1, 1, 2, 2]  # 1, then up to 3 (50 % of 5), then the rest

    with Probe(broker.port) as kiosk:
        assert kiosk.connect()
        kiosk.subscribe(c.topic("kalvia", "kalvia-3", "config"))
        loop.advance_rollouts()
        message = kiosk.expect(c.topic("kalvia", "kalvia-3", "config"))
    _, config = c.decode(message.topic, message.payload)
    target = config.release
    assert (target.device_id, target.version, target.install_window, target.rollout_id) == (
        "kalvia-3", "0.2.0", "any", rid)
    assert target.url == "https://fleet.example.fi/kiosk/v1/releases/0.2.0/"
    assert signing.verify(settings.release_public_key, target.manifest, target.signature).version == "0.2.0"
    assert _states(factory, rid)["kalvia-3"] == (0, "targeted")

    # Healthy on the release: the next wave waits until the wave has been healthy for wave_healthy_s.
    _report(factory, "kalvia-3", software_version="0.2.0", update_state="committed", update_version="0.2.0")
    now = utcnow()
    loop.advance_rollouts(now)
    assert _states(factory, rid)["kalvia-3"] == (0, "healthy")
    loop.advance_rollouts(now + timedelta(seconds=300))
    assert [s for w, s in _states(factory, rid).values() if w == 1] == ["pending", "pending"]
    loop.advance_rollouts(now + timedelta(seconds=601))
    second = [d for d, (w, s) in _states(factory, rid).items() if w == 1]
    assert all(_states(factory, rid)[d][1] == "targeted" for d in second)

    # One kiosk of wave 2 rolls back: more than max_failures=0, the rollout halts and alerts.
    _report(factory, second[0], update_state="rolled_back", update_version="0.2.0",
            update_error="0.2.0 did not prove itself healthy within 120 s: it never reported running")
    loop.advance_rollouts(now + timedelta(seconds=700))
    with factory() as s:
        rollout = rollouts._get(s, rid)
        assert rollout.state == "halted" and "never reported running" in rollout.reason
        (alert,) = [a for a in evaluate(s, settings) if a.rule == "rollout_halted"]
        assert f"rollout {rid}" in alert.message
    assert [s for w, s in _states(factory, rid).values() if w == 2] == ["pending", "pending"]

    # The devices page shows the waves and the failure with its reason; IT resumes it there.
    make_user(factory, "iida", "it")
    assert sign_in(client, "iida", next_url="/devices").status_code in (302, 303)
    page = client.get("/devices")
    assert f'data-rollout="{rid}" data-state="halted"' in page.text
    assert f'data-device="{second[0]}"' in page.text and "never reported running" in page.text
    assert "0.1.0; went back from 0.2.0: 0.2.0 did not prove itself healthy" in page.text  # its row, Software
    resumed = client.post(f"/rollouts/{rid}/control", data={"action": "resume", "csrf_token": page_csrf(page.text)},
                          follow_redirects=False)
    assert resumed.status_code == 303
    with factory() as s:
        assert rollouts._get(s, rid).state == "running"
    aborted = client.post(f"/rollouts/{rid}/control", data={"action": "abort", "csrf_token": page_csrf(page.text)},
                          follow_redirects=False)
    assert aborted.status_code == 303
    with factory() as s:
        assert rollouts._get(s, rid).state == "aborted"
        assert release_target_for(s, settings, second[1]) is None  # targets taken back
    # A refusal in the reader's language: aborted already.
    again = client.post(f"/rollouts/{rid}/control", data={"action": "abort", "csrf_token": page_csrf(page.text)},
                        headers={"Accept-Language": "fi"})
    assert again.status_code == 409 and f"jakelu {rid} on jo tilassa aborted" in again.text
    missing = client.post("/rollouts/999/control", data={"action": "pause", "csrf_token": page_csrf(page.text)},
                          headers={"Accept-Language": "sv"})
    assert missing.status_code == 404 and "utrullning 999 finns inte" in missing.text


def test_a_kiosk_without_the_updater_is_skipped_not_sent_a_config_it_would_refuse(world, tmp_path, key):
    app, _, factory, settings, _ = world
    directory = built_release(tmp_path / "r")
    releases.sign_release(directory, key)
    add(factory, settings, directory)
    with factory() as s, s.begin():
        s.get(Device, "lohtaja-1").last_status = {"software_version": "0.1.0"}  # an old kiosk
        rid = rollouts.create_rollout(s, "0.2.0", {"kind": "devices", "devices": ["lohtaja-1"]}, waves="100%",
                                      install_window="any").id
    app.state.fleet_loop.advance_rollouts()
    assert _states(factory, rid) == {"lohtaja-1": (0, "skipped")}
    with factory() as s:
        assert release_target_for(s, settings, "lohtaja-1") is None
        assert rollouts._get(s, rid).state == "done"


def test_waves_are_cumulative_shares_and_bad_waves_are_refused():
    assert rollouts.wave_bounds(rollouts.parse_waves("1,10%,50%,100%"), 100) == [1, 10, 50, 100]
    assert rollouts.wave_bounds(rollouts.parse_waves("1,10%,50%,100%"), 3) == [1, 1, 2, 3]
    assert rollouts.wave_bounds([5], 2) == [2]
    for bad in ("0", "150%", "x", ""):
        with pytest.raises(rollouts.RolloutError):
            rollouts.parse_waves(bad)


def test_a_withdrawn_release_cannot_be_rolled_out(world, tmp_path, key):
    _, _, factory, settings, _ = world
    directory = built_release(tmp_path / "r")
    releases.sign_release(directory, key)
    add(factory, settings, directory)
    with factory() as s, s.begin():
        releases.withdraw_release(s, "0.2.0")
    with factory() as s, pytest.raises(rollouts.RolloutError, match="withdrawn"):
        rollouts.create_rollout(s, "0.2.0", {"kind": "all"})
    with factory() as s:
        assert s.get(Release, "0.2.0").withdrawn_at is not None
