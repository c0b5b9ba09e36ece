"""Wiring auth into an app: ``install_auth(app, settings, session_factory)`` from create_app."""

from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from fleet_server.auth.deps import AuthState, LoginRequired, login_url
from fleet_server.auth.ratelimit import LoginLimiter
from fleet_server.auth.routes import router
from fleet_server.auth.sessions import SessionCodec
from fleet_server.core import i18n
from fleet_server.core.settings import Settings, SettingsError
from fleet_server.web.templating import STATIC_DIR, templates

_LOGGER = logging.getLogger(__name__)

PUBLIC_PATHS = ("/login", "/healthz", "/static/")
"""What anonymous visitors may reach: the sign-in page, the health check, CSS/JS files."""


def session_secret(settings: Settings) -> str:
    if settings.session_secret is not None:
        secret = settings.session_secret.get_secret_value()
        if len(secret) < 32:
            raise SettingsError("PALAUTE_SESSION_SECRET: use at least 32 random characters")
        return secret
    if settings.mode in ("development", "demo"):
        _LOGGER.warning("no PALAUTE_SESSION_SECRET in %s mode: using a throwaway one", settings.mode)
        return secrets.token_urlsafe(32)
    raise SettingsError(
        "PALAUTE_SESSION_SECRET is not set: the dashboard signs its session cookies with it. "
        "Set it to at least 32 random characters (python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), "
        "or run with PALAUTE_MODE=development for a throwaway one."
    )


def install_auth(app: FastAPI, settings: Settings) -> None:
    """Sign-in routes, the login redirect, /static, and ``app.state.auth``; call from create_app."""
    app.state.auth = AuthState(
        codec=SessionCodec(session_secret(settings), settings.session_max_age_s),
        limiter=LoginLimiter(settings.login_max_failures, settings.login_window_s),
        cookie_secure=settings.cookie_secure,
    )

    @app.exception_handler(LoginRequired)
    async def _to_login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(login_url(exc.next_url), status_code=303)

    @app.exception_handler(StarletteHTTPException)
    async def _error_page(request: Request, exc: StarletteHTTPException) -> Response:
        return await error_response(request, exc)

    app.include_router(router)
    app.middleware("http")(_security_headers)
    app.middleware("http")(_language)
    if not any(getattr(r, "path", None) == "/static" for r in app.routes):
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _guard_docs(app)


ERROR_TITLES = {
    400: i18n.N_("The request could not be understood"),
    403: i18n.N_("Not allowed"),
    404: i18n.N_("Not found"),
    405: i18n.N_("Not allowed"),
    409: i18n.N_("Conflict"),
    422: i18n.N_("The request could not be understood"),
}
OTHER_ERROR_TITLE = i18n.N_("Something went wrong")


def wants_html(request: Request) -> bool:
    """A browser navigating (Accept names text/html); scripts and the API's callers get JSON."""
    return "text/html" in request.headers.get("accept", "")


async def error_response(request: Request, exc: StarletteHTTPException) -> Response:
    """An error as a page for a browser (a 403 on the exports link is a page, not raw JSON); JSON otherwise."""
    if not wants_html(request) or exc.status_code in (401, 503) or not isinstance(exc.detail, str):
        return await http_exception_handler(request, exc)
    title = i18n.gettext(ERROR_TITLES.get(exc.status_code, OTHER_ERROR_TITLE))
    response = templates.TemplateResponse(
        request, "error.html", {"principal": None, "title": title, "message": exc.detail}, status_code=exc.status_code
    )
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    response.headers["Cache-Control"] = "no-store"
    return response


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
"""Scripts only from this server (the vendored Chart.js, dashboard.js); inline styles for bar widths."""


async def _language(request: Request, call_next):
    """The reader's language for this request (fleet_server.core.i18n): the cookie, else Accept-Language."""
    lang = i18n.pick(request.cookies.get(i18n.LANG_COOKIE), request.headers.get("accept-language"))
    token = i18n.current_lang.set(lang)
    try:
        response = await call_next(request)
    finally:
        i18n.current_lang.reset(token)
    response.headers.setdefault("Content-Language", lang)
    vary = response.headers.get("Vary")
    if not vary or "accept-language" not in vary.lower():
        response.headers["Vary"] = f"{vary}, Accept-Language" if vary else "Accept-Language"
    return response


async def _security_headers(request: Request, call_next):
    response = await call_next(request)
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.url.path != (request.app.docs_url or ""):  # Swagger UI loads its own assets
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    # A page that sets its own frame-ancestors (the public embed variant) is framed by CSP alone.
    if "frame-ancestors 'none'" in headers.get("Content-Security-Policy", "frame-ancestors 'none'"):
        headers.setdefault("X-Frame-Options", "DENY")
    return response


def _guard_docs(app: FastAPI) -> None:
    """Serve /openapi.json and /docs to signed-in users and token holders only.

    FastAPI adds them unguarded when the app is made; they are replaced by the
    same pages behind ``api_principal``.
    """
    from fastapi import Depends
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import JSONResponse

    from fleet_server.auth.deps import api_principal

    openapi_url, docs_url = app.openapi_url, app.docs_url
    doomed = {openapi_url, docs_url, app.redoc_url, f"{docs_url}/oauth2-redirect" if docs_url else None}
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) not in doomed]
    if openapi_url:

        @app.get(openapi_url, include_in_schema=False, dependencies=[Depends(api_principal)])
        def openapi_json() -> JSONResponse:
            return JSONResponse(app.openapi())

    if openapi_url and docs_url:

        @app.get(docs_url, include_in_schema=False, dependencies=[Depends(api_principal)])
        def swagger_ui():
            return get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{app.title} - API",
                swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",  # vendored: no CDN
                swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css",
                swagger_favicon_url="/static/vendor/swagger-ui/favicon-32x32.png",
            )


def iter_routes(app: FastAPI):
    """(path, methods) of every route, including those of included routers.

    FastAPI >= 0.16x keeps included routers as lazy ``_IncludedRouter`` entries in
    ``app.routes``; their ``effective_route_contexts()`` hold the real paths.
    """
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                yield ctx.path, getattr(ctx.original_route, "methods", None) or set()
        else:
            yield getattr(route, "path", ""), getattr(route, "methods", None) or set()
