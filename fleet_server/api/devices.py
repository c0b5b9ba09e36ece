"""/api/v1/devices: every kiosk with the health it last reported."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from fleet_server.api.deps import DeviceReader, SessionDep, ensure_station_devices
from fleet_server.api.schemas import DeviceOut
from fleet_server.results import queries

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", response_model=list[DeviceOut], summary="All devices with online state and last status")
def list_devices(
    session: SessionDep,
    principal: DeviceReader,
    station_id: Annotated[str | None, Query(description="only this station's devices")] = None,
) -> list[DeviceOut]:
    if not principal.sees_all_devices:  # staff: their own station's (or group's) kiosks only
        if station_id is not None:
            ensure_station_devices(principal, station_id)
        wanted = [station_id] if station_id is not None else principal.own_stations
        return [DeviceOut.model_validate(d) for sid in wanted for d in queries.list_devices(session, sid)]
    return [DeviceOut.model_validate(d) for d in queries.list_devices(session, station_id)]
