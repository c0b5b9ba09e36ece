"""The kiosk config loads into typed sections and its errors name file and field."""

import tomllib
from pathlib import Path

import pytest

from kiosk.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path, text):
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    return path


MINIMAL = """
[device]
station_id = "kalvia"
device_id = "kalvia-1"
[broker]
url = "mqtt://127.0.0.1:1883"
"""


def test_minimal_config_gets_documented_defaults(tmp_path):
    config = load_config(_write(tmp_path, MINIMAL))
    assert config.broker.keepalive_s == 30 and config.broker.heartbeat_s == 30
    assert (config.broker.reconnect_min_s, config.broker.reconnect_max_s) == (1, 10)
    assert config.outbox.max_events == 100_000 and config.outbox.retention_days == 7
    assert config.ui.default_lang == "fi" and config.ui.fullscreen and not config.ui.audio
    assert config.hardware.pin_map is None
    assert (config.broker.host, config.broker.port, config.broker.tls) == ("127.0.0.1", 1883, False)


def test_example_config_in_deploy_is_valid(tmp_path):
    raw = tomllib.loads((ROOT / "deploy" / "kiosk.example.toml").read_text())
    for key in ("password_file", "ca_file"):  # production paths: stand in for them
        (tmp_path / key).write_text("secret\n")
        raw["broker"][key] = str(tmp_path / key)
    config = parse_config(raw, source="kiosk.example.toml")
    assert config.broker.tls and config.broker.port == 8883
    assert config.broker.secret() == "secret"


@pytest.mark.parametrize(
    "text, expected",
    [
        (MINIMAL.replace("mqtt://", "http://"), "kiosk.toml: [broker] url: must start with mqtt:// or mqtts://"),
        (MINIMAL.replace('"kalvia-1"', '"Kalvia 1"'), "[device] device_id: String should match pattern"),
        (MINIMAL + "usrname = 'x'\n", "[broker] usrname: unknown key"),
        (MINIMAL + "[uix]\n", "[uix]: unknown section"),
        (MINIMAL.replace("[device]", "[devicex]"), "[device]: missing section"),
        (MINIMAL.replace('device_id = "kalvia-1"', ""), "[device] device_id: required, but missing"),
        (MINIMAL + "password = 'a'\npassword_file = 'b'\n", "password and password_file: give one, not both"),
        (MINIMAL + "reconnect_min_s = 90\n", "reconnect_min_s must not exceed reconnect_max_s"),
        (MINIMAL + "ca_file = 'ca.crt'\n", "ca_file/client_cert need an mqtts:// url"),
        (MINIMAL + "[ui]\nstaff_pin = 'abcd'\n", "[ui] staff_pin"),
        (MINIMAL + "[simulate]\nmix = [1, 2, 3]\n", "[simulate] mix"),
        (MINIMAL + "[ui]\ndefault_lang = 'de'\n", "[ui] default_lang"),
        (MINIMAL.replace(":1883", ":99999"), "[broker] url: 'mqtt://127.0.0.1:99999' has a bad port"),
        ("[device\n", "kiosk.toml: not valid TOML"),
    ],
)
def test_config_errors_name_the_file_and_field(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, text))
    assert expected in str(info.value)
    assert str(tmp_path / "kiosk.toml") in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_files_named_in_config_must_exist(tmp_path):
    with pytest.raises(ConfigError, match=r"\[broker\] password_file: .*pw does not exist"):
        load_config(_write(tmp_path, MINIMAL + "password_file = 'pw'\n"))
    with pytest.raises(ConfigError, match=r"\[hardware\] pin_map"):
        load_config(_write(tmp_path, MINIMAL + "[hardware]\npin_map = 'pins.toml'\n"))


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "pw").write_text("hunter2\n")
    config = load_config(_write(tmp_path, MINIMAL + "password_file = 'pw'\n[outbox]\npath = 'data/o.db'\n"))
    assert config.outbox.path == tmp_path / "data" / "o.db"
    assert config.broker.secret() == "hunter2"


def test_password_never_shows_in_repr_or_errors(tmp_path):
    config = load_config(_write(tmp_path, MINIMAL + "password = 'hunter2'\n"))
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.broker)
    assert config.broker.secret() == "hunter2"
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, MINIMAL + "password = 'hunter2'\nkeepalive_s = 'x'\n"))
    assert "hunter2" not in str(info.value)
