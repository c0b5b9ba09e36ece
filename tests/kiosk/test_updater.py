"""The kiosk updater's checks and the release links (kiosk.updater, kiosk.release_switch).

The whole update path with real wheels, a fleet server and killed updaters is in
tests/e2e/test_updates.py; these are the rules on their own."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest

from kiosk import release_switch as rs
from kiosk.config import parse_config
from kiosk.outbox import SCHEMA_VERSION, Outbox, OutboxSchemaError
from kiosk.updater import Updater, UpdateRefused, check_target, in_install_window, status_fields
from palaute_wire import contract as c
from palaute_wire import signing
from palaute_wire.surveys import default_station_config


@pytest.fixture
def key():
    return signing.new_private_key()


def _config(tmp_path, key, **updates):
    return parse_config({
        "device": {"station_id": "kalvia", "device_id": "kalvia-1"},
        "broker": {"url": "mqtt://127.0.0.1:1883"},
        "outbox": {"path": str(tmp_path / "outbox.db")},
        "state": {"dir": str(tmp_path / "state")},
        "updates": {"release_public_key": signing.public_key_text(key), "releases_root": str(tmp_path / "releases"),
                    **updates},
    })


def _target(key, device_id="kalvia-1", **manifest):
    m = c.ReleaseManifest(version=manifest.pop("version", "0.2.0"), requirements=("palaute==0.2.0",),
                          files=(c.ReleaseFile(name="palaute-0.2.0-py3-none-any.whl", sha256="ab" * 32, size=1),),
                          created_at=datetime(2026, 12, 1, tzinfo=UTC), **manifest)
    text = signing.manifest_text(m)
    return c.ReleaseTarget(device_id=device_id, version="0.2.0", url="http://fleet/kiosk/v1/releases/0.2.0/",
                           manifest=text, signature=signing.sign(key, text) if key else "")


def test_a_target_for_this_kiosk_signed_with_its_key_is_accepted(tmp_path, key):
    assert check_target(_config(tmp_path, key), _target(key)).version == "0.2.0"


@pytest.mark.parametrize("case, reason", [
    ("other device", "is for kalvia-2"),
    ("unsigned", "not signed"),
    ("other key", "does not match"),
    ("other station", "signed for other kiosks"),
    ("other version", "the signed manifest is 0.3.0"),
])
def test_targets_not_meant_for_this_kiosk_are_refused(tmp_path, key, case, reason):
    other = signing.new_private_key()
    target = {
        "other device": lambda: _target(key, device_id="kalvia-2"),
        "unsigned": lambda: _target(None),
        "other key": lambda: _target(other),
        "other station": lambda: _target(key, stations=("lohtaja",)),
        "other version": lambda: _target(key, version="0.3.0"),
    }[case]()
    with pytest.raises(UpdateRefused, match=reason):
        check_target(_config(tmp_path, key), target)


def test_a_refused_target_is_reported_in_status_and_never_retried(tmp_path, key):
    config = _config(tmp_path, key)
    station = default_station_config("kalvia").model_copy(update={"release": _target(signing.new_private_key())})
    (tmp_path / "state").mkdir()
    (tmp_path / "state/station-config.json").write_bytes(station.model_dump_json().encode())
    updater = Updater(config)
    assert updater.step() == "failed"
    fields = status_fields(config)
    assert fields["update_state"] == "failed" and "does not match" in fields["update_error"]
    assert not (tmp_path / "releases" / "0.2.0").exists()
    assert Updater(config).step() == "failed"  # the same target again: nothing is fetched


def test_installs_wait_for_closing_time_by_default():
    hours = c.OpeningHours(days={"tue": ("08:00", "16:00")})
    config = default_station_config("kalvia").model_copy(update={"opening_hours": hours})
    tuesday_noon = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # 12:00 in Helsinki
    tuesday_night = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    assert not in_install_window(config, "closed", tuesday_noon)
    assert in_install_window(config, "closed", tuesday_night)
    assert in_install_window(config, "any", tuesday_noon)
    no_hours = default_station_config("kalvia")  # always open: only at night (02-05 local)
    assert not in_install_window(no_hours, "closed", tuesday_noon)
    assert in_install_window(no_hours, "closed", datetime(2026, 12, 1, 1, 30, tzinfo=UTC))


def test_the_current_link_switches_atomically_and_only_to_a_complete_version(tmp_path):
    root = tmp_path / "releases"
    for version in ("0.1.0", "0.2.0"):
        (root / version).mkdir(parents=True)
    rs.mark_installed(root, "0.1.0")
    rs.switch(root, "0.1.0")
    with pytest.raises(FileNotFoundError):
        rs.switch(root, "0.2.0")  # no marker: pip did not finish
    assert rs.linked(root) == "0.1.0"
    rs.mark_installed(root, "0.2.0")
    rs.switch(root, "0.2.0")
    assert rs.linked(root) == "0.2.0" and (root / "current").resolve() == (root / "0.2.0").resolve()
    assert sorted(p.name for p in root.iterdir()) == ["0.1.0", "0.2.0", "current"]  # no temporary link left
    with pytest.raises(ValueError):
        rs.remove_version(root, "0.2.0")  # in use


def test_an_outbox_written_by_a_newer_schema_is_refused_not_misread(tmp_path):
    path = tmp_path / "outbox.db"
    Outbox(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(OutboxSchemaError, match="newer|reads up to"):
        Outbox(path)


def test_a_release_that_reads_an_older_outbox_schema_is_refused(tmp_path, key):
    config = _config(tmp_path, key)
    Outbox(config.outbox.path).close()
    db = sqlite3.connect(config.outbox.path)
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    manifest = check_target(config, _target(key))  # outbox_schema 1
    with pytest.raises(UpdateRefused, match="outbox schema 1, the outbox is at 2"):
        Updater(config)._check_outbox_schema(manifest)


# ----------------------------------------------------------------- release venvs on Bookworm and Trixie

ROOT = __import__("pathlib").Path(__file__).parents[2]


def _installer_says_debian_lgpio(tag: str) -> bool:
    """install-kiosk.sh's own decision (its lgpio_from_debian function, run by sh)."""
    import re
    import subprocess

    script = (ROOT / "fleet_server/fleet/bundle/install-kiosk.sh").read_text()
    function = re.search(r"^lgpio_from_debian\(\) \{\n.*?^\}\n", script, re.MULTILINE | re.DOTALL)
    assert function, "install-kiosk.sh no longer has its lgpio_from_debian function"
    return subprocess.run(["sh", "-c", f"{function.group(0)}lgpio_from_debian {tag}"], check=False).returncode == 0


