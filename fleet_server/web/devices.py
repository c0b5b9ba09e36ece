"""Device pages: fleet health at a glance, one kiosk in detail, a station's config.

Server-rendered like the rest of the dashboard; staff see their own station's
kiosks, coordinators and IT see all; only IT gets the command buttons and the
config form (which post with the session's CSRF token).
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import select

from fleet_server.api.deps import SessionDep, SettingsDep
from fleet_server.api.fleet import publisher
from fleet_server.auth.deps import CsrfChecked, PageDeviceReader, ensure_station_devices, role_refused
from fleet_server.core import i18n
from fleet_server.fleet import alerts as alert_rules
from fleet_server.fleet.device_health import fleet_health
from fleet_server.fleet.publisher import PublishError
from fleet_server.fleet.remote_config import (
    ConfigInvalid,
    build_station_config,
    history,
    publish_station,
    recent_commands,
    save_settings,
    scope_settings,
    send_command,
)
from fleet_server.fleet.survey_templates import TEMPLATES, template
from fleet_server.models import Device, Station
from fleet_server.web.rollouts_pages import rollout_views
from fleet_server.web.templating import templates
from palaute_wire.contract import CommandName
from palaute_wire.opening_hours import LOCAL_ZONE_NAME, WEEKDAYS

router = APIRouter(include_in_schema=False)

REFRESH_S = 15
DAYS = WEEKDAYS


def _context(request: Request, principal, **extra) -> dict:
    return {"principal": principal, "has_devices_page": True, "nav": "devices", **extra}


def _stations_for(principal) -> list[str] | None:
    return None if principal.sees_all_devices else principal.own_stations


def _require_it(principal) -> None:
    if not principal.may_manage_devices:
        raise role_refused(principal, "manage devices")


@router.get("/devices", response_class=HTMLResponse)
def devices_page(request: Request, session: SessionDep, settings: SettingsDep, principal: PageDeviceReader):
    stations = _stations_for(principal)
    return templates.TemplateResponse(
        request,
        "devices.html",
        _context(
            request, principal,
            devices=fleet_health(session, settings, stations),
            alerts=alert_rules.open_alerts(session, stations),
            refresh_s=REFRESH_S,
            rollouts=rollout_views(session) if principal.sees_all_devices else [],
        ),
    )


def _device_response(request: Request, session, settings, principal, device: Device, *,
                     sent: str | None = None, error: str | None = None, status_code: int = 200):
    (health,) = [h for h in fleet_health(session, settings, [device.station_id], include_retired=True)
                 if h.device_id == device.id]
    commands = recent_commands(session, device.id)
    # Only a command of this device is acknowledged on the page: nothing from the URL is echoed.
    sent_row = next((c for c in commands if c.cmd_id == sent), None)
    return templates.TemplateResponse(
        request,
        "device.html",
        _context(request, principal, d=health, commands=commands, sent=sent_row, error=error, refresh_s=REFRESH_S),
        status_code=status_code,
    )


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device_page(device_id: str, request: Request, session: SessionDep, settings: SettingsDep,
                principal: PageDeviceReader, sent: str | None = None):
    device = session.get(Device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no device {id}").format(id=repr(device_id)))
    ensure_station_devices(principal, device.station_id)
    return _device_response(request, session, settings, principal, device, sent=sent)


@router.post("/devices/{device_id}/commands")
def device_command(
    device_id: str,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: CsrfChecked,
    name: Annotated[str, Form()],
    from_seq: Annotated[str, Form()] = "",
):
    _require_it(principal)
    device = session.get(Device, device_id)
    if device is None or device.state == "retired":
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no device {id} in use").format(id=repr(device_id)))
    if name not in ("identify", "restart", "resend"):
        raise HTTPException(422, f"unknown command {name!r}")
    seq = int(from_seq) if from_seq.strip().isdigit() and int(from_seq) >= 1 else None
    if name == "resend" and seq is None:
        return _device_response(request, session, settings, principal, device,
                                error="resend needs a sequence number (1 or more)", status_code=422)
    try:
        command = cast(CommandName, name)  # checked against the three names above
        row = send_command(session, publisher(request), device_id, command, from_seq=seq, by=principal.name)
    except PublishError as exc:
        session.rollback()
        return _device_response(request, session, settings, principal, device,
                                error=f"not sent: {exc}", status_code=503)
    session.commit()
    return RedirectResponse(f"/devices/{device_id}?sent={row.cmd_id}", status.HTTP_303_SEE_OTHER)


# ----------------------------------------------------------------- station config


def _hours_text(settings: dict) -> str:
    days = (settings.get("opening_hours") or {}).get("days") or {}
    return "\n".join(f"{d} {days[d][0]}-{days[d][1]}" for d in DAYS if d in days)


def _parse_hours(text: str) -> dict | None:
    """``mon 08:00-16:00`` per line; empty text: no opening hours (always open)."""
    days: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            day, span = line.split()
            start, end = span.split("-")
        except ValueError:
            raise ConfigInvalid([f"opening hours line {number}: {line!r} is not like 'mon 08:00-16:00'"]) from None
        if day not in DAYS:
            raise ConfigInvalid([f"opening hours line {number}: {day!r} is not one of {', '.join(DAYS)}"])
        days[day] = [start, end]
    return {"timezone": LOCAL_ZONE_NAME, "days": days} if days else None


def _config_response(request: Request, session, principal, station: Station, *, saved: int | None = None,
                     error: str | None = None, status_code: int = 200):
    own = scope_settings(session, station.id)
    config = build_station_config(session, station.id)
    current_template = next(
        (name for name, (_, make) in TEMPLATES.items()
         if make().model_dump(mode="json") == config.survey.model_dump(mode="json")),
        "custom",
    )
    devices = session.scalars(select(Device).where(Device.station_id == station.id, Device.state != "retired")).all()
    return templates.TemplateResponse(
        request,
        "station_config.html",
        _context(request, principal, station=station, config=config, own=own, hours_text=_hours_text(own),
                 templates_=TEMPLATES, current_template=current_template, history=history(session, station.id),
                 devices=devices, saved=saved, error=error),
        status_code=status_code,
    )


@router.get("/stations/{station_id}/config", response_class=HTMLResponse)
def station_config_page(station_id: str, request: Request, session: SessionDep, principal: PageDeviceReader,
                        saved: int | None = None):
    station = session.get(Station, station_id)
    if station is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no station {id}").format(id=repr(station_id)))
    ensure_station_devices(principal, station_id)
    return _config_response(request, session, principal, station, saved=saved)


@router.post("/stations/{station_id}/config")
def station_config_save(
    station_id: str,
    request: Request,
    session: SessionDep,
    principal: CsrfChecked,
    survey_template: Annotated[str, Form()] = "",
    default_lang: Annotated[str, Form()] = "",
    idle_timeout_s: Annotated[str, Form()] = "",
    opening_hours: Annotated[str, Form()] = "",
    comment: Annotated[str, Form()] = "",
):
    _require_it(principal)
    station = session.get(Station, station_id)
    if station is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no station {id}").format(id=repr(station_id)))
    try:
        changes: dict = {
            "opening_hours": _parse_hours(opening_hours),
            "default_lang": default_lang or None,
            "idle_timeout_s": float(idle_timeout_s) if idle_timeout_s.strip() else None,
        }
        if survey_template in TEMPLATES:
            changes["survey"] = template(survey_template).model_dump(mode="json")
        save_settings(session, station_id, changes, by=principal.name, comment=comment[:500])
    except (ConfigInvalid, ValueError) as exc:
        session.rollback()
        return _config_response(request, session, principal, station, error=f"not saved: {exc}", status_code=422)
    session.commit()
    try:
        published = publish_station(session, publisher(request), station_id)
    except PublishError as exc:
        return _config_response(request, session, principal, station, status_code=503,
                                error=f"saved, but not published to the kiosks: {exc}; save again later")
    return RedirectResponse(f"/stations/{station_id}/config?saved={published.config_version}",
                            status.HTTP_303_SEE_OTHER)
