"""The web survey's abuse limits, counted in the database (every server process sees the same).

Two counters per clock hour: one per client address (``addr:`` + a keyed hash: the address itself
is never stored) and one per station. An answer is taken only while both are under their limit.
Rows older than two hours are deleted as new ones come, so the table stays a few rows per station.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.orm import Session

from fleet_server.ingest.store import _dialect_insert
from fleet_server.models import WebAnswerLimit


def address_key(secret: str, address: str) -> str:
    return "addr:" + hmac.new(secret.encode(), address.encode(), hashlib.sha256).hexdigest()[:32]


def _bump(session: Session, key: str, window: datetime) -> int:
    table = WebAnswerLimit.__table__
    stmt = _dialect_insert(session, table).values(key=key, window_start=window, n=1)
    stmt = stmt.on_conflict_do_update(index_elements=["key", "window_start"], set_={"n": table.c.n + 1})
    return int(session.execute(stmt.returning(table.c.n)).scalar_one())


def take(session: Session, *, address_key_: str, station_id: str, now: datetime,
         per_address: int, per_station: int) -> str | None:
    """Count one web answer; None when it may be stored, else which limit it hit ("address" | "station").
    The caller commits (a refused answer still counts: a flood does not get cheaper)."""
    window = now.replace(minute=0, second=0, microsecond=0)
    session.execute(delete(WebAnswerLimit).where(WebAnswerLimit.window_start < window - timedelta(hours=2)))
    if _bump(session, address_key_, window) > per_address:
        return "address"
    if _bump(session, f"station:{station_id}", window) > per_station:
        return "station"
    return None
