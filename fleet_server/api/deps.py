"""Dependencies the API routers share, as ``Annotated`` aliases.

The app keeps its engine-bound ``sessionmaker`` and ``Settings`` on
``app.state`` (see fleet_server.app); routes ask for them through these aliases
rather than importing globals, so tests build apps on any database.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from fleet_server.auth.deps import db_session
from fleet_server.core.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SessionDep = Annotated[Session, Depends(db_session)]
"""The same dependency as the sign-in check's, so a request takes one session and one connection."""
SettingsDep = Annotated[Settings, Depends(get_settings)]

# Who is asking and what they may do (fleet_server.auth.deps): every route uses one of these.
from fleet_server.auth.deps import (  # noqa: F401
    Admin,
    AnswerExporter,
    ApiPrincipal,
    Coordinator,
    CsrfChecked,
    DeviceReader,
    ItUser,
    PageAdmin,
    PageCoordinator,
    PageDeviceReader,
    PageResultsReader,
    PageUser,
    ResultsReader,
    ensure_station_devices,
    ensure_station_results,
    role_refused,
)
