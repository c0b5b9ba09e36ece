"""FastAPI dependencies that decide who is asking and what they may do.

Every API route and page depends on one of the ``Annotated`` aliases below
(re-exported by ``fleet_server.api.deps``); a route with none of them is caught
by the test that calls every route anonymously.

- API routes accept a bearer token (``Authorization: Bearer plt_...``) or a
  dashboard session cookie; without either they answer 401 with
  ``WWW-Authenticate: Bearer``; with the wrong role, 403.
- Pages accept the session cookie; without it they redirect to /login?next=...
- Unsafe form posts check the session's CSRF token (``CsrfChecked``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.auth.ratelimit import LoginLimiter
from fleet_server.auth.roles import Principal, Role
from fleet_server.auth.sessions import SESSION_COOKIE, SessionCodec, same
from fleet_server.auth.tokens import TOKEN_PREFIX, token_hash
from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
from fleet_server.core.errors import LoginRequired
from fleet_server.core.i18n import N_
from fleet_server.models import ApiToken, User

TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)
"""last_used_at is written at most this often per token (not on every call)."""


@dataclass
class AuthState:
    """What the auth code needs at run time; ``install_auth`` puts it on ``app.state.auth``."""

    codec: SessionCodec
    limiter: LoginLimiter
    cookie_secure: bool | None


def auth_state(request: Request) -> AuthState:
    return request.app.state.auth


def db_session(request: Request) -> Iterator[Session]:
    """The database session of one request, from ``app.state.session_factory`` (see fleet_server.app):
    the sign-in check, the route (fleet_server.api.deps.SessionDep) and the page's layout share it;
    routes that write commit themselves."""
    with request.app.state.session_factory() as session:
        request.state.session = session  # the layout counts its alerts in it (fleet_server.app)
        try:
            yield session
        finally:
            del request.state.session  # closed below: an error page rendered later opens its own


DbSession = Annotated[Session, Depends(db_session)]


def _from_bearer(db: Session, credential: str) -> Principal | None:
    if not credential.startswith(TOKEN_PREFIX):
        return None
    record = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash(credential)))
    if record is None or record.revoked_at is not None:
        return None
    now = utcnow()
    if record.last_used_at is None or now - record.last_used_at > TOKEN_TOUCH_INTERVAL:
        record.last_used_at = now
        db.commit()
    return Principal("token", record.id, record.name, Role(record.role), record.station_id,
                     group_stations=_group_stations(db, record.group_id))


def _group_stations(db: Session, group_id: str | None) -> frozenset[str] | None:
    """Every station under a user's or token's group (None: not limited to a group)."""
    if group_id is None:
        return None
    from fleet_server.results.groups import stations_under

    return frozenset(stations_under(db, group_id))


def _from_cookie(request: Request, db: Session) -> Principal | None:
    data = auth_state(request).codec.load(request.cookies.get(SESSION_COOKIE))
    if data is None:
        return None
    user = db.get(User, data.user_id)
    if user is None or not user.active or user.session_epoch != data.epoch:
        return None
    return Principal("user", user.id, user.username, Role(user.role), user.station_id, csrf=data.csrf,
                     group_stations=_group_stations(db, user.group_id))


# Declared so the OpenAPI document names both ways in (securitySchemes); neither refuses by
# itself (auto_error=False): api_principal and page_user decide what a missing one means.
bearer_scheme = HTTPBearer(
    auto_error=False, scheme_name="token", description="an API token: palaute-server token create NAME --role ROLE"
)
cookie_scheme = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, scheme_name="session", description="the dashboard's sign-in cookie"
)


def optional_principal(
    request: Request,
    db: DbSession,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    _cookie: Annotated[str | None, Depends(cookie_scheme)],
) -> Principal | None:
    header = request.headers.get("authorization")
    if header:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return _from_bearer(db, credential.strip())
    return _from_cookie(request, db)


def api_principal(principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "sign in, or send an API token: Authorization: Bearer <token> "
            "(palaute-server token create NAME --role ROLE)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def page_user(request: Request, principal: Annotated[Principal | None, Depends(optional_principal)]) -> Principal:
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)
    return principal


_DENIED = {
    "see results": N_("your role ({role}) may not see results"),
    "see devices": N_("your role ({role}) may not see devices"),
    "manage devices": N_("your role ({role}) may not manage devices"),
    "publish notes": N_("your role ({role}) may not publish notes"),
    "download individual answers": N_("your role ({role}) may not download individual answers"),
    "manage users": N_("your role ({role}) may not manage users"),
    "manage rollouts": N_("your role ({role}) may not manage rollouts"),
}
"""What a role may not do, as the refusal says it (in the reader's language; an API caller's is English
unless it sends Accept-Language)."""


def role_refused(principal: Principal, what: str) -> HTTPException:
    """The 403 for ``principal``'s role, which may not do ``what`` (a key of ``_DENIED``)."""
    return HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext(_DENIED[what]).format(role=principal.role))


