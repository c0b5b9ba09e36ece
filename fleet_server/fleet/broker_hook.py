"""Broker accounts answered from the registry: "may this client connect / publish / subscribe here?"

For brokers that ask an HTTP service instead of reading Mosquitto's password and ACL
files (a clustered broker has no one file to rewrite): mosquitto-go-auth's HTTP
backend, EMQX's and VerneMQ's HTTP hooks, RabbitMQ's rabbitmq_auth_backend_http
(its AMQP view of MQTT: :func:`rabbitmq_topic`, :func:`may_use_resource`). The rules are the ones the generated
files say (broker_accounts.render_acl_file), from the same registry:

- a kiosk connects with its device id as user name, its own client id (the firmware's
  ``kiosk-<station>-<device>``, or the bare device id) and its secret (checked against
  the stored ``$7$`` hash); a retired kiosk never;
- it publishes only its own ``events`` and ``status``, reads and subscribes only its
  own ``config`` and ``cmd``;
- the fleet server's account (``PALAUTE_MQTT_USERNAME``/``PASSWORD``) reads every
  kiosk's ``events`` and ``status`` (also as a ``$share`` group), writes every
  kiosk's ``config`` and ``cmd``, and uses its own ``palaute/_server/ingest/#``;
- a regional bridge (``palaute-bridge-<name>``, ``palaute-server broker bridge-add``)
  writes every kiosk's ``events`` and ``status`` and reads every kiosk's ``config`` and ``cmd``.
"""

from __future__ import annotations

import hmac

from sqlalchemy.orm import Session

from fleet_server.core.settings import Settings
from fleet_server.fleet.broker_accounts import BRIDGE_PREFIX, verify_hash
from fleet_server.models import BrokerBridge, Device, DeviceCredential
from palaute_wire.contract import TOPIC_ROOT

SERVER_READS = (f"{TOPIC_ROOT}/+/+/events", f"{TOPIC_ROOT}/+/+/status", "palaute/_server/ingest/#")
SERVER_WRITES = (f"{TOPIC_ROOT}/+/+/config", f"{TOPIC_ROOT}/+/+/cmd", "palaute/_server/ingest/#")
BRIDGE_READS = (f"{TOPIC_ROOT}/+/+/config", f"{TOPIC_ROOT}/+/+/cmd")
BRIDGE_WRITES = (f"{TOPIC_ROOT}/+/+/events", f"{TOPIC_ROOT}/+/+/status")
ACCESS = ("read", "write", "subscribe")


def covers(pattern: str, topic: str) -> bool:
    """True when every topic ``topic`` can name (a topic or a subscription filter) matches ``pattern``."""
    want, have = pattern.split("/"), topic.split("/")
    for i, level in enumerate(want):
        if level == "#":
            return True
        if i >= len(have) or have[i] == "#":
            return False
        if level != "+" and level != have[i]:
            return False
    return len(have) == len(want)


def _server(settings: Settings, username: str) -> bool:
    return bool(username) and settings.mqtt_credentials[0] == username


def kiosk_client_ids(device: Device) -> tuple[str, str]:
    """The client ids a kiosk may use: the firmware's (kiosk.uplink: ``kiosk-<station>-<device>``) and its bare id.

    Never another device's, so no kiosk can take over (or read) another one's persistent session.
    """
    return f"kiosk-{device.station_id}-{device.id}", device.id


def _bridge(session: Session, username: str) -> BrokerBridge | None:
    return session.get(BrokerBridge, username.removeprefix(BRIDGE_PREFIX)) if username.startswith(BRIDGE_PREFIX) \
        else None


def may_connect(session: Session, settings: Settings, username: str, password: str, client_id: str) -> bool:
    _user, server_password = settings.mqtt_credentials
    if _server(settings, username):
        return server_password is not None and hmac.compare_digest(password.encode(), server_password.encode())
    if (bridge := _bridge(session, username)) is not None:
        return verify_hash(password, bridge.password_hash)
    device = session.get(Device, username)
    if device is None or device.state == "retired" or client_id not in kiosk_client_ids(device):
        return False
    credential = session.get(DeviceCredential, device.id)
    return credential is not None and verify_hash(password, credential.password_hash)


def may_access(session: Session, settings: Settings, username: str, client_id: str, topic: str, access: str) -> bool:
    if access not in ACCESS:
        return False
    if topic.startswith("$share/"):
        parts = topic.split("/", 2)
        if len(parts) < 3 or access != "subscribe":
            return False
        topic = parts[2]
    if _server(settings, username):
        allowed = SERVER_WRITES if access == "write" else SERVER_READS
        return any(covers(pattern, topic) for pattern in allowed)
    if _bridge(session, username) is not None:
        bridged = BRIDGE_WRITES if access == "write" else BRIDGE_READS
        return any(covers(pattern, topic) for pattern in bridged)
    device = session.get(Device, username)
    if device is None or device.state == "retired" or client_id not in kiosk_client_ids(device):
        return False
    base = f"{TOPIC_ROOT}/{device.station_id}/{device.id}"
    if access == "write":
        return topic in (f"{base}/events", f"{base}/status")
    return topic in (f"{base}/config", f"{base}/cmd")


# ----------------------------------------------------------------- RabbitMQ's view of MQTT

RABBITMQ_EXCHANGE = "amq.topic"
"""The exchange RabbitMQ's MQTT plugin publishes to and binds from (its ``mqtt.exchange``)."""


def rabbitmq_topic(routing_key: str) -> str:
    """The MQTT topic (or filter) behind a RabbitMQ routing key.

    The MQTT plugin swaps ``/`` and ``.`` and writes ``+`` as ``*`` (``#`` stays), so
    ``palaute.v1.kalvia.kalvia-1.events`` is ``palaute/v1/kalvia/kalvia-1/events``. Our ids are slugs
    (no dots), so the way back is unambiguous.
    """
    swapped = routing_key.translate(str.maketrans("./", "/."))
    return "/".join("+" if level == "*" else level for level in swapped.split("/"))


def _may_use_client_id(session: Session, settings: Settings, username: str, client_id: str) -> bool:
    """A kiosk only under its own id (as in :func:`may_connect`); the server under any of its ids."""
    if _server(settings, username) or _bridge(session, username) is not None:
        return bool(client_id)
    device = session.get(Device, username)
    return device is not None and device.state != "retired" and client_id in kiosk_client_ids(device)


def may_use_resource(
    session: Session, settings: Settings, username: str, client_id: str, kind: str, name: str, permission: str
) -> bool:
    """RabbitMQ's resource check, as its MQTT plugin asks it: the client's own session queues
    (``mqtt-subscription-<client id>qos0|1``: declared, bound, consumed) and the MQTT exchange
    (read to bind, write to publish; never configure). Everything else (other queues, other
    exchanges, AMQP clients without an MQTT client id) is refused."""
    if not client_id or not _may_use_client_id(session, settings, username, client_id):
        return False
    if kind == "queue":
        return name in (f"mqtt-subscription-{client_id}qos0", f"mqtt-subscription-{client_id}qos1") and \
            permission in ("configure", "read", "write")
    if kind == "exchange":
        return name == RABBITMQ_EXCHANGE and permission in ("read", "write")
    return False