@pytest.mark.parametrize("python", [(3, 11), (3, 12), (3, 13), (3, 14)])
def test_release_venvs_see_debians_lgpio_exactly_where_the_first_install_does(python):
    import tomllib

    from packaging.requirements import Requirement

    decision = rs.uses_debian_lgpio(python)
    assert decision == _installer_says_debian_lgpio(f"cp{python[0]}{python[1]}")
    # And where the kiosk extra leaves lgpio's wheel out, Debian's package is what the venv sees.
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["kiosk"]
    (lgpio,) = [Requirement(r) for r in extra if r.startswith("lgpio")]
    wheel_wanted = lgpio.marker is None or lgpio.marker.evaluate({"python_version": f"{python[0]}.{python[1]}"})
    assert decision == (not wheel_wanted)
    assert rs.venv_options(python) == (["--system-site-packages"] if decision else [])
    assert (python >= (3, 13)) == decision  # Trixie's 3.13 on; Bookworm's 3.11 off


@pytest.mark.parametrize("trixie", [True, False])
def test_the_updater_makes_each_release_venv_by_that_rule(tmp_path, key, monkeypatch, trixie):
    monkeypatch.setattr(rs, "DEBIAN_LGPIO_FROM", (3, 0) if trixie else (99, 0))
    config = _config(tmp_path, key)
    updater = Updater(config)
    commands: list[list[str]] = []
    monkeypatch.setattr(updater, "_run", lambda cmd, what: commands.append(cmd))
    monkeypatch.setattr(rs, "mark_installed", lambda *a, **k: None)
    manifest = check_target(config, _target(key))
    root = config.updates.releases_root
    # From scratch (no release of its own running yet), then beside a running release (linked packages).
    updater._install("0.2.0", manifest, tmp_path / "staging")
    import sys

    site = root / "0.1.0" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    (site / "kivy").mkdir(parents=True)
    (site / "kivy" / "__init__.py").write_text("")
    (root / "0.1.0" / rs.INSTALLED_MARKER).write_text("")  # mark_installed is stubbed out above
    rs.switch(root, "0.1.0")
    updater._install("0.3.0", manifest, tmp_path / "staging")
    venvs = [cmd for cmd in commands if cmd[1:3] == ["-m", "venv"]]
    assert len(venvs) == 2 and "--without-pip" in venvs[1]
    for cmd in venvs:
        assert ("--system-site-packages" in cmd) == trixie, cmd


