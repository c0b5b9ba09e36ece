"""What /healthz answers: can this server take in answers right now, and if not, why.

A load balancer or monitor reads the status code; a person reads the body.

- 503 ``failing`` when this server cannot do its job, so traffic must go elsewhere:
  the database is unreachable, the database refuses writes (disk full, read-only,
  out of space for WAL: tried with a committed one-row update per check), or the
  ingest is stalled (its writer has held one batch for ``healthz_stall_s`` without
  getting it committed, or the writer thread is gone while messages wait).
- 200 ``degraded`` when it is working but something is off that heals by itself:
  the broker connection is down (the broker keeps the ingest's messages meanwhile).
- 200 ``ok`` otherwise. The body always carries the ingest's counters and backlog.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.engine import Engine

from fleet_server.core.clock import utcnow
from fleet_server.models import HealthProbe

_LOGGER = logging.getLogger(__name__)

PROBE_NAME = socket.gethostname()[:40]


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first[:200]}"


def database_state(engine: Engine) -> tuple[str, str]:
    """(reachable, writable): each "ok" or "error: <what>"."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        _LOGGER.warning("health check: database unreachable: %s", exc)
        return f"error: {_short(exc)}", "unknown"
    try:
        with engine.begin() as conn:
            table = HealthProbe.__table__
            done = conn.execute(update(table).where(table.c.name == PROBE_NAME).values(checked_at=utcnow()))
            if done.rowcount == 0:
                conn.execute(table.insert().values(name=PROBE_NAME, checked_at=utcnow()))
    except Exception as exc:  # noqa: BLE001
        _LOGGER.error("health check: the database refuses writes: %s", exc)
        return "ok", f"error: {_short(exc)}"
    return "ok", "ok"


def ingest_state(ingestor: Any, stall_s: float, now: float | None = None) -> dict[str, Any]:
    """The ingest's counters, backlog and a verdict: ok | idle | stalled."""
    now = time.monotonic() if now is None else now
    backlog = ingestor.backlog
    out: dict[str, Any] = {**ingestor.counters.snapshot(), "backlog": backlog}
    out["last_commit_s_ago"] = None if ingestor.last_commit_at is None else round(now - ingestor.last_commit_at, 1)
    if ingestor.failing_since is not None:
        out["failing_for_s"] = round(now - ingestor.failing_since, 1)
        out["last_db_error"] = ingestor.last_db_error
    # Stalled: the writer has held one batch for too long (commits failing), or its thread is gone.
    writing = ingestor.writing_since
    stalled = backlog > 0 and ((writing is not None and now - writing > stall_s) or not ingestor.writer_alive)
    out["state"] = "stalled" if stalled else ("ok" if backlog or ingestor.last_commit_at else "idle")
    return out


def health(state: Any, stall_s: float) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) for /healthz from the app's state."""
    body: dict[str, Any] = {"status": "ok"}
    reachable, writable = database_state(state.engine)
    body["database"] = reachable
    body["database_writable"] = writable
    problems: list[str] = []
    if reachable != "ok":
        problems.append("database unreachable")
    elif writable != "ok":
        problems.append("database not writable")
    loop = getattr(state, "fleet_loop", None)
    if loop is not None and loop.leadership is not None:
        body["fleet_loop"] = "leader" if loop.leading else "standby"
    ingestor = getattr(state, "ingestor", None)
    if ingestor is None:
        body["mqtt"] = "disabled"
    else:
        standby = getattr(ingestor, "role", "active") == "standby"
        body["mqtt"] = "standby" if standby else ("connected" if ingestor.connected else "disconnected")
        body["ingest"] = ingest_state(ingestor, stall_s)
        if getattr(ingestor, "fatal_error", None):
            problems.append(ingestor.fatal_error)
        if body["ingest"]["state"] == "stalled":
            problems.append(f"ingest stalled: {body['ingest']['backlog']} messages waiting, "
                            f"nothing committed for over {stall_s:.0f} s")
    if problems:
        body["status"] = "failing"
        body["problems"] = problems
    elif ingestor is not None and not ingestor.connected and body["mqtt"] != "standby":
        body["status"] = "degraded"
    return (503 if problems else 200), body
