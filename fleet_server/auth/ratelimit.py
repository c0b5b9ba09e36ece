"""Sign-in rate limiting: failed attempts per user name and per client address, counted apart.

The failures are rows in the database (``login_failures``), so every server process
behind the load balancer counts the same ones. After ``max_failures`` failures within
``window_s`` seconds, further attempts for that name or that address are refused
until the oldest of them ages out; a successful sign-in clears the name's failures
(not the address's: one right password must not reset a spraying address).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from fleet_server.core.clock import utcnow
from fleet_server.models import LoginFailure


class LoginLimiter:
    def __init__(self, max_failures: int, window_s: float, clock: Callable[[], datetime] = utcnow):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock

    def retry_after(self, session: Session, *keys: str) -> float:
        """Seconds until an attempt is allowed for all ``keys`` (0 when allowed now)."""
        now = self._clock()
        window = timedelta(seconds=self.window_s)
        wait = 0.0
        for key in keys:
            recent = session.scalars(
                select(LoginFailure.at).where(LoginFailure.key == key, LoginFailure.at > now - window)
                .order_by(LoginFailure.at.desc()).limit(self.max_failures)
            ).all()
            if len(recent) >= self.max_failures:
                wait = max(wait, (recent[-1] + window - now).total_seconds())
        return wait

    def failed(self, session: Session, *keys: str) -> None:
        """Record a failure under each key, and forget failures past the window; commits."""
        now = self._clock()
        session.execute(insert(LoginFailure), [{"key": key, "at": now} for key in keys])
        session.execute(delete(LoginFailure).where(LoginFailure.at <= now - timedelta(seconds=self.window_s)))
        session.commit()

    def succeeded(self, session: Session, key: str) -> None:
        """Clear ``key``'s failures (the caller commits with the sign-in)."""
        session.execute(delete(LoginFailure).where(LoginFailure.key == key))
