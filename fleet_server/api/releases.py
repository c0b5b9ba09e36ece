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

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from fleet_server.api.deps import SessionDep, SettingsDep
from fleet_server.fleet.broker_accounts import verify_hash
from fleet_server.fleet.releases import store_path
from fleet_server.models import Device, DeviceCredential, Release, ReleaseFile

_LOGGER = logging.getLogger(__name__)

router = APIRouter(prefix="/kiosk/v1", tags=["kiosk updates"], include_in_schema=False)
_basic = HTTPBasic(realm="palaute-kiosk")

_DUMMY_HASH = "$7$101$c2FsdHNhbHRzYWx0$" + "A" * 86 + "=="
"""Checked when the device is unknown, so a wrong id costs as long as a wrong secret."""


def kiosk_device(credentials: Annotated[HTTPBasicCredentials, Depends(_basic)], session: SessionDep) -> Device:
    """The live device whose id and secret these are; 401 otherwise."""
    credential = session.get(DeviceCredential, credentials.username)
    device = session.get(Device, credentials.username) if credential is not None else None
    ok = verify_hash(credentials.password, credential.password_hash if credential else _DUMMY_HASH)
    if not ok or device is None or device.state == "retired":
        raise HTTPException(401, "device id or secret not accepted", headers={"WWW-Authenticate": "Basic"})
    return device


KioskDevice = Annotated[Device, Depends(kiosk_device)]


@router.get("/releases/{version}/{name}")
def release_file(version: str, name: str, device: KioskDevice, session: SessionDep,
                 settings: SettingsDep) -> FileResponse:
    release = session.get(Release, version)
    if release is None or release.withdrawn_at is not None:
        raise HTTPException(404, f"no release {version}" if release is None else f"release {version} was withdrawn")
    row = session.get(ReleaseFile, (version, name))
    if row is None:
        raise HTTPException(404, f"release {version} has no file {name}")
    path = store_path(settings.release_store_dir, row.sha256)
    if not path.is_file():
        _LOGGER.error("release %s file %s is missing from the store (%s)", version, name, path)
        raise HTTPException(503, f"{name} is missing from the release store")
    _LOGGER.debug("serving %s/%s to %s", version, name, device.id)
    return FileResponse(path, media_type="application/octet-stream", filename=name,
                        headers={"Cache-Control": "private, no-store"})
