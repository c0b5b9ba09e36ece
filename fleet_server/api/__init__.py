"""The JSON API under /api/v1: one router per resource, collected by ``api_router``."""

from fastapi import APIRouter, Depends

from fleet_server.api import answers, dead_letters, devices, results, stations
from fleet_server.api.schemas import ERROR_RESPONSES
from fleet_server.auth.deps import api_principal

API_PREFIX = "/api/v1"

# Anonymous callers get 401 on every API route; the routes check roles themselves.
api_router = APIRouter(prefix=API_PREFIX, dependencies=[Depends(api_principal)], responses=ERROR_RESPONSES)
api_router.include_router(stations.router)
api_router.include_router(devices.router)
api_router.include_router(dead_letters.router)
api_router.include_router(results.router)
api_router.include_router(answers.router)
