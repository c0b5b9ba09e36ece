"""Done means (issue 15): real wheels from this code, a fleet server, three simulated kiosks.

Two releases are built from this repository with ``pip wheel`` (1.1.0, good; 1.2.0,
deliberately broken: its kiosk dies at start, so it can never prove itself healthy),
signed with a key the server never sees, and added to the server's release store.
Each kiosk has its own releases directory (0.1.0 is this test run's venv), its own
``kiosk.toml`` and a systemd stand-in (tests/support/update_kiosk.py) that runs the
kiosk from ``current`` and the updater from ``stable``. Files go over HTTP with each
kiosk's own device secret; config and status over a real Mosquitto.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from typing import Self

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.devtools.local_broker import free_port
from fleet_server.fleet import releases, rollouts
from fleet_server.fleet.provisioning import add_station, provision_device
from fleet_server.fleet.release_targets import release_url
from fleet_server.models import Device, Release, ReleaseFile, RolloutDevice
from kiosk import release_switch as rs
from kiosk.updater import SITE_PACKAGES
from palaute_wire import contract as c
from palaute_wire import signing
from palaute_wire.surveys import default_station_config
from tests.support.auth_helpers import make_user, sign_in
from tests.support.mqtt_probe import Probe
from tests.support.update_kiosk import BASE_VERSION, SystemdStandIn, make_kiosk_dir, start_unit
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.timeout(900)]

REPO = Path(__file__).parents[2]
HEADLESS = ("paho-mqtt>=2.1,<3", "gpiozero>=2.0.1,<3", "typer>=0.12")
"""What ``--simulate`` needs besides palaute itself (the real kiosk release adds the kivy UI: extra kiosk)."""
GOOD, BROKEN = "1.1.0", "1.2.0"
KIOSKS = ("kalvia-1", "kalvia-2", "kalvia-3")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Two signed releases built from this repository, and the operator's key file."""
    base = tmp_path_factory.mktemp("releases")
    key = base / "operator.key"
    signing.write_private_key(key, signing.new_private_key())
    releases.build_release(REPO, base / GOOD, version=GOOD, extras=(), extra_requirements=HEADLESS)
    broken_src = base / "broken-src"
    shutil.copytree(REPO, broken_src, ignore=shutil.ignore_patterns(".git", ".venv", "var", "artifacts", "build",
                                                                   "*.egg-info", "__pycache__", "docs"))
    # It installs and imports (the updater checks that before switching), then dies when the kiosk starts.
    app = broken_src / "kiosk/app.py"
    marker = 'raise RuntimeError("kiosk already started")'
    assert marker in app.read_text()
    app.write_text(app.read_text().replace(
        marker, marker + '\n        raise RuntimeError("release 1.2.0 is deliberately broken: the kiosk dies at start")', 1))
    releases.build_release(broken_src, base / BROKEN, version=BROKEN, extras=(), extra_requirements=HEADLESS)
    for version in (GOOD, BROKEN):
        releases.sign_release(base / version, key)
    return base, key


class Fleet:
    """The fleet server on a real port (uvicorn), its loop passes run by the test."""

    def __init__(self, tmp_path: Path, broker, key: Path) -> None:
        self.port = free_port()
        public = signing.public_key_text(signing.load_private_key(key))
        self.settings = load_settings(
            environ={}, database_url=f"sqlite:///{tmp_path / 'fleet.db'}", mqtt_url=broker.url,
            session_secret="s" * 40, release_store_dir=tmp_path / "store", release_public_key=public,
            kiosk_release_url=f"http://127.0.0.1:{self.port}", alert_check_interval_s=3600,
            alert_heartbeat_timeout_s=30,
        )
        self.public_key = public
        self.app = create_app(self.settings)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        wait_until(lambda: self.server.started, 30, "the fleet server started")
        self.client = TestClient(self.app)  # the same app (its lifespan runs under uvicorn)
        wait_until(lambda: self.client.get("/healthz").json().get("mqtt") == "connected", 60.0, "the ingest connected")
        self.sessions = self.app.state.session_factory
        self.loop = self.app.state.fleet_loop
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)

    def status(self, device_id: str) -> dict:
        with self.sessions() as s:
            return dict(s.get(Device, device_id).last_status or {})

    def members(self, rollout_id: int) -> dict[str, tuple[int, str, str]]:
        with self.sessions() as s:
            return {m.device_id: (m.wave, m.state, m.reason) for m in s.scalars(
                select(RolloutDevice).where(RolloutDevice.rollout_id == rollout_id))}

    def rollout_state(self, rollout_id: int) -> str:
        with self.sessions() as s:
            return rollouts._get(s, rollout_id).state


