"""The JSON API under /api/v1: one router per resource, collected by ``api_router``."""

from fastapi import APIRouter

from . import dead_letters, devices, stations

API_PREFIX = "/api/v1"

api_router = APIRouter(prefix=API_PREFIX)
api_router.include_router(stations.router)
api_router.include_router(devices.router)
api_router.include_router(dead_letters.router)
