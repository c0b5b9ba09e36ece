"""Release files for kiosks: ``GET /kiosk/v1/releases/{version}/{name}``.

Only kiosks may download, each with its own credentials: HTTP Basic with the
device id and the device's broker secret, checked against the registry's hash
(the same ``$7$`` hash the broker's password file holds). Behind nginx with TLS
in production (deploy/nginx). ``Range`` requests are answered with 206, so a
kiosk resumes an interrupted download. A withdrawn release is no longer served.
People use the dashboard and the API; there is nothing here for them.
"""

from __future__ import annotations

import logging
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlalchemy.orm import Session

from fleet_server.fleet.broker_accounts import verify_hash
from fleet_server.fleet.releases import store_path
from fleet_server.models import Device, DeviceCredential, Release, ReleaseFile

_LOGGER = logging.getLogger(__name__)

router = APIRouter(prefix="/kiosk/v1", tags=["kiosk updates"], include_in_schema=False)
_basic = HTTPBasic(realm="palaute-kiosk")

_DUMMY_HASH = "$7$101$c2FsdHNhbHRzYWx0$" + "A" * 86 + "=="
"""Checked when the device is unknown, so a wrong id costs as long as a wrong secret."""


def authenticate(session: Session, credentials: HTTPBasicCredentials) -> Device:
    """The live device whose id and secret these are; 401 otherwise."""
    credential = session.get(DeviceCredential, credentials.username)
    device = session.get(Device, credentials.username) if credential is not None else None
    ok = verify_hash(credentials.password, credential.password_hash if credential else _DUMMY_HASH)
    if not ok or device is None or device.state == "retired":
        raise HTTPException(401, "device id or secret not accepted", headers={"WWW-Authenticate": "Basic"})
    return device


DOWNLOAD_CHECK_THREADS = 4
"""Worker threads the download checks (PBKDF2, two lookups) may take at once: a hundred kiosks
starting their downloads together queue here instead of taking every thread the dashboard needs."""
_limiter: anyio.CapacityLimiter | None = None


def _check(request: Request, credentials: HTTPBasicCredentials, version: str, name: str) -> tuple[str, str]:
    # A session of its own, closed before the file is sent: a hundred kiosks downloading at
    # once must not hold a hundred database connections (the pool is small) while they do.
    with request.app.state.session_factory() as session:
        device = authenticate(session, credentials)
        release = session.get(Release, version)
        if release is None or release.withdrawn_at is not None:
            raise HTTPException(404, f"no release {version}" if release is None else f"release {version} was withdrawn")
        row = session.get(ReleaseFile, (version, name))
        if row is None:
            raise HTTPException(404, f"release {version} has no file {name}")
        return row.sha256, device.id


@router.get("/releases/{version}/{name}")
async def release_file(version: str, name: str, request: Request,
                       credentials: Annotated[HTTPBasicCredentials, Depends(_basic)]) -> Response:
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(DOWNLOAD_CHECK_THREADS)
    sha256, device_id = await anyio.to_thread.run_sync(_check, request, credentials, version, name, limiter=_limiter)
    settings = request.app.state.settings
    headers = {"Cache-Control": "private, no-store"}
    if settings.release_accel_redirect:
        # Behind nginx: it sends the bytes (and answers Range) from its internal location.
        return Response(headers={**headers, "X-Accel-Redirect": f"{settings.release_accel_redirect}{sha256[:2]}/{sha256}",
                                 "Content-Disposition": f'attachment; filename="{name}"'},
                        media_type="application/octet-stream")
    path = store_path(settings.release_store_dir, sha256)
    if not path.is_file():
        _LOGGER.error("release %s file %s is missing from the store (%s)", version, name, path)
        raise HTTPException(503, f"{name} is missing from the release store")
    _LOGGER.debug("serving %s/%s to %s", version, name, device_id)
    return FileResponse(path, media_type="application/octet-stream", filename=name, headers=headers)