@pytest.fixture
def fleet(tmp_path, broker, built):
    base, key = built
    with Fleet(tmp_path, broker, key) as f:
        with f.sessions() as s, s.begin():
            add_station(s, "kalvia", "Kälviä")
            f.secrets = {d: provision_device(s, d, "kalvia")[1] for d in KIOSKS}
            for version in (GOOD, BROKEN):
                releases.add_release(s, f.settings.release_store_dir, f.public_key, base / version)
        yield f


def start_kiosks(tmp_path, fleet, broker, processes, ids=KIOSKS) -> dict[str, SystemdStandIn]:
    kiosks = {}
    for device_id in ids:
        path = make_kiosk_dir(tmp_path / device_id, "kalvia", device_id, fleet.secrets[device_id], broker.url,
                              fleet.public_key)
        kiosks[device_id] = SystemdStandIn(path, processes).start()
    for device_id in ids:
        wait_until(lambda d=device_id: fleet.status(d).get("update_state") == "idle"
                   and fleet.status(d).get("online"), 60, f"{device_id} online with its updater")
    return kiosks


def last_seq(kiosk: SystemdStandIn) -> int:
    import sqlite3

    db = sqlite3.connect(kiosk.base / "outbox.db")
    try:
        return db.execute("SELECT value FROM counters WHERE name='last_seq'").fetchone()[0]
    finally:
        db.close()


def boots_into_a_working_version(kiosk: SystemdStandIn) -> str:
    version = rs.linked(kiosk.root, rs.CURRENT)
    assert version is not None and rs.is_installed(kiosk.root, version), f"current -> {version} is not complete"
    assert rs.is_installed(kiosk.root, rs.linked(kiosk.root, rs.STABLE) or "")
    return version


def test_a_release_rolls_out_wave_by_wave_and_a_broken_one_rolls_back_by_itself_and_halts(
        tmp_path, fleet, broker, processes):
    kiosks = start_kiosks(tmp_path, fleet, broker, processes)
    with fleet.sessions() as s, s.begin():
        good = rollouts.create_rollout(s, GOOD, {"kind": "all"}, waves="1,2,3", wave_healthy_s=2, max_failures=0,
                                       install_window="any", health_timeout_s=120).id
    seen: list[dict[str, tuple[int, str, str]]] = []
    power_cut_done = []

    def progress():
        fleet.loop.run_pass()
        members = fleet.members(good)
        seen.append(members)
        for device_id, (_, state, _) in members.items():
            # One power cut in the middle of an update: both units killed -9, then booted again.
            if state == "targeted" and not power_cut_done and (rs.read_json(
                    kiosks[device_id].base / "state/update-state.json") or {}).get("phase") == "trial":
                kiosks[device_id].power_cut()
                boots_into_a_working_version(kiosks[device_id])
                kiosks[device_id].boot()
                power_cut_done.append(device_id)
        return fleet.rollout_state(good) == "done"

    wait_until(progress, 420, "the good release is on every kiosk", step=1)
    # Wave by wave: no kiosk was sent the release while an earlier wave was not healthy yet.
    for members in seen:
        for wave, state, _ in members.values():
            if state != "pending":
                assert all(s == "healthy" for w, s, _ in members.values() if w < wave), members
    assert {m[1] for m in fleet.members(good).values()} == {"healthy"}
    assert power_cut_done, "no update was caught in its trial for the power cut"
    for device_id, kiosk in kiosks.items():
        assert fleet.status(device_id)["software_version"] == GOOD
        assert (rs.linked(kiosk.root, rs.CURRENT), rs.linked(kiosk.root, rs.STABLE)) == (GOOD, GOOD)
        assert fleet.status(device_id)["update_state"] == "committed"
    first = rs.read_json(kiosks["kalvia-1"].base / "state/update-state.json")["measured"]

    # The broken release: its first kiosk switches, never proves itself, goes back by itself.
    seq_before = {d: last_seq(k) for d, k in kiosks.items()}
    with fleet.sessions() as s, s.begin():
        bad = rollouts.create_rollout(s, BROKEN, {"kind": "all"}, waves="1,3", wave_healthy_s=2, max_failures=0,
                                      install_window="any", health_timeout_s=240).id

    def halted():
        fleet.loop.run_pass()
        return fleet.rollout_state(bad) == "halted"

    wait_until(halted, 300, "the broken rollout halts", step=1)
    members = fleet.members(bad)
    (failed,) = [d for d, (_, state, _) in members.items() if state == "failed"]
    reason = members[failed][2]
    # Back at once, not after its 240 s: systemd had to restart it three times.
    assert f"{BROKEN} was restarted 3 times in" in reason and "never reported running" in reason, reason
    assert [state for d, (_, state, _) in members.items() if d != failed] == ["pending", "pending"]
    wait_until(lambda: fleet.status(failed).get("software_version") == GOOD and fleet.status(failed).get("online"), 60.0,
               "the rolled-back kiosk runs the good release again")
    status = fleet.status(failed)
    assert (status["update_state"], status["update_version"]) == ("rolled_back", BROKEN)
    assert "never reported running" in status["update_error"]
    assert (rs.linked(kiosks[failed].root, rs.CURRENT), rs.linked(kiosks[failed].root, rs.STABLE)) == (GOOD, GOOD)
    assert "deliberately broken" in kiosks[failed].log("kiosk")
    wait_until(lambda: last_seq(kiosks[failed]) > seq_before[failed], 60.0, "its outbox is intact and still counting")
    # Only the project's own wheel changed: only that one file was downloaded.
    second = rs.read_json(kiosks[failed].base / "state/update-state.json")["measured"]
    with fleet.sessions() as s:
        wheel = s.scalars(select(ReleaseFile).where(ReleaseFile.release_version == BROKEN,
                                                    ReleaseFile.name.like("palaute-%"))).one()
        n_files = len(releases.release_files(s, BROKEN))
    assert second["downloaded_bytes"] == wheel.size and second["reused_files"] == n_files - 1

    # IT sees it: the alert, and on the devices page the halt, the waves and the reason.
    with fleet.sessions() as s:
        from fleet_server.fleet.alerts import open_alerts

        assert [a.rule for a in open_alerts(s)].count("rollout_halted") == 1
    make_user(fleet.sessions, "iida", "it")
    assert sign_in(fleet.client, "iida", next_url="/devices").status_code in (302, 303)
    page = fleet.client.get("/devices").text
    assert f'data-rollout="{bad}" data-state="halted"' in page and f'data-rollout="{good}" data-state="done"' in page
    assert f'<li data-device="{failed}">' in page and "never reported running" in page
    assert 'data-rule="rollout_halted"' in page
    assert f"{GOOD}; went back from {BROKEN}: {BROKEN} was restarted 3 times" in page  # the kiosk's row
    print(f"\nfirst update ({GOOD}): {first}\nsecond update ({BROKEN}, only the project's wheel): {second}")


