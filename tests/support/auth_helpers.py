"""Helpers for tests that sign in: users, tokens, and a TestClient session for a role."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fleet_server.auth.service import add_user, create_token
from fleet_server.models import Station

PASSWORD = "correct horse battery"


def ensure_station(session: Session, station_id: str, name: str | None = None) -> None:
    if session.get(Station, station_id) is None:
        session.add(Station(id=station_id, name=name or station_id.title()))
        session.flush()


def make_user(session_factory, username: str, role: str, station_id: str | None = None) -> None:
    with session_factory() as session:
        if station_id:
            ensure_station(session, station_id)
        add_user(session, username, role, PASSWORD, station_id)
        session.commit()


def make_token(session_factory, name: str, role: str, station_id: str | None = None) -> str:
    with session_factory() as session:
        if station_id:
            ensure_station(session, station_id)
        issued = create_token(session, name, role, station_id)
        session.commit()
        return issued.token


def login_csrf(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD, next_url: str = "/"):
    token = login_csrf(client)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token, "next": next_url},
        follow_redirects=False,
    )


def page_csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def bearer(client: TestClient, role: str, station_id: str | None = None, name: str | None = None) -> dict[str, str]:
    """Authorization headers of a fresh API token with ``role`` on ``client``'s app."""
    token = make_token(client.app.state.session_factory, name or f"test-{role}-{station_id or 'all'}", role, station_id)
    return {"Authorization": f"Bearer {token}"}
