"""/api/v1/fleet: device health, alerts, station configs and commands.

Who may do what (fleet_server.auth.roles): IT manages devices, configs and
commands for every station; coordinators see every device; staff see only their
own station's devices and alerts.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from fleet_server.api.deps import SessionDep, SettingsDep
from fleet_server.api.schemas import FLEET_ERROR_RESPONSES
from fleet_server.auth.deps import DeviceReader, ItUser, ensure_station_devices
from fleet_server.fleet import alerts as alert_rules
from fleet_server.fleet.device_health import fleet_health
from fleet_server.fleet.publisher import Publisher, PublishError
from fleet_server.fleet.remote_config import (
    SETTING_KEYS,
    ConfigInvalid,
    build_station_config,
    history,
    publish_all,
    publish_station,
    recent_commands,
    save_settings,
    scope_settings,
    send_command,
)
from fleet_server.fleet.survey_templates import TEMPLATES, template
from fleet_server.models import Device, Station

router = APIRouter(prefix="/fleet", tags=["fleet"], responses=FLEET_ERROR_RESPONSES)


def publisher(request: Request) -> Publisher:
    pub = getattr(request.app.state, "fleet_publisher", None)
    if pub is None:
        pub = request.app.state.fleet_publisher = Publisher(request.app.state.settings)
    return pub


def _visible_stations(principal, session) -> list[str] | None:
    if principal.sees_all_devices:
        return None
    return principal.own_stations


def _device(session, principal, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no device {device_id!r}")
    ensure_station_devices(principal, device.station_id)
    return device


def _command_dict(row) -> dict:
    return {
        "cmd_id": row.cmd_id, "device_id": row.device_id, "name": row.name, "from_seq": row.from_seq,
        "issued_at": row.issued_at, "issued_by": row.issued_by, "acked_at": row.acked_at, "ok": row.ok,
        "detail": row.detail, "state": "pending" if row.acked_at is None else ("done" if row.ok else "failed"),
    }


# ----------------------------------------------------------------- health and alerts


@router.get("/devices", summary="Health of every kiosk you may see (online, queue, versions, sensors)")
def list_device_health(session: SessionDep, settings: SettingsDep, principal: DeviceReader,
                       include_retired: bool = False) -> list[dict]:
    return [h.as_dict() for h in fleet_health(session, settings, _visible_stations(principal, session),
                                              include_retired=include_retired)]


@router.get("/devices/{device_id}", summary="One kiosk's health and its recent commands")
def get_device_health(device_id: str, session: SessionDep, settings: SettingsDep, principal: DeviceReader) -> dict:
    device = _device(session, principal, device_id)
    (health,) = [h for h in fleet_health(session, settings, [device.station_id], include_retired=True)
                 if h.device_id == device_id]
    return {**health.as_dict(), "commands": [_command_dict(c) for c in recent_commands(session, device_id)]}


@router.get("/devices/{device_id}/gaps", summary="Missing answers: a kiosk's unresolved seq gaps and their resend state")
def get_device_gaps(device_id: str, session: SessionDep, principal: DeviceReader) -> dict:
    from fleet_server.core.clock import utcnow
    from fleet_server.fleet.gap_words import describe, gap_row
    from fleet_server.fleet.gaps import open_gaps

    _device(session, principal, device_id)
    rows = open_gaps(session, [device_id]).get(device_id, [])
    text, level = describe(rows, utcnow())
    return {"device_id": device_id, "missing": sum(r.missing for r in rows), "text": text, "level": level,
            "gaps": [gap_row(r) for r in rows]}


@router.get("/alerts", summary="Open alerts (or the recent history with all=true)")
def list_alerts(session: SessionDep, principal: DeviceReader, all: bool = False) -> list[dict]:
    stations = _visible_stations(principal, session)
    rows = alert_rules.recent_alerts(session, stations) if all else alert_rules.open_alerts(session, stations)
    return [alert_rules.alert_payload(a, "cleared" if a.cleared_at else "firing") for a in rows]


# ----------------------------------------------------------------- commands


class CommandRequest(BaseModel):
    name: Literal["identify", "restart", "resend"]
    from_seq: int | None = Field(default=None, ge=1, description="resend: events with seq >= this")


@router.post("/devices/{device_id}/commands", status_code=status.HTTP_202_ACCEPTED,
             summary="Send identify / restart / resend; the kiosk acknowledges it in its status")
def post_command(device_id: str, body: CommandRequest, request: Request, session: SessionDep,
                 principal: ItUser) -> dict:
    device = _device(session, principal, device_id)
    if device.state == "retired":
        raise HTTPException(status.HTTP_409_CONFLICT, f"device {device_id} is retired")
    if body.name == "resend" and body.from_seq is None:
        raise HTTPException(422, "resend needs from_seq")
    try:
        row = send_command(session, publisher(request), device_id, body.name, from_seq=body.from_seq,
                           by=principal.name)
    except PublishError as exc:
        session.rollback()
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"command not sent: {exc}") from None
    session.commit()
    return _command_dict(row)


@router.get("/devices/{device_id}/commands", summary="Recent commands and their acknowledgements")
def get_commands(device_id: str, session: SessionDep, principal: DeviceReader) -> list[dict]:
    _device(session, principal, device_id)
    return [_command_dict(c) for c in recent_commands(session, device_id, limit=50)]


# ----------------------------------------------------------------- configs


class ConfigChange(BaseModel):
    changes: dict[str, Any] = Field(
        default_factory=dict,
        description=f"settings to change ({', '.join(SETTING_KEYS)}); null removes an override",
    )
    survey_template: str | None = Field(default=None, description=f"use a template: {', '.join(TEMPLATES)}")
    comment: str = Field(default="", max_length=500)
    publish: bool = Field(default=True, description="publish to the kiosks right away")


def _expand(body: ConfigChange) -> dict[str, Any]:
    changes = dict(body.changes)
    if body.survey_template is not None:
        try:
            changes["survey"] = template(body.survey_template).model_dump(mode="json")
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    return changes


def _config_view(session, station_id: str | None) -> dict:
    out: dict = {
        "settings": scope_settings(session, station_id),
        "history": [
            {"id": r.id, "created_at": r.created_at, "created_by": r.created_by, "comment": r.comment,
             "keys": sorted(r.settings)}
            for r in history(session, station_id)
        ],
    }
    if station_id is not None:
        out["effective"] = build_station_config(session, station_id).model_dump(mode="json")
    return out


@router.get("/survey-templates", summary="Survey templates a station can use")
def survey_templates(principal: DeviceReader) -> dict:
    return {name: {"title": title, "survey": make().model_dump(mode="json")}
            for name, (title, make) in TEMPLATES.items()}


@router.get("/stations/{station_id}/config", summary="A station's effective config, own settings and history")
def get_station_config(station_id: str, session: SessionDep, principal: DeviceReader) -> dict:
    if session.get(Station, station_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no station {station_id!r}")
    ensure_station_devices(principal, station_id)
    return _config_view(session, station_id)


def _save_and_publish(request: Request, session, station_id: str | None, body: ConfigChange, by: str) -> dict:
    changes = _expand(body)
    if not changes:
        raise HTTPException(422, "nothing to change: give 'changes' (a setting and its value) or 'survey_template'")
    current = scope_settings(session, station_id)
    if set(changes) <= set(SETTING_KEYS) and all(current.get(key) == value for key, value in changes.items()):
        # The same values again: no new config version, nothing republished to the fleet.
        return {"saved_version_row": None, "unchanged": True, "published": []}
    try:
        row = save_settings(session, station_id, changes, by=by, comment=body.comment)
    except ConfigInvalid as exc:
        session.rollback()
        raise HTTPException(422, {"problems": exc.problems}) from None
    session.commit()
    result: dict = {"saved_version_row": row.id, "unchanged": False, "published": []}
    if body.publish:
        try:
            pubs = (publish_all(session, publisher(request)) if station_id is None
                    else [publish_station(session, publisher(request), station_id)])
        except PublishError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                                f"saved, but not published: {exc}; publish again when the broker is back") from None
        result["published"] = [{"station_id": p.station_id, "config_version": p.config_version,
                                "devices": list(p.devices)} for p in pubs]
    return result


@router.put("/stations/{station_id}/config", summary="Change a station's settings (validated, versioned, published)")
def put_station_config(station_id: str, body: ConfigChange, request: Request, session: SessionDep,
                       principal: ItUser) -> dict:
    if session.get(Station, station_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no station {station_id!r}")
    return _save_and_publish(request, session, station_id, body, principal.name)


@router.post("/stations/{station_id}/config/publish", summary="Publish the current config again (retained)")
def republish(station_id: str, request: Request, session: SessionDep, principal: ItUser) -> dict:
    if session.get(Station, station_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no station {station_id!r}")
    try:
        pub = publish_station(session, publisher(request), station_id)
    except PublishError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    return {"station_id": pub.station_id, "config_version": pub.config_version, "devices": list(pub.devices)}


@router.get("/config/defaults", summary="The fleet-wide default settings and their history")
def get_defaults(session: SessionDep, principal: DeviceReader) -> dict:
    return _config_view(session, None)


@router.put("/config/defaults", summary="Change the fleet-wide defaults (every station is re-validated and published)")
def put_defaults(body: ConfigChange, request: Request, session: SessionDep, principal: ItUser) -> dict:
    return _save_and_publish(request, session, None, body, principal.name)
