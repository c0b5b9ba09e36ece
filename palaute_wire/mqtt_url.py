"""The one reading of an MQTT broker URL, for the kiosk's config and the server's settings.

``mqtt://host[:port]`` (plain, port 1883 unless given) or ``mqtts://host[:port]``
(TLS, 8883), nothing after the port. The server may carry ``user:password@`` in
its URL (percent-encoded); a kiosk keeps its credentials in their own config
keys, so the kiosk asks for a URL without them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from palaute_wire.errors import BadMqttUrl

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
"""Scheme -> the port used when the URL names none."""


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_mqtt_url(url: str, *, credentials: bool = False) -> MqttUrl:
    """Split ``url``; raise BadMqttUrl (a ValueError) saying what is wrong (read after the setting's name).

    ``credentials``: whether ``user:password@`` may stand before the host.
    """
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise BadMqttUrl("must start with mqtt:// or mqtts://, e.g. mqtts://broker.example.fi:8883")
    if not parts.hostname:
        raise BadMqttUrl(f"{url!r} names no host (e.g. mqtt://127.0.0.1:1883)")
    try:
        port = parts.port  # urllib raises ValueError for a port outside 0-65535
    except ValueError:
        port = 0
    if port == 0:
        raise BadMqttUrl(f"{url!r} has a bad port (1-65535)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadMqttUrl(f"{url!r} is scheme://host:port only: no path or query")
    if (parts.username is not None or parts.password is not None) and not credentials:
        raise BadMqttUrl("is scheme://host:port only; put credentials in username/password")
    return MqttUrl(
        host=parts.hostname,
        port=port or DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme == "mqtts",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
