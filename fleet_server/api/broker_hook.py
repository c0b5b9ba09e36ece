"""/broker-auth: the HTTP hook a broker calls to authenticate and authorise its clients.

Answers from the device registry (fleet_server.fleet.broker_hook). Off (403) unless
``PALAUTE_BROKER_AUTH_TOKEN`` is set; the broker sends it as ``Authorization: Bearer
<token>``, or as the password of HTTP basic authentication (RabbitMQ's HTTP backend
sends no headers of its own, but its HTTP client turns ``http://palaute:<token>@host/...``
in the configured URLs into basic authentication). A request body may be JSON or a form, with the field names of
mosquitto-go-auth's HTTP backend (``username``, ``password``, ``clientid``, ``topic``,
``acc``: 1 read, 2 write, 3 read and write, 4 subscribe) or EMQX's (``action``:
publish | subscribe). Allowed: 200 ``{"result": "allow"}``; refused: 403
``{"result": "deny"}`` (go-auth reads the status, EMQX the body).

``/broker-auth/rabbitmq/{user,vhost,resource,topic}`` answer rabbitmq_auth_backend_http
(``auth_http.user_path`` and the others; GET query or POST form): status 200 and a
plain-text body ``allow`` or ``deny`` (any other status is an error to RabbitMQ, which
then refuses and logs it). Example configuration: docs/operations.md "RabbitMQ".
"""

from __future__ import annotations

import base64
import hmac
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from fleet_server.fleet.broker_hook import (
    RABBITMQ_EXCHANGE,
    may_access,
    may_connect,
    may_use_resource,
    rabbitmq_topic,
)

router = APIRouter(prefix="/broker-auth", tags=["broker"], include_in_schema=False)  # brokers call it; not the JSON API

GO_AUTH_ACC = {1: ("read",), 2: ("write",), 3: ("read", "write"), 4: ("subscribe",)}
EMQX_ACTION = {"publish": ("write",), "subscribe": ("subscribe",)}


async def _fields(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    token = settings.broker_auth_token
    if token is None:
        raise HTTPException(403, "the broker hook is off (set PALAUTE_BROKER_AUTH_TOKEN)")
    given = request.headers.get("authorization", "")
    if given.lower().startswith("basic "):
        try:
            given = "Bearer " + base64.b64decode(given[6:].strip(), validate=True).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            given = ""
    if not hmac.compare_digest(given.encode(), f"Bearer {token.get_secret_value()}".encode()):
        raise HTTPException(401, "the broker hook needs Authorization: Bearer <PALAUTE_BROKER_AUTH_TOKEN> "
                                 "(or basic authentication with it as the password)")
    if request.method == "GET":
        return dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise HTTPException(400, "a JSON object is expected")
        return body
    return dict(await request.form())


def _answer(allowed: bool) -> JSONResponse:
    return JSONResponse({"result": "allow" if allowed else "deny"}, status_code=200 if allowed else 403)


@router.post("/user", summary="May this client connect with these credentials?")
async def user(request: Request) -> JSONResponse:
    f = await _fields(request)
    with request.app.state.session_factory() as session:
        return _answer(may_connect(session, request.app.state.settings, str(f.get("username", "")),
                                   str(f.get("password", "")), str(f.get("clientid", f.get("client_id", "")))))


@router.post("/superuser", summary="Superusers: none (go-auth asks before every ACL check)")
async def superuser(request: Request) -> JSONResponse:
    await _fields(request)
    return _answer(False)


@router.post("/acl", summary="May this client publish / read / subscribe to this topic?")
async def acl(request: Request) -> JSONResponse:
    f = await _fields(request)
    try:
        wanted = EMQX_ACTION[str(f["action"])] if "action" in f else GO_AUTH_ACC[int(f.get("acc", 0))]
    except (KeyError, ValueError):
        raise HTTPException(400, "acc must be 1, 2, 3 or 4 (or action publish | subscribe)") from None
    with request.app.state.session_factory() as session:
        settings = request.app.state.settings
        username, client_id, topic = str(f.get("username", "")), str(f.get("clientid", "")), str(f.get("topic", ""))
        return _answer(all(may_access(session, settings, username, client_id, topic, a) for a in wanted))


# ----------------------------------------------------------------- RabbitMQ (rabbitmq_auth_backend_http)

RABBITMQ_VHOST = "/"
"""The one virtual host the kiosks and the server use (RabbitMQ's ``mqtt.vhost`` default)."""


def _rabbit(allowed: bool) -> PlainTextResponse:
    return PlainTextResponse("allow" if allowed else "deny")


@router.api_route("/rabbitmq/user", methods=["GET", "POST"], summary="RabbitMQ: may this client log in?")
async def rabbitmq_user(request: Request) -> PlainTextResponse:
    f = await _fields(request)
    with request.app.state.session_factory() as session:
        return _rabbit(may_connect(session, request.app.state.settings, str(f.get("username", "")),
                                   str(f.get("password", "")), str(f.get("client_id", ""))))


@router.api_route("/rabbitmq/vhost", methods=["GET", "POST"], summary="RabbitMQ: may this user use this vhost?")
async def rabbitmq_vhost(request: Request) -> PlainTextResponse:
    f = await _fields(request)
    return _rabbit(str(f.get("vhost", "")) == RABBITMQ_VHOST)


@router.api_route("/rabbitmq/resource", methods=["GET", "POST"], summary="RabbitMQ: queue and exchange access")
async def rabbitmq_resource(request: Request) -> PlainTextResponse:
    f = await _fields(request)
    if str(f.get("vhost", "")) != RABBITMQ_VHOST:
        return _rabbit(False)
    with request.app.state.session_factory() as session:
        return _rabbit(may_use_resource(
            session, request.app.state.settings, str(f.get("username", "")), str(f.get("client_id", "")),
            str(f.get("resource", "")), str(f.get("name", "")), str(f.get("permission", ""))))


@router.api_route("/rabbitmq/topic", methods=["GET", "POST"], summary="RabbitMQ: may this client publish / subscribe here?")
async def rabbitmq_topic_access(request: Request) -> PlainTextResponse:
    f = await _fields(request)
    permission = str(f.get("permission", ""))
    if str(f.get("vhost", "")) != RABBITMQ_VHOST or str(f.get("name", "")) != RABBITMQ_EXCHANGE or \
            permission not in ("read", "write"):
        return _rabbit(False)
    client_id = str(f.get("variable_map.client_id", f.get("client_id", "")))
    topic = rabbitmq_topic(str(f.get("routing_key", "")))
    with request.app.state.session_factory() as session:
        # RabbitMQ asks "read" when a client subscribes (binds its queue) and "write" when it publishes.
        return _rabbit(may_access(session, request.app.state.settings, str(f.get("username", "")), client_id,
                                  topic, "write" if permission == "write" else "subscribe"))
