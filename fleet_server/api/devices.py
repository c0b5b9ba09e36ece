"""/api/v1/devices: every kiosk with the health it last reported."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from fleet_server import queries

from .deps import SessionDep
from .schemas import DeviceOut

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("", response_model=list[DeviceOut], summary="All devices with online state and last status")
def list_devices(
    session: SessionDep,
    station_id: Annotated[str | None, Query(description="only this station's devices")] = None,
) -> list[DeviceOut]:
    return [DeviceOut.model_validate(d) for d in queries.list_devices(session, station_id)]
