"""The fleet server's web application: JSON API, status page, health check, and the ingest.

``create_app(settings)`` builds the FastAPI app; its lifespan applies pending
migrations, opens the database, starts the MQTT ingest and stops it on
shutdown. Everything a route needs is on ``app.state`` (settings,
engine, session_factory, ingestor), reached through fleet_server.api.deps.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from fleet_server.api import api_router
from fleet_server.auth.setup import install_auth
from fleet_server.db import make_engine, make_session_factory, migrate
from fleet_server.fleet_ops import install_fleet_ops, start_fleet_ops, stop_fleet_ops
from fleet_server.ingest import Ingestor
from fleet_server.settings import Settings
from fleet_server.web.dashboard import router as dashboard_router
from fleet_server.web.notes_pages import router as notes_router
from fleet_server.web.users_pages import router as users_router
from fleet_server.web.pages import router as pages_router

_LOGGER = logging.getLogger(__name__)

API_DESCRIPTION = """\
Results and fleet health of the Palaute feedback kiosks.

`satisfaction` = share of smiley answers 3 (happy) and 4 (very happy) among all
smiley answers in the range; `null` when there are none. See docs/api.md.
"""


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
            app.state.ingestor = Ingestor(settings, app.state.session_factory).start()
        start_fleet_ops(app, loop=start_ingest)  # config publisher; alert loop alongside the ingest
        try:
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
    app.include_router(users_router)
    install_fleet_ops(app)  # /devices pages and /api/v1/fleet (health, alerts, configs, commands)
    app.include_router(pages_router)

    @app.get("/healthz", tags=["health"], summary="Database reachable; MQTT and ingest state")
    def healthz(request: Request) -> JSONResponse:
        body: dict = {"status": "ok"}
        try:
            with request.app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            body["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            _LOGGER.warning("health check: database unreachable: %s", exc)
            body.update(status="failing", database=f"error: {type(exc).__name__}")
        ingestor = request.app.state.ingestor
        if ingestor is None:
            body["mqtt"] = "disabled"
        else:
            body["mqtt"] = "connected" if ingestor.connected else "disconnected"
            body["ingest"] = {**ingestor.counters.snapshot(), "backlog": ingestor.backlog}
            if not ingestor.connected and body["status"] == "ok":
                body["status"] = "degraded"
        return JSONResponse(body, status_code=503 if body["status"] == "failing" else 200)

    return app
