"""/api/v1/stations: the station list and a station's results for a time range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from fleet_server.api.deps import ResultsReader, SessionDep, ensure_station_results
from fleet_server.api.schemas import SmileyCounts, StationOut, StationSummary
from fleet_server.results import queries

router = APIRouter(prefix="/stations", tags=["stations"])


def _utc(value: datetime | None) -> datetime | None:
    """Times without an offset are taken as UTC (documented in docs/api.md)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@router.get("", response_model=list[StationOut], summary="All stations with their smiley counts")
def list_stations(session: SessionDep, principal: ResultsReader) -> list[StationOut]:
    return [
        StationOut(**{**vars(row), "counts": SmileyCounts(**row.counts)})
        for row in queries.list_stations(session)
        if principal.may_view_results(row.station_id)
    ]


@router.get(
    "/{station_id}/summary",
    response_model=StationSummary,
    response_model_by_alias=True,
    summary="Smiley counts and satisfaction of one station in a UTC time range",
    responses={400: {"description": "from is not before to"}, 404: {"description": "unknown station"}},
)
def station_summary(
    session: SessionDep,
    principal: ResultsReader,
    station_id: str,
    from_: Annotated[
        datetime | None,
        Query(alias="from", description="ISO-8601 start, inclusive (e.g. 2026-11-01T00:00:00Z); no offset = UTC"),
    ] = None,
    to: Annotated[
        datetime | None, Query(description="ISO-8601 end, exclusive; no offset = UTC")
    ] = None,
) -> StationSummary:
    ensure_station_results(principal, station_id)
    start, end = _utc(from_), _utc(to)
    if start is not None and end is not None and start >= end:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST,
            f"'from' ({queries.iso_utc(start)}) must be before 'to' ({queries.iso_utc(end)})",
        )
    try:
        summary = queries.station_summary(session, station_id, start, end)
    except queries.UnknownStation:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no station {station_id!r}") from None
    return StationSummary.model_validate({**summary, "from": start, "to": end, "counts": SmileyCounts(**summary["counts"])})
