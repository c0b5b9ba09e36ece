"""/manage/stations: IT and coordinators keep each station's names (fi, sv, en) and its place in
the group hierarchy; every saved change is kept in station_edits (who, when, old and new).

Opening hours and the survey belong to the kiosk settings (/stations/<id>/config, IT), which
the page links to. A changed name is sent to the station's kiosks with their config, as the
settings page does.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from fleet_server.api.deps import CsrfChecked, PageUser, SessionDep
from fleet_server.api.fleet import publisher
from fleet_server.auth.roles import Role
from fleet_server.core import i18n
from fleet_server.fleet.publisher import PublishError
from fleet_server.fleet.remote_config import ConfigInvalid, publish_station
from fleet_server.models import Device, Station, StationEdit
from fleet_server.results import groups
from fleet_server.web.dashboard import page_context
from fleet_server.web.templating import templates

router = APIRouter(include_in_schema=False)

EDITORS = (Role.IT, Role.COORDINATOR)
NAME_FIELDS = ("name", "name_fi", "name_sv", "name_en")
MAX_NAME = 200
HISTORY_ROWS = 20


def _editor(principal) -> None:
    if principal.role not in EDITORS:
        raise HTTPException(status.HTTP_403_FORBIDDEN,
                            i18n.gettext("your role ({role}) may not edit stations").format(role=i18n.gettext(principal.role)))


def _station(session, station_id: str) -> Station:
    station = session.get(Station, station_id)
    if station is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no station {id}").format(id=station_id))
    return station


@router.get("/manage/stations", response_class=HTMLResponse)
def station_list(request: Request, session: SessionDep, principal: PageUser) -> Response:
    _editor(principal)
    tree = groups.load_tree(session)
    lang = i18n.lang()
    stations = i18n.by_name(session.scalars(select(Station)), lang)
    paths = {s.id: " › ".join(tree.groups[g].name_in(lang) for g in reversed(tree.ancestors(s.group_id)))
             for s in stations}
    return templates.TemplateResponse(request, "stations_admin.html", page_context(
        request, principal, nav="stations", stations=stations, paths=paths))


def _form_page(request, session, principal, station: Station, *, values: dict[str, str] | None = None,
               message: str | None = None, error: str | None = None, code: int = 200) -> Response:
    tree = groups.load_tree(session)
    lang = i18n.lang()
    choices = []

    def walk(gid: str, depth: int) -> None:
        choices.append((gid, tree.groups[gid].name_in(lang), depth))
        for child in i18n.by_name((tree.groups[c] for c in tree.children.get(gid, [])), lang):
            walk(child.id, depth + 1)

    for top in i18n.by_name((tree.groups[c] for c in tree.children.get(None, [])), lang):
        walk(top.id, 0)
    history = list(session.scalars(select(StationEdit).where(StationEdit.station_id == station.id)
                                   .order_by(StationEdit.id.desc()).limit(HISTORY_ROWS)))
    current = {f: getattr(station, f) or "" for f in NAME_FIELDS} | {"group_id": station.group_id or ""}
    return templates.TemplateResponse(request, "station_edit.html", page_context(
        request, principal, nav="stations", station=station, values=values or current, group_choices=choices,
        history=history, message=message, error=error, may_edit_hours=principal.role is Role.IT),
        status_code=code)


@router.get("/manage/stations/{station_id}", response_class=HTMLResponse)
def station_form(request: Request, session: SessionDep, principal: PageUser, station_id: str,
                 done: str | None = None) -> Response:
    _editor(principal)
    return _form_page(request, session, principal, _station(session, station_id), message=done)


@router.post("/manage/stations/{station_id}", response_class=HTMLResponse)
def station_save(
    request: Request,
    session: SessionDep,
    principal: CsrfChecked,
    station_id: str,
    name: Annotated[str, Form()] = "",
    name_fi: Annotated[str, Form()] = "",
    name_sv: Annotated[str, Form()] = "",
    name_en: Annotated[str, Form()] = "",
    group_id: Annotated[str, Form()] = "",
) -> Response:
    _editor(principal)
    station = _station(session, station_id)
    values = {"name": name.strip(), "name_fi": name_fi.strip(), "name_sv": name_sv.strip(),
              "name_en": name_en.strip(), "group_id": group_id.strip()}
    error = None
    if not values["name"]:
        error = i18n.gettext("a station needs a name")
    elif any(len(v) > MAX_NAME for v in values.values()):
        error = i18n.gettext("a name can have at most {n} characters").format(n=MAX_NAME)
    elif values["group_id"] and values["group_id"] not in groups.load_tree(session).groups:
        error = i18n.gettext("no group {id}").format(id=values["group_id"])
    if error:
        return _form_page(request, session, principal, station, values=values, error=error, code=400)
    changes: dict[str, Any] = {}
    for field, new in values.items():
        old = getattr(station, field)
        new_value = new or (None if field != "name" else new)
        if (old or None) != (new_value or None):
            changes[field] = [old, new_value]
            setattr(station, field, new_value)
    if not changes:
        return _form_page(request, session, principal, station, message=i18n.gettext("Nothing changed."))
    session.add(StationEdit(station_id=station.id, by=principal.name, changes=changes))
    session.commit()
    done = i18n.gettext("Saved.")
    if "name" in changes and session.scalar(select(Device.id).where(Device.station_id == station.id).limit(1)):
        try:
            publish_station(session, publisher(request), station.id)  # the kiosks show the station's name
        except (PublishError, ConfigInvalid) as exc:
            done = i18n.gettext("Saved, but not yet sent to the kiosks: {reason}").format(reason=exc)
    return RedirectResponse(f"/manage/stations/{station.id}?" + urlencode({"done": done}),
                            status_code=status.HTTP_303_SEE_OTHER)
