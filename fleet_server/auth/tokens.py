"""Bearer tokens: 256 random bits, shown once, kept only as a SHA-256 hash.

A fast hash is right here (unlike passwords): the token is random and long, so
there is nothing to guess from its hash, and every API call checks one.
"""

from __future__ import annotations

import hashlib
import secrets

TOKEN_PREFIX = "plt_"


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
