"""The sign-in and sign-out pages (the only pages open to anonymous visitors)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select

from fleet_server.auth.deps import CsrfChecked, DbSession, auth_state, optional_principal
from fleet_server.auth.passwords import hash_password, needs_rehash, verify_password
from fleet_server.auth.roles import Principal
from fleet_server.auth.sessions import LOGIN_CSRF_COOKIE, SESSION_COOKIE, same
from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
from fleet_server.models import User
from fleet_server.web.templating import templates

_LOGGER = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


def _secure(request: Request) -> bool:
    configured = auth_state(request).cookie_secure
    return configured if configured is not None else request.url.scheme == "https"


def safe_next(value: str | None) -> str:
    """Only same-site paths: never an absolute URL or ``//host`` (open redirect)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _login_page(request: Request, next_url: str, error: str | None = None, username: str = "", status_code: int = 200) -> Response:
    cookie, form_token = auth_state(request).codec.login_csrf()
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"principal": None, "csrf_token": form_token, "next_url": next_url, "error": error, "username": username},
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, cookie, max_age=3600, httponly=True, samesite="lax", secure=_secure(request), path="/login"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    return _login_page(request, safe_next(next))


@router.post("/login")
def login(
    request: Request,
    db: DbSession,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    state = auth_state(request)
    next_url = safe_next(next)
    if not state.codec.check_login_csrf(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _login_page(request, next_url, "The sign-in form expired; please try again.", username, 403)
    client = request.client.host if request.client else "unknown"
    keys = (f"user:{username.lower()}", f"addr:{client}")
    wait = state.limiter.retry_after(db, *keys)
    if wait > 0:
        minutes = max(1, round(wait / 60))
        response = _login_page(
            request, next_url, f"Too many failed sign-ins. Try again in about {minutes} minute(s).", username, 429
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    user = db.scalar(select(User).where(func.lower(User.username) == username.lower()))
    ok = verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        state.limiter.failed(db, *keys)
        _LOGGER.warning("failed sign-in for %r from %s", username, client)
        return _login_page(request, next_url, "Wrong user name or password.", username, 401)
    state.limiter.succeeded(db, keys[0])
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    db.commit()
    cookie, _csrf = state.codec.dump(user.id, user.session_epoch)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=state.codec.max_age_s,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    if user.language in i18n.LANGUAGES:
        set_language_cookie(request, response, user.language)
    _LOGGER.info("%s signed in from %s", user.username, client)
    return response


def set_language_cookie(request: Request, response: Response, lang: str) -> None:
    response.set_cookie(i18n.LANG_COOKIE, lang, max_age=LANG_COOKIE_MAX_AGE_S, httponly=True, samesite="lax",
                        secure=_secure(request), path="/")


LANG_COOKIE_MAX_AGE_S = 400 * 24 * 3600
"""The browser keeps the choice about a year (signed-in users also have it on their account)."""


@router.post("/language")
def choose_language(
    request: Request,
    db: DbSession,
    lang: Annotated[str, Form(max_length=5)],
    principal: Annotated[Principal | None, Depends(optional_principal)],
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Pick the dashboard's language; kept with the user (users.language) and in a cookie."""
    if lang not in i18n.LANGUAGES:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, f"language {lang!r}: use one of {', '.join(i18n.LANGUAGES)}")
    if principal is not None and principal.kind == "user":
        if not same(principal.csrf, csrf_token):
            raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext(
                "the form has expired or did not come from this site; reload the page and try again"))
        user = db.get(User, principal.id)
        if user is not None:
            user.language = lang
            db.commit()
    response = RedirectResponse(safe_next(next), status_code=303)
    set_language_cookie(request, response, lang)
    return response


@router.post("/logout")
def logout(request: Request, db: DbSession, principal: CsrfChecked) -> Response:
    """Ends the session on the server too: the user's session epoch moves on, so a copied
    cookie is refused from now on (every session of this user ends, as on a password change)."""
    user = db.get(User, principal.id)
    if user is not None:
        user.session_epoch += 1
        db.commit()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))
    return response
