"""palaute-server station/device/broker: the IT commands, run as IT runs them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fleet_server.cli import app
from fleet_server.fleet.broker_accounts import verify_hash
from kiosk.config import load_config


@pytest.fixture
def run(tmp_path):
    env = {
        "PALAUTE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "PALAUTE_BROKER_PASSWORD_FILE": str(tmp_path / "auth/passwd"),
        "PALAUTE_BROKER_ACL_FILE": str(tmp_path / "auth/acl"),
        "PALAUTE_MQTT_USERNAME": "palaute-server",
        "PALAUTE_MQTT_PASSWORD": "server-secret",
        "PALAUTE_KIOSK_BROKER_URL": "mqtt://broker.example.fi:1883",
    }
    runner = CliRunner()

    def invoke(*args: str, code: int = 0, lang: dict[str, str | None] | None = None):
        result = runner.invoke(app, list(args), env={**env, **(lang or {})}, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


def _passwd(tmp_path) -> dict[str, str]:
    lines = (tmp_path / "auth/passwd").read_text().splitlines()[1:]
    return dict(line.split(":", 1) for line in lines)


def test_provision_rotate_retire_from_the_command_line(run, tmp_path):
    run("station", "add", "kalvia", "--name", "Kälviä health station")
    out = run("device", "provision", "kalvia-1", "--station", "kalvia", "--out", str(tmp_path / "b")).output
    bundle = tmp_path / "b/kalvia-1"
    secret = (bundle / "broker-password").read_text().strip()
    assert secret in out and "shown once" in out
    assert verify_hash(secret, _passwd(tmp_path)["kalvia-1"])
    assert load_config(bundle / "kiosk.toml").broker.secret() == secret

    out = run("device", "rotate", "kalvia-1").output
    assert not verify_hash(secret, _passwd(tmp_path)["kalvia-1"])
    new_secret = next(line.strip() for line in out.splitlines() if line.startswith("  "))
    assert verify_hash(new_secret, _passwd(tmp_path)["kalvia-1"])

    run("device", "retire", "kalvia-1")
    assert "kalvia-1" not in _passwd(tmp_path)
    assert "retired" in run("device", "list").output
    err = run("device", "rotate", "kalvia-1", code=1)
    assert "retired" in err.output


def test_it_reads_the_commands_and_their_errors_in_its_own_language(run, tmp_path):
    swedish = {"PALAUTE_LANG": "sv"}
    finnish = {"PALAUTE_LANG": None, "LC_ALL": None, "LC_MESSAGES": None, "LANG": "fi_FI.UTF-8"}  # the locale's
    assert "stationen kalvia har lagts till" in run("station", "add", "kalvia", "--name", "Kälviä", lang=swedish).output
    out = run("device", "provision", "kalvia-1", "--station", "kalvia", "--out", str(tmp_path / "b"), lang=swedish).output
    assert "förmedlarlösenord för kalvia-1 (visas bara nu" in out
    assert "förmedlarens filer har skrivits (1 enhetskonto)" in out
    assert "enhet" in run("device", "list", lang=swedish).output.split("kalvia-1")[0]  # the table's header
    err = run("device", "provision", "Kalvia 2", "--station", "kalvia", lang=swedish, code=1).output
    assert "fel: enhetens id 'Kalvia 2' duger inte" in " ".join(err.split())
    err = run("device", "rotate", "kalvia-9", lang=finnish, code=1).output
    assert "virhe: laitetta 'kalvia-9' ei ole" in " ".join(err.split())
    out = run("device", "provision", "kalvia-2", "--station", "kalvia", lang=finnish).output
    assert "välittäjän tiedostot kirjoitettu (2 laitetunnusta)" in " ".join(out.split())
    assert "device kalvia-2 retired" in run("device", "retire", "kalvia-2").output  # else English


def test_csv_provisioning_shows_progress_and_lists_bad_rows(run, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("device_id,station_id,station_name\nk-1,kalvia,Kälviä\nk-2,kalvia,\nx-1,nowhere,\n")
    result = run("device", "provision-csv", str(path), "--out", str(tmp_path / "b"), code=1)
    assert "2 of 3 kiosks provisioned" in result.output
    assert "line 4" in result.output and "no station 'nowhere'" in result.output
    assert set(_passwd(tmp_path)) == {"palaute-server", "k-1", "k-2"}


def test_alerts_test_sends_through_the_configured_smtp_server(tmp_path, smtp):
    controller, box = smtp
    env = {"PALAUTE_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "PALAUTE_SMTP_HOST": "127.0.0.1",
           "PALAUTE_SMTP_PORT": str(controller.port), "PALAUTE_ALERT_EMAIL_TO": "it@county.example"}
    runner = CliRunner()
    result = runner.invoke(app, ["alerts", "test"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "no open alerts" in runner.invoke(app, ["alerts", "list"], env=env).output
    (mail,) = box.messages
    assert mail["To"] == "it@county.example" and "hälytykset menevät perille" in mail.get_content()  # in the e-mail's language
    missing = CliRunner().invoke(app, ["alerts", "test"], env={"PALAUTE_DATABASE_URL": env["PALAUTE_DATABASE_URL"]})
    assert missing.exit_code == 1 and "no alert channel configured" in missing.output


def test_a_regional_bridge_account_is_added_synced_renewed_and_removed(run, tmp_path):
    out = run("broker", "bridge-add", "keski-pohjanmaa").output
    secret = out.split("remote_password:", 1)[1].split()[0]
    assert verify_hash(secret, _passwd(tmp_path)["palaute-bridge-keski-pohjanmaa"])
    assert "1 bridge" in out and "user palaute-bridge-keski-pohjanmaa" in (tmp_path / "auth/acl").read_text()
    assert "palaute-bridge-keski-pohjanmaa" in run("broker", "bridges").output
    again = run("broker", "bridge-add", "keski-pohjanmaa").output.split("remote_password:", 1)[1].split()[0]
    assert not verify_hash(secret, _passwd(tmp_path)["palaute-bridge-keski-pohjanmaa"])
    assert verify_hash(again, _passwd(tmp_path)["palaute-bridge-keski-pohjanmaa"])
    run("broker", "bridge-remove", "keski-pohjanmaa")
    assert "palaute-bridge-keski-pohjanmaa" not in _passwd(tmp_path)
    assert "no bridge" in run("broker", "bridge-remove", "keski-pohjanmaa", code=1).output
    assert "not a slug" in run("broker", "bridge-add", "Bad Name", code=1).output
