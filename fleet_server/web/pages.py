"""The minimal status page at ``/``: stations with their counts, devices with online state.

A placeholder for the full dashboard (a later issue): one router, one template,
auto-refreshing, reading through fleet_server.results.queries like the API does.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from fleet_server.api.deps import PageResultsReader, SessionDep, SettingsDep
from fleet_server.core import i18n
from fleet_server.results import queries
from fleet_server.results.small_counts import TOO_FEW
from fleet_server.web.templating import templates as TEMPLATES

REFRESH_S = 5
"""How often the page reloads itself."""

router = APIRouter(tags=["pages"], include_in_schema=False)


@router.get("/status", response_class=HTMLResponse)
def overview(
    request: Request, session: SessionDep, settings: SettingsDep, principal: PageResultsReader
) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        "status.html",
        {
            "stations": _small_counts_hidden(
                [s for s in queries.list_stations(session) if principal.may_view_results(s.station_id)],
                settings.min_responses,
            ),
            "devices": [d for d in queries.list_devices(session) if principal.may_view_devices(d.station_id)],
            "refresh_s": REFRESH_S,
            "ingest": getattr(request.app.state, "ingestor", None),
        },
    )


def _small_counts_hidden(rows: list[queries.StationRow], minimum: int) -> list[queries.StationRow]:
    """The small-count rule (fleet_server.results.small_counts): a station's counts below the minimum are not shown."""
    for row in rows:
        if row.total < minimum:
            row.total, row.satisfaction = i18n.gettext(TOO_FEW), None  # type: ignore[assignment]
            row.counts = {v: "–" for v in row.counts}  # type: ignore[misc]  # shown as is, like total
    return rows
