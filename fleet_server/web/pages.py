"""The minimal status page at ``/``: stations with their counts, devices with online state.

A placeholder for the full dashboard (a later issue): one router, one template,
auto-refreshing, reading through fleet_server.queries like the API does.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from fleet_server import queries
from fleet_server.api.deps import PageResultsReader, SessionDep

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))

REFRESH_S = 5
"""How often the page reloads itself."""

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/status", response_class=HTMLResponse)
def overview(request: Request, session: SessionDep, principal: PageResultsReader) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        "status.html",
        {
            "stations": [s for s in queries.list_stations(session) if principal.may_view_results(s.station_id)],
            "devices": [d for d in queries.list_devices(session) if principal.may_view_devices(d.station_id)],
            "refresh_s": REFRESH_S,
            "ingest": getattr(request.app.state, "ingestor", None),
        },
    )