def _publish_config(broker, device_id: str, target: c.ReleaseTarget) -> None:
    config = default_station_config("kalvia").model_copy(update={"release": target})
    with Probe(broker.port) as server:
        assert server.connect()
        server.publish(c.topic("kalvia", device_id, "config"), c.encode(config), retain=True)


def _target_of(fleet, version: str, device_id: str, **changes) -> c.ReleaseTarget:
    with fleet.sessions() as s:
        release = s.get(Release, version)
        target = c.ReleaseTarget(device_id=device_id, version=version, url=release_url(fleet.settings, version),
                                 manifest=release.manifest, signature=release.signature, install_window="any")
    return target.model_copy(update=changes)


def test_unsigned_another_kiosks_and_tampered_releases_are_refused_and_the_kiosk_keeps_running(
        tmp_path, fleet, broker, processes):
    kiosks = start_kiosks(tmp_path, fleet, broker, processes, ids=("kalvia-1",))
    kiosk = kiosks["kalvia-1"]

    def refused(why: str):
        return lambda: fleet.status("kalvia-1").get("update_state") == "failed" and why in (
            fleet.status("kalvia-1").get("update_error") or "")

    _publish_config(broker, "kalvia-1", _target_of(fleet, GOOD, "kalvia-1", signature=""))
    wait_until(refused("the manifest is not signed"), 60.0, "an unsigned manifest is refused")
    # kalvia-2's target (as the server sends it on kalvia-2's topic), delivered on kalvia-1's topic.
    _publish_config(broker, "kalvia-1", _target_of(fleet, GOOD, "kalvia-2"))
    wait_until(refused("is for kalvia-2, this kiosk is kalvia-1"), 60.0, "another kiosk's target is refused")
    # A web server that swaps a wheel: the signed manifest's hash does not match.
    with fleet.sessions() as s:
        wheel = s.scalars(select(ReleaseFile).where(ReleaseFile.release_version == GOOD,
                                                    ReleaseFile.name.like("palaute-%"))).one()
    stored = releases.store_path(fleet.settings.release_store_dir, wheel.sha256)
    stored.write_bytes(b"not the signed wheel" + bytes(wheel.size - 20))
    _publish_config(broker, "kalvia-1", _target_of(fleet, GOOD, "kalvia-1"))
    wait_until(refused("does not match its sha256"), 60.0, "a file that does not match the manifest is refused")
    assert boots_into_a_working_version(kiosk) == BASE_VERSION
    assert not (kiosk.root / GOOD).exists()
    assert fleet.status("kalvia-1")["software_version"] == BASE_VERSION and fleet.status("kalvia-1")["online"]


