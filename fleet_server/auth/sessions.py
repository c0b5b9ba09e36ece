"""Session cookies and CSRF tokens.

The cookie holds ``{"u": user id, "e": session epoch, "c": CSRF token}`` signed with
itsdangerous (HMAC-SHA1 over a key derived from the session secret) and a
timestamp checked against ``session_max_age_s``. It is HttpOnly, SameSite=Lax,
and Secure when the request came over https (or always, with
``PALAUTE_COOKIE_SECURE=true`` behind a TLS-terminating proxy that does not say so).
Bumping a user's ``session_epoch`` (password change, disable) ends every session.

CSRF: every form carries the session's token in a hidden ``csrf_token`` field and
the server compares it in constant time; the sign-in form, before any session,
uses a double-submit cookie signed the same way.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "palaute_session"
LOGIN_CSRF_COOKIE = "palaute_login_csrf"


@dataclass(frozen=True)
class SessionData:
    user_id: int
    epoch: int
    csrf: str


class SessionCodec:
    def __init__(self, secret: str, max_age_s: int):
        if len(secret) < 16:
            raise ValueError("the session secret is too short (use at least 32 random characters)")
        self.max_age_s = max_age_s
        self._session = URLSafeTimedSerializer(secret, salt="palaute.session.v1")
        self._login = URLSafeTimedSerializer(secret, salt="palaute.login-csrf.v1")

    def dump(self, user_id: int, epoch: int) -> tuple[str, str]:
        """A new session cookie value and its CSRF token."""
        csrf = secrets.token_urlsafe(24)
        return self._session.dumps({"u": user_id, "e": epoch, "c": csrf}), csrf

    def load(self, cookie: str | None) -> SessionData | None:
        if not cookie:
            return None
        try:
            data = self._session.loads(cookie, max_age=self.max_age_s)
            return SessionData(int(data["u"]), int(data["e"]), str(data["c"]))
        except (BadSignature, KeyError, TypeError, ValueError):
            return None

    def login_csrf(self) -> tuple[str, str]:
        """(cookie value, form value) for the sign-in form."""
        token = secrets.token_urlsafe(24)
        return self._login.dumps(token), token

    def check_login_csrf(self, cookie: str | None, form_value: str | None) -> bool:
        if not cookie or not form_value:
            return False
        try:
            token = self._login.loads(cookie, max_age=3600)
        except BadSignature:
            return False
        return same(str(token), form_value)


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())