@pytest.mark.parametrize("name, tag, fits", [
    ("palaute-0.2.0-py3-none-any.whl", "cp311", True),
    ("Kivy-2.3.1-cp311-cp311-manylinux2014_aarch64.whl", "cp311", True),
    ("Kivy-2.3.1-cp313-cp313-manylinux2014_aarch64.whl", "cp311", False),
    ("Kivy-2.3.1-cp311-cp311-manylinux2014_aarch64.whl", "cp313", False),
    ("cryptography-44.0.0-cp39-abi3-manylinux_2_34_aarch64.whl", "cp311", True),
    ("cryptography-44.0.0-cp39-abi3-manylinux_2_34_aarch64.whl", "cp38", False),
    ("six-1.16.0-py2.py3-none-any.whl", "cp313", True),
])
def test_a_kiosk_downloads_only_the_wheels_its_python_installs(name, tag, fits):
    from kiosk.updater import wheel_fits

    assert wheel_fits(name, tag) is fits


def test_the_first_install_is_adopted_in_place_and_its_wheels_kept_for_updates(tmp_path):
    root = tmp_path / "releases"
    (root / "0.1.0" / "bin").mkdir(parents=True)  # install-kiosk.sh's venv, straight in the layout
    wheels = tmp_path / "wheelhouse"
    wheels.mkdir()
    for name in ("palaute-0.1.0-py3-none-any.whl", "Kivy-2.3.1-cp311-cp311-manylinux2014_aarch64.whl"):
        (wheels / name).write_bytes(name.encode())
    rs.adopt(root, root / "0.1.0", "0.1.0", switch_links=True)
    assert not (root / "0.1.0").is_symlink() and rs.is_installed(root, "0.1.0")
    assert (rs.linked(root, rs.CURRENT), rs.linked(root, rs.STABLE)) == ("0.1.0", "0.1.0")
    assert rs.seed_files(root / ".files", sorted(wheels.glob("*.whl"))) == 2
    from kiosk.updater import sha256_file

    assert sorted(p.name for p in (root / ".files").iterdir()) == sorted(sha256_file(w) for w in wheels.glob("*.whl"))
    assert rs.seed_files(root / ".files", sorted(wheels.glob("*.whl"))) == 0  # again: nothing new
    # The installer run again with another version: that one is what runs now.
    (root / "0.2.0").mkdir()
    rs.adopt(root, root / "0.2.0", "0.2.0", switch_links=True)
    assert (rs.linked(root, rs.CURRENT), rs.linked(root, rs.STABLE)) == ("0.2.0", "0.2.0")


# ----------------------------------------------------------------- an update of the project alone


