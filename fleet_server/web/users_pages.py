"""/users: administrators list, add and disable dashboard users, and list and revoke API tokens.

Creating a token stays on the command line (``palaute-server token create``), where
the secret is printed once to the person who will store it.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from fleet_server.api.deps import CsrfChecked, PageAdmin, SessionDep, role_refused
from fleet_server.auth.passwords import WeakPasswordError
from fleet_server.auth.roles import USER_ROLES
from fleet_server.auth.service import AuthSetupError, add_user, disable_user, revoke_token
from fleet_server.core import i18n
from fleet_server.models import ApiToken, Station, StationGroup, User
from fleet_server.web.dashboard import page_context
from fleet_server.web.templating import templates

router = APIRouter(include_in_schema=False)


def _page(request, session, principal, *, message=None, error=None, code=200) -> Response:
    return templates.TemplateResponse(
        request,
        "users.html",
        page_context(
            request, principal, nav="users", message=message, error=error, roles=USER_ROLES,
            users=list(session.scalars(select(User).order_by(User.username))),
            tokens=list(session.scalars(select(ApiToken).order_by(ApiToken.name))),
            stations=i18n.by_name(session.scalars(select(Station))),
            groups=i18n.by_name(session.scalars(select(StationGroup))),
        ),
        status_code=code,
    )


def _admin(principal) -> None:
    if not principal.may_manage_users:
        raise role_refused(principal, "manage users")


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request, session: SessionDep, principal: PageAdmin, done: str | None = None) -> Response:
    return _page(request, session, principal, message=done)


@router.post("/users", response_class=HTMLResponse)
def create_user(
    request: Request,
    session: SessionDep,
    principal: CsrfChecked,
    username: Annotated[str, Form()],
    role: Annotated[str, Form()],
    password: Annotated[str, Form()],
    station_id: Annotated[str, Form()] = "",
    group_id: Annotated[str, Form()] = "",
) -> Response:
    _admin(principal)
    try:
        add_user(session, username, role, password, station_id or None, group_id or None)
        session.commit()
    except (AuthSetupError, WeakPasswordError) as exc:
        session.rollback()
        return _page(request, session, principal, error=str(exc), code=400)
    return RedirectResponse("/users?" + urlencode({"done": i18n.gettext("user {name} added").format(name=username)}),
                            status_code=303)


@router.post("/users/{username}/disable", response_class=HTMLResponse)
def disable(request: Request, session: SessionDep, principal: CsrfChecked, username: str) -> Response:
    _admin(principal)
    if username == principal.name:
        return _page(request, session, principal, error=i18n.gettext("you cannot disable yourself"), code=400)
    try:
        disable_user(session, username)
        session.commit()
    except AuthSetupError as exc:
        return _page(request, session, principal, error=str(exc), code=404)
    return RedirectResponse("/users?" + urlencode(
        {"done": i18n.gettext("user {name} disabled and signed out").format(name=username)}), status_code=303)


@router.post("/tokens/{name}/revoke", response_class=HTMLResponse)
def revoke(request: Request, session: SessionDep, principal: CsrfChecked, name: str) -> Response:
    _admin(principal)
    try:
        revoke_token(session, name)
        session.commit()
    except AuthSetupError as exc:
        return _page(request, session, principal, error=str(exc), code=404)
    return RedirectResponse("/users?" + urlencode({"done": i18n.gettext("token {name} revoked").format(name=name)}),
                            status_code=303)
