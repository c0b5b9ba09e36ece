"""palaute-server release / rollout: the operator's commands, run as they are run."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from fleet_server.cli import app


@pytest.fixture
def run(tmp_path):
    env = {
        "PALAUTE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "PALAUTE_RELEASE_STORE_DIR": str(tmp_path / "store"),
        "PALAUTE_MQTT_URL": "mqtt://127.0.0.1:9",  # no broker needed: the fleet loop publishes
    }
    runner = CliRunner()

    def invoke(*args: str, code: int = 0):
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    invoke.env = env
    return invoke


def test_the_operator_reads_releases_and_rollouts_in_their_own_language(run):
    run.env["PALAUTE_LANG"] = "fi"
    assert "ei vielä julkaisuja" in run("release", "list")
    assert "valitse yksi kohde" in run("rollout", "start", "0.2.0", code=1)
    run.env["PALAUTE_LANG"] = "sv"
    out = run("rollout", "start", "0.2.0", "--all", code=1)
    assert "fel: versionen 0.2.0 finns inte" in " ".join(out.split())
    assert "inga utrullningar" in run("rollout", "status")


def test_keygen_sign_add_list_rollout_and_withdraw(run, tmp_path):
    key = tmp_path / "operator.key"
    out = run("release", "keygen", "--out", str(key))
    public = re.search(r"public key: (\S+)", out).group(1)
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert "never overwritten" in run("release", "keygen", "--out", str(key), code=1)

    release = tmp_path / "dist"
    release.mkdir()
    (release / "palaute-0.2.0-py3-none-any.whl").write_bytes(b"x" * 150_000)
    (release / "release.json").write_text(json.dumps({"version": "0.2.0", "requirements": ["palaute==0.2.0"]}))
    assert "no release public key" in run("release", "add", str(release), code=1)
    run.env["PALAUTE_RELEASE_PUBLIC_KEY"] = public
    assert "sign the release first" in run("release", "add", str(release), code=1)
    assert "signed release 0.2.0 (1 file)" in run("release", "sign", str(release), "--key", str(key))
    assert "release 0.2.0 added (0.1 MB)" in run("release", "add", str(release))
    listing = run("release", "list")
    assert "0.2.0" in listing and "palaute-0.2.0-py3-none-any.whl" in listing and "0.1 MB" in listing

    run("station", "add", "kalvia", "--name", "Kälviä")
    run("device", "provision", "kalvia-1", "--station", "kalvia")
    assert "choose one target" in run("rollout", "start", "0.2.0", code=1)
    assert "rollout 1 of 0.2.0 started" in run("rollout", "start", "0.2.0", "--all", "--waves", "1,100%")
    assert "still running" in run("rollout", "start", "0.2.0", "--all", code=1)
    assert "wave 1: 0/1 healthy" in run("rollout", "status")
    assert "rollout 1 paused" in run("rollout", "pause", "1")
    assert "paused" in run("rollout", "status")
    assert "rollout 1 resumed" in run("rollout", "resume", "1")
    assert "release 0.2.0 withdrawn" in run("release", "withdraw", "0.2.0", "--reason", "bad build")
    assert "aborted: release 0.2.0 withdrawn: bad build" in run("rollout", "status")
    assert "withdrawn" in run("release", "list")
