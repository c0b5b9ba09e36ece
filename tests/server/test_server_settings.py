"""Settings: defaults, PALAUTE_ environment, config files, and errors that name the setting."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from fleet_server.cli import app as cli_app
from fleet_server.core.settings import SettingsError, load_settings


def test_defaults_are_zero_setup():
    s = load_settings(environ={})
    assert s.database_url.startswith("sqlite:///")
    assert (s.mqtt_host, s.mqtt_port, s.mqtt_tls) == ("127.0.0.1", 1883, False)
    assert (s.http_host, s.http_port) == ("127.0.0.1", 8000)
    assert s.mqtt_client_id is None and s.ingest_client_id.startswith("palaute-ingest-")


def test_the_default_ingest_client_id_is_the_same_for_one_database_and_differs_between_two():
    one = load_settings(environ={}, database_url="postgresql+psycopg://palaute@db1.example/palaute")
    again = load_settings(environ={}, database_url="postgresql+psycopg://other@db1.example/palaute")
    two = load_settings(environ={}, database_url="postgresql+psycopg://palaute@db2.example/palaute")
    assert one.ingest_client_id == again.ingest_client_id != two.ingest_client_id
    assert load_settings(environ={}, mqtt_client_id="county-ingest").ingest_client_id == "county-ingest"


def test_environment_with_prefix_is_read():
    s = load_settings(environ={
        "PALAUTE_MQTT_URL": "mqtts://broker.example:8884",
        "PALAUTE_MQTT_USERNAME": "ingest",
        "PALAUTE_MQTT_PASSWORD": "s3cret",
        "PALAUTE_HTTP_PORT": "9000",
        "PALAUTE_MQTT_SHARED_GROUP": "workers",
    })
    assert (s.mqtt_host, s.mqtt_port, s.mqtt_tls, s.http_port) == ("broker.example", 8884, True, 9000)
    assert s.mqtt_credentials == ("ingest", "s3cret")
    assert "s3cret" not in repr(s)


def test_toml_config_file_is_read_and_environment_wins(tmp_path):
    path = tmp_path / "server.toml"
    path.write_text('database_url = "postgresql+psycopg://palaute@db/palaute"\nhttp_port = 8080\n')
    s = load_settings(environ={"PALAUTE_CONFIG_FILE": str(path), "PALAUTE_HTTP_PORT": "8081"})
    assert (s.database_url, s.http_port) == ("postgresql+psycopg://palaute@db/palaute", 8081)


def test_dotenv_config_file_is_read(tmp_path):
    path = tmp_path / "server.env"
    path.write_text("PALAUTE_MQTT_URL=mqtt://10.0.0.5\n")
    assert load_settings(path, environ={}).mqtt_port == 1883


@pytest.mark.parametrize(
    "name, value, says",
    [
        ("PALAUTE_MQTT_URL", "http://broker:1883", "mqtt:// or mqtts://"),
        ("PALAUTE_MQTT_URL", "mqtt://", "names no host"),
        ("PALAUTE_HTTP_PORT", "99999", "less than or equal to 65535"),
        ("PALAUTE_DATABASE_URL", "mysql://x/y", "not supported"),
        ("PALAUTE_INGEST_BATCH_SIZE", "0", "greater than or equal to 1"),
    ],
)
def test_bad_value_names_the_setting(name, value, says):
    with pytest.raises(SettingsError) as err:
        load_settings(environ={name: value})
    assert name in str(err.value) and says in str(err.value)


def test_missing_config_file_is_named():
    with pytest.raises(SettingsError, match="PALAUTE_CONFIG_FILE: .*does not exist"):
        load_settings(environ={"PALAUTE_CONFIG_FILE": "/nonexistent/palaute.toml"})


def test_cli_migrate_creates_the_database_and_reports_bad_settings(tmp_path, monkeypatch):
    runner = CliRunner()
    db = tmp_path / "sub" / "palaute.db"
    monkeypatch.setenv("PALAUTE_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.delenv("PALAUTE_CONFIG_FILE", raising=False)
    result = runner.invoke(cli_app, ["migrate"])
    assert result.exit_code == 0, result.output
    assert db.exists()
    monkeypatch.setenv("PALAUTE_MQTT_URL", "ftp://nope")
    result = runner.invoke(cli_app, ["migrate"])
    assert result.exit_code == 2 and "PALAUTE_MQTT_URL" in result.output


def test_palaute_variables_that_are_no_setting_are_left_alone_as_in_os_environ():
    from fleet_server.core.settings import load_settings

    settings = load_settings(environ={"PALAUTE_TEST_DATABASE_URL": "postgresql://x/y", "PALAUTE_LOG_LEVEL": "DEBUG"})
    assert settings.log_level == "DEBUG"


def test_serve_without_a_session_secret_says_so_in_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from fleet_server.devtools.local_broker import free_port

    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAUTE_")}
    env.update(PALAUTE_DATABASE_URL=f"sqlite:///{tmp_path / 'p.db'}", PALAUTE_HTTP_PORT=str(free_port()),
               COLUMNS="200")
    proc = subprocess.run([str(Path(sys.executable).with_name("palaute-server")), "serve", "--no-ingest"],
                          env=env, check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("palaute-server: PALAUTE_SESSION_SECRET is not set")