def _updater(kiosk: SystemdStandIn, processes, *args: str, timeout: float = 300) -> int:
    """One run of the updater as its unit would run it (see start_unit); its exit code."""
    python = str(kiosk.root / "stable/bin/python")
    proc = start_unit(processes, [python, "-m", "kiosk.updater", "--config", str(kiosk.base / "kiosk.toml"), *args],
                      log=kiosk.base / "updater.log")
    try:
        return proc.wait(timeout)
    finally:
        processes.stop(proc)


def test_an_updater_killed_at_every_step_leaves_a_working_kiosk_and_finishes_the_update(
        tmp_path, fleet, broker, processes):
    path = make_kiosk_dir(tmp_path / "kalvia-1", "kalvia", "kalvia-1", fleet.secrets["kalvia-1"], broker.url,
                          fleet.public_key)
    kiosk = SystemdStandIn(path, processes, units=("kiosk",)).start()  # the test runs the updater itself
    wait_until(lambda: fleet.status("kalvia-1").get("update_state") == "idle", 60.0, "kalvia-1 online")
    _publish_config(broker, "kalvia-1", _target_of(fleet, GOOD, "kalvia-1"))
    wait_until(lambda: (rs.read_json(path / "state/station-config.json") or {})
               .get("release") is not None, 60.0, "the kiosk stored its target")
    seq = last_seq(kiosk)
    for point in ("download", "install", "compile", "switch", "trial", "commit"):
        assert _updater(kiosk, processes, "--crash-at", point) == 86, f"the updater did not reach {point}"
        running = boots_into_a_working_version(kiosk)
        assert running in (BASE_VERSION, GOOD), point
        state = rs.read_json(path / "state/update-state.json")
        print(f"killed at {point}: phase {state['phase']}, current -> {running}")
        assert last_seq(kiosk) >= seq
        seq = last_seq(kiosk)
    assert (path / "releases/.files").is_dir()
    assert _updater(kiosk, processes) == 0  # exits after the commit, as systemd would restart it
    assert (rs.linked(kiosk.root, rs.CURRENT), rs.linked(kiosk.root, rs.STABLE)) == (GOOD, GOOD)
    wait_until(lambda: fleet.status("kalvia-1").get("software_version") == GOOD
               and fleet.status("kalvia-1").get("update_state") == "committed", 60.0,
               "kalvia-1 runs the release and says so")

    # The broken release, killed while switching back: the next start finishes the rollback.
    _publish_config(broker, "kalvia-1", _target_of(fleet, BROKEN, "kalvia-1", health_timeout_s=15))
    wait_until(lambda: json.dumps(rs.read_json(path / "state/station-config.json") or {}).count(BROKEN) > 0, 60.0,
               "the kiosk stored the new target")
    # Its venv starts from GOOD's (linked) with only the changed wheel installed: killed there too.
    for point in ("install", "compile"):
        assert _updater(kiosk, processes, "--crash-at", point) == 86, f"the updater did not reach {point}"
        assert boots_into_a_working_version(kiosk) == GOOD, point
        assert last_seq(kiosk) >= seq
    assert _updater(kiosk, processes, "--crash-at", "rollback") == 86
    assert boots_into_a_working_version(kiosk) == GOOD
    assert _updater(kiosk, processes, "--once") == 0
    state = rs.read_json(path / "state/update-state.json")
    assert state["phase"] == "rolled_back" and "never reported running" in state["error"]
    # Only the project's wheel changed: BROKEN's dependencies are GOOD's files, linked.
    paho = SITE_PACKAGES / "paho/__init__.py"
    assert (kiosk.root / BROKEN / paho).samefile(kiosk.root / GOOD / paho)
    assert rs.linked(kiosk.root, rs.CURRENT) == GOOD
    wait_until(lambda: fleet.status("kalvia-1").get("update_state") == "rolled_back"
               and fleet.status("kalvia-1").get("software_version") == GOOD, 60.0, "the kiosk reports the rollback")
    assert last_seq(kiosk) >= seq
