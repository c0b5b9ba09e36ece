"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106 low-memory profile)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from fleet_server.core.errors import WeakPasswordError
from fleet_server.core.i18n import gettext as _

MIN_PASSWORD_LENGTH = 10

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("palaute-timing-equaliser")


def check_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(_("the password has {n} characters; use at least {minimum}").format(
            n=len(password), minimum=MIN_PASSWORD_LENGTH))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if ``password`` matches; with no stored hash (unknown user) it still spends
    the same time, so response times do not tell which user names exist."""
    try:
        return _HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    return _HASHER.check_needs_rehash(stored_hash)
