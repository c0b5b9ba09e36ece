"""The one MQTT URL reading that the kiosk's config and the server's settings share."""

from __future__ import annotations

import re

import pytest

from palaute_wire.mqtt_url import MqttUrl, parse_mqtt_url


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("mqtt://127.0.0.1", MqttUrl("127.0.0.1", 1883, tls=False)),
        ("mqtts://broker.example.fi", MqttUrl("broker.example.fi", 8883, tls=True)),
        ("mqtts://broker.example.fi:9883/", MqttUrl("broker.example.fi", 9883, tls=True)),
        ("mqtt://[::1]:1884", MqttUrl("::1", 1884, tls=False)),
    ],
)
def test_scheme_host_and_port_with_the_scheme_default(url, want):
    assert parse_mqtt_url(url) == want


def test_server_credentials_in_the_url_are_percent_decoded():
    url = parse_mqtt_url("mqtt://fleet%2Dserver:p%40ss@127.0.0.1:1883", credentials=True)
    assert (url.username, url.password, url.host, url.port) == ("fleet-server", "p@ss", "127.0.0.1", 1883)
    assert "p@ss" not in repr(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:1883", "must start with mqtt:// or mqtts://"),
        ("mqtt://", "'mqtt://' names no host"),
        ("mqtt://127.0.0.1:99999", "has a bad port (1-65535)"),
        ("mqtt://127.0.0.1:0", "has a bad port (1-65535)"),
        ("mqtt://127.0.0.1:1883/palaute", "is scheme://host:port only: no path or query"),
        ("mqtt://127.0.0.1:1883?x=1", "is scheme://host:port only: no path or query"),
        ("mqtt://kiosk:secret@127.0.0.1:1883", "put credentials in username/password"),
    ],
)
def test_a_bad_url_is_refused_saying_what_is_wrong(url, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_mqtt_url(url)