def _need(check: Callable[[Principal], bool], what: str, base: Callable) -> Callable[..., Principal]:
    if what not in _DENIED:
        raise KeyError(f"no refusal for {what!r} in _DENIED")

    def dependency(principal: Principal = Depends(base)) -> Principal:  # closure: no Annotated string
        if not check(principal):
            raise role_refused(principal, what)
        return principal

    dependency.__name__ = f"need_{what.replace(' ', '_')}"
    return dependency


def _results(p: Principal) -> bool:
    return p.may_view_any_results


def _devices(p: Principal) -> bool:
    return p.may_view_devices()


def _it(p: Principal) -> bool:
    return p.may_manage_devices


def _coordinator(p: Principal) -> bool:
    return p.may_publish_notes


def _admin(p: Principal) -> bool:
    return p.may_manage_users


# ----------------------------------------------------------------- API aliases
ApiPrincipal = Annotated[Principal, Depends(api_principal)]
ResultsReader = Annotated[Principal, Depends(_need(_results, "see results", api_principal))]
DeviceReader = Annotated[Principal, Depends(_need(_devices, "see devices", api_principal))]
ItUser = Annotated[Principal, Depends(_need(_it, "manage devices", api_principal))]
Coordinator = Annotated[Principal, Depends(_need(_coordinator, "publish notes", api_principal))]
AnswerExporter = Annotated[Principal, Depends(_need(_coordinator, "download individual answers", api_principal))]
Admin = Annotated[Principal, Depends(_need(_admin, "manage users", api_principal))]

# ----------------------------------------------------------------- page aliases
PageUser = Annotated[Principal, Depends(page_user)]
PageResultsReader = Annotated[Principal, Depends(_need(_results, "see results", page_user))]
PageDeviceReader = Annotated[Principal, Depends(_need(_devices, "see devices", page_user))]
PageCoordinator = Annotated[Principal, Depends(_need(_coordinator, "publish notes", page_user))]
PageAdmin = Annotated[Principal, Depends(_need(_admin, "manage users", page_user))]


def ensure_station_results(principal: Principal, station_id: str) -> None:
    """403 unless ``principal`` may see ``station_id``'s results (staff: their own only)."""
    if not principal.may_view_results(station_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext("you may not see the results of station {id}").format(
            id=repr(station_id)))


def ensure_station_devices(principal: Principal, station_id: str | None) -> None:
    if not principal.may_view_devices(station_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext("you may not see the devices of station {id}").format(
            id=repr(station_id)))


async def csrf_checked(request: Request, principal: PageUser) -> Principal:
    """For form posts from the dashboard: the hidden csrf_token must match the session's."""
    form = await request.form()
    token = form.get("csrf_token")
    if principal.kind != "user" or not same(principal.csrf, token if isinstance(token, str) else None):
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext(
            "the form has expired or did not come from this site; reload the page and try again"))
    return principal


CsrfChecked = Annotated[Principal, Depends(csrf_checked)]


def login_url(next_url: str) -> str:
    return "/login?next=" + quote(next_url, safe="/")
