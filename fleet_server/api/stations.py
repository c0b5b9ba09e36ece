"""/api/v1/stations: the station list with all-time figures (small-count rule applied).

A station's results for a period are /api/v1/results/stations/{id} (whole local days,
the small-count rule applied): the raw-count summary for any time window is gone,
because two windows a second apart gave away one patient's answer and its time.
"""

from __future__ import annotations

from fastapi import APIRouter

from fleet_server.api.deps import ResultsReader, SessionDep, SettingsDep
from fleet_server.api.schemas import SmileyCounts, StationOut
from fleet_server.results import queries

router = APIRouter(prefix="/stations", tags=["stations"])


def _out(row: queries.StationRow, minimum: int) -> StationOut:
    shown = row.total >= minimum
    return StationOut(
        station_id=row.station_id, name=row.name, created_at=row.created_at,
        suppressed=not shown,
        total=row.total if shown else None,
        counts=SmileyCounts(**row.counts) if shown else None,
        satisfaction=row.satisfaction if shown else None,
        followups=row.followups if shown else None,
        devices=row.devices, devices_online=row.devices_online, last_event_at=row.last_event_at,
    )


@router.get("", response_model=list[StationOut], summary="All stations with their all-time smiley counts")
def list_stations(session: SessionDep, settings: SettingsDep, principal: ResultsReader) -> list[StationOut]:
    return [
        _out(row, settings.min_responses)
        for row in queries.list_stations(session)
        if principal.may_view_results(row.station_id)
    ]