def _wheel(directory, name: str, version: str, files: dict[str, str], requires: tuple[str, ...] = ()):
    """A real (pure-Python) wheel pip installs: the files, METADATA, WHEEL and a RECORD with hashes."""
    import base64
    import hashlib
    import zipfile

    info = f"{name}-{version}.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
        name, version, "".join(f"Requires-Dist: {r}\n" for r in requires))
    contents[f"{info}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for path, text in contents.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    contents[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for name_in_zip, text in contents.items():
            zf.writestr(name_in_zip, text)
    return path


def _manifest_of(version: str, wheels, requirements: tuple[str, ...]) -> c.ReleaseManifest:
    from kiosk.updater import sha256_file

    return c.ReleaseManifest(version=version, requirements=requirements, created_at=datetime(2026, 12, 1, tzinfo=UTC),
                             files=tuple(c.ReleaseFile(name=w.name, sha256=sha256_file(w), size=w.stat().st_size)
                                         for w in wheels))


def _staged(tmp_path, version: str, wheels):
    staging = tmp_path / "staging" / version
    staging.mkdir(parents=True)
    for w in wheels:
        (staging / w.name).write_bytes(w.read_bytes())
    return staging


def test_an_update_of_the_project_alone_installs_only_its_wheel_and_leaves_the_running_release_alone(
        tmp_path, key, monkeypatch):
    import kiosk.updater as updater_module
    from kiosk.updater import SITE_PACKAGES

    # The new venv's check imports the fake project instead of the kiosk (not in these wheels).
    monkeypatch.setattr(updater_module, "CHECK_SCRIPT",
                        updater_module.CHECK_SCRIPT.replace("import kiosk.app, kiosk.updater", "import app, dep"))
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    dep = _wheel(wheels, "dep", "1.0", {"dep/__init__.py": "X = 1\n"})
    project = {v: _wheel(wheels, "palaute", v, {"app/__init__.py": f"VERSION = {v!r}\n",
                                                "fleet_server/__init__.py": "SERVER = True\n"}, ("dep==1.0",))
               for v in ("0.1.0", "0.2.0")}
    config = _config(tmp_path, key)
    root = config.updates.releases_root
    updater = Updater(config)
    commands: list[list[str]] = []
    run = updater._run
    monkeypatch.setattr(updater, "_run", lambda cmd, what: (commands.append(cmd), run(cmd, what))[1])
    first = _manifest_of("0.1.0", [project["0.1.0"], dep], ("palaute==0.1.0",))
    updater._install("0.1.0", first, _staged(tmp_path, "0.1.0", [project["0.1.0"], dep]))  # from scratch: pip resolves
    rs.switch(root, "0.1.0")
    old_site = root / "0.1.0" / SITE_PACKAGES
    before = {p: (p.stat().st_ino, p.read_bytes()) for p in old_site.rglob("*") if p.is_file()}
    commands.clear()

    second = _manifest_of("0.2.0", [project["0.2.0"], dep], ("palaute==0.2.0",))
    updater._install("0.2.0", second, _staged(tmp_path, "0.2.0", [project["0.2.0"], dep]))

    pip = [cmd for cmd in commands if cmd[1:4] == ["-m", "pip", "install"]]
    assert len(pip) == 1 and "--no-deps" in pip[0] and [a for a in pip[0] if a.endswith(".whl")] == [
        str(tmp_path / "staging" / "0.2.0" / project["0.2.0"].name)]
    new_site = root / "0.2.0" / SITE_PACKAGES
    assert (new_site / "dep/__init__.py").stat().st_ino == (old_site / "dep/__init__.py").stat().st_ino  # linked
    assert "0.2.0" in (new_site / "app/__init__.py").read_text()
    assert list((new_site / "app/__pycache__").glob("__init__.*.pyc"))  # the kiosk's part byte-compiled
    assert not (new_site / "fleet_server/__pycache__").exists()  # the server's part is not
    after = {p: (p.stat().st_ino, p.read_bytes()) for p in old_site.rglob("*") if p.is_file()}
    assert after == before  # the running release: not one file changed, added or removed
    assert rs.is_installed(root, "0.2.0")
    assert updater_module.installed_manifest(root, "0.2.0") == second
    out = __import__("subprocess").run([str(root / "0.2.0/bin/python"), "-c", "import app, dep; print(app.VERSION)"],
                                       capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0.2.0"  # the new venv runs the new version with the kept dependency


def test_an_update_that_adds_a_dependency_lets_pip_resolve_the_whole_release(tmp_path, key, monkeypatch):
    from kiosk.updater import SITE_PACKAGES

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    dep = _wheel(wheels, "dep", "1.0", {"dep/__init__.py": ""})
    extra = _wheel(wheels, "extra", "1.0", {"extra/__init__.py": ""})
    config = _config(tmp_path, key)
    root = config.updates.releases_root
    site = root / "0.1.0" / SITE_PACKAGES
    (site / "dep-1.0.dist-info").mkdir(parents=True)
    (site / "dep-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: dep\nVersion: 1.0\n")
    rs.mark_installed(root, "0.1.0", signing.manifest_text(_manifest_of("0.1.0", [dep], ("dep==1.0",))))
    rs.switch(root, "0.1.0")
    target = root / "0.2.0"
    __import__("shutil").copytree(root / "0.1.0", target)
    updater = Updater(config)
    assert updater._changed_files(target, _manifest_of("0.2.0", [dep], ("dep==1.0",))) == []
    assert updater._changed_files(target, _manifest_of("0.2.0", [dep, extra], ("dep==1.0", "extra"))) is None
    (root / "0.1.0" / rs.INSTALLED_MARKER).write_text("")  # an adopted first install without a signed wheelhouse
    assert updater._changed_files(target, _manifest_of("0.2.0", [dep], ("dep==1.0",))) is None


def test_a_first_install_from_a_signed_wheelhouse_records_its_manifest(tmp_path, key):
    from kiosk.updater import wheelhouse_manifest

    config = _config(tmp_path, key)
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    text = signing.manifest_text(_manifest_of("0.1.0", [_wheel(wheelhouse, "dep", "1.0", {"dep/__init__.py": ""})],
                                              ("dep==1.0",)))
    (wheelhouse / "manifest.json").write_text(text)
    (wheelhouse / "manifest.sig").write_text(signing.sign(key, text) + "\n")
    assert wheelhouse_manifest(config, wheelhouse, "0.1.0") == text
    assert wheelhouse_manifest(config, wheelhouse, "0.2.0") == ""  # another release's wheelhouse
    (wheelhouse / "manifest.sig").write_text(signing.sign(signing.new_private_key(), text))
    assert wheelhouse_manifest(config, wheelhouse, "0.1.0") == ""  # not this kiosk's key
    root = config.updates.releases_root
    (root / "0.1.0").mkdir(parents=True)
    rs.adopt(root, root / "0.1.0", "0.1.0", switch_links=True, manifest_text=text)
    assert (root / "0.1.0" / rs.INSTALLED_MARKER).read_text() == text


def test_the_updater_takes_a_new_target_at_once_not_at_the_next_check(tmp_path, key, monkeypatch):
    import threading

    from kiosk.state import save_station_config

    config = _config(tmp_path, key, check_interval_s=3600)
    updater = Updater(config)
    steps = threading.Semaphore(0)
    monkeypatch.setattr(updater, "step", lambda: steps.release() and "idle")
    stop = threading.Event()
    loop = threading.Thread(target=updater.run, args=(stop.is_set,), daemon=True)
    loop.start()
    try:
        assert steps.acquire(timeout=10)  # the first step, at start
        assert not steps.acquire(timeout=2 * 1.0)  # then nothing: the next check is an hour away
        save_station_config(config.state.dir, default_station_config("kalvia"))  # the kiosk stored a config
        assert steps.acquire(timeout=10), "the stored config did not wake the updater"
    finally:
        stop.set()
        loop.join(5)
    assert not loop.is_alive()


def _on_trial(tmp_path, key, **updates):
    """A kiosk whose 0.2.0 is on trial (current) with 0.1.0 before it (stable), as after a switch."""
    root = tmp_path / "releases"
    for version in ("0.1.0", "0.2.0"):
        (root / version).mkdir(parents=True)
        rs.mark_installed(root, version)
    rs.switch(root, "0.1.0", rs.STABLE)
    rs.switch(root, "0.2.0", rs.CURRENT)
    counter = tmp_path / "nrestarts"
    counter.write_text("5\n")  # systemd's count goes on from before the update
    config = _config(tmp_path, key, **{"restart_command": ["true"], "restarts_command": ["cat", str(counter)],
                                       **updates})
    rs.write_json(config.state.dir / "update-state.json", {"phase": "trial", "version": "0.2.0", "previous": "0.1.0",
                                                           "timeout_s": 300})
    updater = Updater(config)
    assert updater.step() == "trial"  # a fresh start of the trial: 300 s from now
    return updater, counter


def test_a_version_that_keeps_crashing_goes_back_at_its_third_restart_not_at_the_deadline(tmp_path, key):
    updater, counter = _on_trial(tmp_path, key)
    counter.write_text("7\n")
    assert updater.step() == "trial"  # two restarts: it may still come up
    counter.write_text("8\n")
    assert updater.step() == "rolled_back"
    assert updater.state["error"].startswith("0.2.0 was restarted 3 times in 0 s (it keeps crashing): it never")
    assert rs.linked(updater.root, rs.CURRENT) == "0.1.0"


def test_without_a_restart_count_a_crashing_version_waits_for_its_deadline(tmp_path, key):
    updater, counter = _on_trial(tmp_path, key, restarts_command=[])
    counter.write_text("50\n")
    assert updater.step() == "trial"


def test_a_version_whose_self_check_fails_goes_back_at_once(tmp_path, key):
    import os
    import time

    from kiosk.updater import health_path

    updater, _counter = _on_trial(tmp_path, key)
    stale = {"version": "0.2.0", "pid": 1, "online": True, "outbox_ok": True, "selftest_ok": False,
             "detail": "the pin map has no pins", "at": updater.state["trial_started"] - 1}
    rs.write_json(health_path(updater.config), stale)
    assert updater.step() == "trial"  # a report from before this trial's start says nothing about it
    rs.write_json(health_path(updater.config), {**stale, "pid": os.getpid(), "at": time.time()})
    assert updater.step() == "rolled_back"
    assert updater.state["error"] == "0.2.0 is not healthy after 0 s: its self-check failed (the pin map has no pins)"
