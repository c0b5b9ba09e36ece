"""The kiosk wheelhouse's choice of dependencies per Raspberry Pi OS Python."""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

from fleet_server.fleet.wheelhouse import kiosk_requirements, platform_args, requirements_text

ROOT = Path(__file__).parents[2]


def _wheel_like_ours(tmp_path: Path) -> Path:
    """A wheel whose METADATA declares this repository's dependencies, as setuptools writes them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = ["Metadata-Version: 2.1", "Name: palaute", f"Version: {project['version']}", "Provides-Extra: kiosk"]
    lines += [f"Requires-Dist: {dep}" for dep in project["dependencies"]]
    for dep in project["optional-dependencies"]["kiosk"]:
        marker = dep.split(";", 1)
        extra = 'extra == "kiosk"'
        lines.append(f"Requires-Dist: {marker[0].strip()}; ({marker[1].strip()}) and {extra}" if len(marker) == 2
                     else f"Requires-Dist: {dep}; {extra}")
    wheel = tmp_path / "palaute-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("palaute-0.1.0.dist-info/METADATA", "\n".join(lines) + "\n")
    return wheel


def test_bookworm_gets_lgpios_wheel_and_trixie_debians_package(tmp_path):
    wheel = _wheel_like_ours(tmp_path)
    bookworm = kiosk_requirements(wheel, "3.11")
    trixie = kiosk_requirements(wheel, "3.13")
    assert "lgpio>=0.2.2" in bookworm  # not the empty 0.0.0.2 placeholder
    assert not any(r.startswith("lgpio") for r in trixie)  # python3-lgpio through the venv instead
    assert any(r.startswith("kivy") for r in trixie) and any(r.startswith("gpiozero") for r in trixie)


def test_platform_tags_reach_lgpios_manylinux_2_34_wheel_on_bookworm():
    tags = platform_args(36)[1::2]
    assert "manylinux2014_aarch64" in tags and "manylinux_2_34_aarch64" in tags
    assert "manylinux_2_37_aarch64" not in tags  # Bookworm's glibc is 2.36


def test_requirements_pin_every_wheel_by_hash(tmp_path):
    for name in ("palaute-0.1.0-py3-none-any.whl", "Kivy-2.3.1-cp311-cp311-manylinux2014_aarch64.whl"):
        (tmp_path / name).write_bytes(name.encode())
    text = requirements_text(tmp_path.glob("*.whl"))
    assert text.splitlines()[0].startswith("Kivy==2.3.1 --hash=sha256:")
    assert text.splitlines()[1].startswith("palaute[kiosk]==0.1.0 --hash=sha256:")


def test_a_release_for_the_pi_is_the_kiosk_wheelhouse(tmp_path, monkeypatch):
    """`release build` has no aarch64 download of its own: the Pi's wheels come from build_wheelhouse
    (manylinux_2_34 for lgpio, markers for the Pi's Python), so a release directory also provisions."""
    import json

    from fleet_server.fleet import releases, wheelhouse

    calls = []

    def fake_wheelhouse(source, out, python_versions, download_cache=None, version=None, **_):
        calls.append((tuple(python_versions), version, download_cache))
        wheel = out / f"palaute-{version}-py3-none-any.whl"
        wheel.write_bytes(b"PK")
        (out / "requirements-cp311.txt").write_text(requirements_text([wheel]))
        return wheelhouse.Wheelhouse(out, wheel, {"cp311": out / "requirements-cp311.txt"}, {})

    monkeypatch.setattr(wheelhouse, "build_wheelhouse", fake_wheelhouse)
    built = releases.build_release(ROOT, tmp_path / "r", version="0.3.0", python_versions=["3.11"],
                                   download_cache=tmp_path / "cache")
    assert calls == [(("3.11",), "0.3.0", tmp_path / "cache")]
    assert built.requirements == ("palaute[kiosk]==0.3.0",)
    assert json.loads((tmp_path / "r" / "release.json").read_text())["requirements"] == ["palaute[kiosk]==0.3.0"]
    assert "--platform" not in (ROOT / "fleet_server/fleet/releases.py").read_text()  # no second download path
