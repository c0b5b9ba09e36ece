"""Creating and changing users and tokens; used by the CLI, the admin page and tests."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.auth.passwords import check_strength, hash_password
from fleet_server.auth.roles import ROLES, Role
from fleet_server.auth.tokens import new_token, token_hash
from fleet_server.core.clock import utcnow
from fleet_server.core.errors import AuthSetupError
from fleet_server.core.i18n import gettext as _
from fleet_server.models import ApiToken, Station, StationGroup, User

USERNAME_RE = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def _check_role_station(session: Session, role: str, station_id: str | None, group_id: str | None = None) -> Role:
    if role not in ROLES:
        raise AuthSetupError(_("role {role} is not one of: {roles}").format(role=repr(role), roles=", ".join(ROLES)))
    r = Role(role)
    if group_id is not None:
        if r is not Role.STAFF or station_id:
            raise AuthSetupError(_("a group is for staff, instead of a station: give one of them"))
        if session.get(StationGroup, group_id) is None:
            known = ", ".join(session.scalars(select(StationGroup.id).order_by(StationGroup.id))) or _("none yet")
            raise AuthSetupError(_("group {group} does not exist (known: {known})").format(
                group=repr(group_id), known=known))
        return r
    if r is Role.STAFF and not station_id:
        raise AuthSetupError(_("staff see one station's results: give a station (or a group)"))
    if r is not Role.STAFF and station_id:
        raise AuthSetupError(_("a station is only for staff; the role {role} is not tied to a station").format(role=role))
    if station_id and session.get(Station, station_id) is None:
        known = ", ".join(session.scalars(select(Station.id).order_by(Station.id))) or _("none yet")
        raise AuthSetupError(_("station {station} does not exist (known: {known})").format(
            station=repr(station_id), known=known))
    return r


def add_user(session: Session, username: str, role: str, password: str, station_id: str | None = None,
             group_id: str | None = None) -> User:
    """A new user; staff get one station or a group (every station under it)."""
    if not USERNAME_RE.match(username):
        raise AuthSetupError(_("user name {name}: use 1-64 letters, digits, . _ @ -").format(name=repr(username)))
    if role == Role.IMPORT:
        raise AuthSetupError(_("the import role is for API tokens ({command}), not for people").format(
            command="palaute-server token create NAME --role import"))
    _check_role_station(session, role, station_id, group_id)
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise AuthSetupError(_("user {name} already exists").format(name=repr(username)))
    check_strength(password)
    user = User(username=username, role=role, station_id=station_id, group_id=group_id,
                password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AuthSetupError(_("no user {name}").format(name=repr(username)))
    check_strength(password)
    user.password_hash = hash_password(password)
    user.session_epoch += 1
    return user


def disable_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AuthSetupError(_("no user {name}").format(name=repr(username)))
    user.active = False
    user.session_epoch += 1
    return user


@dataclass(frozen=True)
class IssuedToken:
    token: str
    """The secret, shown once."""
    record: ApiToken


def create_token(session: Session, name: str, role: str, station_id: str | None = None,
                 group_id: str | None = None) -> IssuedToken:
    """A new token; staff tokens get one station or a group (every station under it), as staff users do."""
    if not name or len(name) > 100:
        raise AuthSetupError(_("a token needs a name of 1-100 characters (who or what uses it)"))
    _check_role_station(session, role, station_id, group_id)
    if session.scalar(select(ApiToken).where(ApiToken.name == name)) is not None:
        raise AuthSetupError(_("a token named {name} already exists; revoke it or pick another name").format(
            name=repr(name)))
    token = new_token()
    record = ApiToken(name=name, role=role, station_id=station_id, group_id=group_id, token_hash=token_hash(token),
                      prefix=token[:10])
    session.add(record)
    session.flush()
    return IssuedToken(token, record)


def revoke_token(session: Session, name: str) -> ApiToken:
    record = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if record is None:
        raise AuthSetupError(_("no token named {name}").format(name=repr(name)))
    if record.revoked_at is None:
        record.revoked_at = utcnow()
    return record
