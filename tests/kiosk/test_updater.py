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
