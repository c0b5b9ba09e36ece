"""The fleet server's web application: JSON API, status page, health check, and the ingest.

``create_app(settings)`` builds the FastAPI app; its lifespan applies pending
migrations, opens the database, starts the MQTT ingest and stops it on
shutdown. Everything a route needs is on ``app.state`` (settings,
engine, session_factory, ingestor), reached through fleet_server.api.deps.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from fleet_server.api import api_router
from fleet_server.api.broker_hook import router as broker_hook_router
from fleet_server.api.fleet import router as fleet_api_router
from fleet_server.api.releases import router as kiosk_releases_router
from fleet_server.auth.setup import install_auth
from fleet_server.channels.web_survey import install_web_survey
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.heap import startup_objects_frozen
from fleet_server.core.settings import Settings
from fleet_server.fleet.loop import start_fleet_ops, stop_fleet_ops
from fleet_server.health import health
from fleet_server.ingest.active import ActiveIngest
from fleet_server.models import Alert
from fleet_server.web.dashboard import router as dashboard_router
from fleet_server.web.devices import router as devices_router
from fleet_server.web.notes_pages import router as notes_router
from fleet_server.web.pages import router as pages_router
from fleet_server.web.public_pages import install_public_pages
from fleet_server.web.report_pages import router as report_router
from fleet_server.web.rollouts_pages import router as rollouts_pages_router
from fleet_server.web.stations_admin import router as stations_admin_router
from fleet_server.web.templating import templates
from fleet_server.web.users_pages import router as users_router

_LOGGER = logging.getLogger(__name__)

API_DESCRIPTION = """\
Results and fleet health of the Palaute feedback kiosks.

`satisfaction` = share of smiley answers 3 (happy) and 4 (very happy) among all
smiley answers in the range; `null` when there are none. See docs/api.md.
"""


def fleet_alert_count(request, principal) -> int:
    """Open alerts the signed-in person may see; the nav shows it on every page."""
    factory = getattr(request.app.state, "session_factory", None)
    if factory is None:
        return 0
    query = select(func.count()).select_from(Alert).where(Alert.cleared_at.is_(None))
    if not principal.sees_all_devices:
        query = query.where(Alert.station_id.in_(principal.own_stations))
    page_session = getattr(request.state, "session", None)
    if page_session is not None and page_session.is_active:  # the page's own: no second connection and ping
        return page_session.scalar(query) or 0
    with factory() as session:
        return session.scalar(query) or 0


def install_fleet_routes(app: FastAPI) -> None:
    """/api/v1/fleet (health, alerts, configs, commands) and the /devices pages."""
    app.include_router(fleet_api_router, prefix="/api/v1")
    app.include_router(devices_router)
    templates.env.globals["fleet_alert_count"] = fleet_alert_count


def create_app(settings: Settings, *, start_ingest: bool = True) -> FastAPI:
    """The app; with ``start_ingest=False`` it serves the API only (tests, read replicas)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url)
        migrate(engine)
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.ingestor = None
        if start_ingest:
            app.state.ingestor = ActiveIngest(settings, app.state.session_factory, engine).start()
        start_fleet_ops(app, loop=start_ingest)  # config publisher; alert loop alongside the ingest
        try:
            with startup_objects_frozen():  # full GC walks only what requests made (fleet_server.core.heap)
                yield
        finally:
            stop_fleet_ops(app)
            if app.state.ingestor is not None:
                app.state.ingestor.stop()
            engine.dispose()

    app = FastAPI(
        title="Palaute fleet server",
        version="1",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_auth(app, settings)  # sign-in, sessions, /static; refuses to start without a session secret
    app.include_router(api_router)
    app.include_router(dashboard_router)
    app.include_router(notes_router)
    app.include_router(report_router)  # monthly reports: printable pages, PDFs, e-mail subscriptions
    app.include_router(users_router)
    app.include_router(stations_admin_router)  # station names and groups (IT, coordinators)
    install_fleet_routes(app)
    app.include_router(kiosk_releases_router)  # release files for kiosks (device credentials)
    app.include_router(broker_hook_router)  # /broker-auth for brokers that ask over HTTP (off without a token)
    app.include_router(rollouts_pages_router)  # pause / resume / abort on the devices page
    install_web_survey(app, settings)  # /s/<station>: the web survey behind the QR code (no login)
    install_public_pages(app, settings)  # /public/...: results anyone may read, per station and group (no login)
    app.include_router(pages_router)

    @app.get("/healthz", tags=["health"],
             summary="Database reachable and writable; MQTT and ingest state (fleet_server.health)",
             responses={503: {"description": "the database is unreachable or refuses writes, or the ingest is stalled"}})
    def healthz(request: Request) -> JSONResponse:
        code, body = health(request.app.state, request.app.state.settings.healthz_stall_s)
        return JSONResponse(body, status_code=code)

    return app
