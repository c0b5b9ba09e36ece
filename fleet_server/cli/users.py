"""``palaute-server user ...`` and ``palaute-server token ...`` (typer sub-apps).

Passwords are prompted twice on a terminal, or read from the first line of
standard input when it is not one (``printf '%s\\n' "$PW" | palaute-server user add ...``),
so scripts never put a password on a command line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.auth.passwords import WeakPasswordError
from fleet_server.auth.roles import ROLES
from fleet_server.auth.service import AuthSetupError, add_user, create_token, disable_user, revoke_token, set_password
from fleet_server.cli.common import echo_error
from fleet_server.core import i18n
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.i18n import gettext as _
from fleet_server.core.settings import SettingsError, load_settings
from fleet_server.models import ApiToken, User

user_app = typer.Typer(help="Dashboard users: add, list, change password, disable.", no_args_is_help=True)
token_app = typer.Typer(help="API bearer tokens for scripts and reporting systems.", no_args_is_help=True)

ROLE_HELP = f"one of: {', '.join(ROLES)}"


@contextmanager
def _session() -> Iterator[Session]:
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


@contextmanager
def _changing() -> Iterator[Session]:
    """A session whose work is committed; a refusal (bad name, role, weak password)
    is printed and exits 1 with nothing written."""
    with _session() as session:
        try:
            yield session
            session.commit()
        except (AuthSetupError, WeakPasswordError) as exc:
            _fail(exc)


def _fail(exc: Exception) -> None:
    echo_error(str(exc))
    raise typer.Exit(1)


def _scope(role: str, station: str | None, group: str | None) -> str:
    """A user's or token's role and what it sees: "staff, kalvia", "staff, group kokkola", "it"."""
    where = station or (_("group {group}").format(group=group) if group else "")
    return f"{role}, {where}" if where else role


def _read_password() -> str:
    if sys.stdin.isatty():
        return typer.prompt(_("Password"), hide_input=True, confirmation_prompt=_("Repeat the password"))
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        _fail(ValueError(_("no password on standard input")))
    return line


@user_app.command("add")
def user_add(
    name: str,
    role: str = typer.Option(..., "--role", help=ROLE_HELP),
    station: str | None = typer.Option(None, "--station", help="staff only: the station they work at"),
    group: str | None = typer.Option(
        None, "--group", help="staff only, instead of --station: a group (county, municipality or area); "
        "they see every station under it"),
) -> None:
    """Create a user; the password is prompted (or read from standard input)."""
    password = _read_password()
    with _changing() as session:
        user = add_user(session, name, role, password, station, group)
    typer.echo(_("user {name} added").format(name=user.username) + f" ({_scope(user.role, user.station_id, user.group_id)})")


@user_app.command("list")
def user_list() -> None:
    with _session() as session:
        for u in session.scalars(select(User).order_by(User.username)):
            state = _("active") if u.active else _("disabled")
            where = u.station_id or (f"group:{u.group_id}" if u.group_id else "-")
            typer.echo(f"{u.username}\t{u.role}\t{where}\t{state}")


@user_app.command("passwd")
def user_passwd(name: str) -> None:
    """Set a new password (signs the user out everywhere)."""
    password = _read_password()
    with _changing() as session:
        set_password(session, name, password)
    typer.echo(_("password of {name} changed").format(name=name))


@user_app.command("disable")
def user_disable(name: str) -> None:
    with _changing() as session:
        disable_user(session, name)
    typer.echo(_("user {name} disabled and signed out").format(name=name))


@token_app.command("create")
def token_create(
    name: str,
    role: str = typer.Option(..., "--role", help=ROLE_HELP),
    station: str | None = typer.Option(None, "--station", help="staff tokens only: the station"),
    group: str | None = typer.Option(
        None, "--group", help="staff tokens only, instead of --station: a group (county, municipality or area); "
        "the token sees every station under it"),
) -> None:
    """Create a token and print it once: only its hash is stored."""
    with _changing() as session:
        issued = create_token(session, name, role, station, group)
    typer.echo(issued.token)
    typer.echo(_("token {name} ({scope}) created; it is shown only now. Use: {header}").format(
        name=repr(name), scope=_scope(role, station, group), header="Authorization: Bearer <token>"), err=True)


@token_app.command("list")
def token_list() -> None:
    with _session() as session:
        for t in session.scalars(select(ApiToken).order_by(ApiToken.name)):
            state = _("revoked {day}").format(day=i18n.day(t.revoked_at.date())) if t.revoked_at else _("active")
            used = i18n.moment(t.last_used_at) if t.last_used_at else _("never")
            where = t.station_id or (f"group:{t.group_id}" if t.group_id else "-")
            typer.echo(f"{t.name}\t{t.role}\t{where}\t{t.prefix}…\t{state}\t" + _("last used {moment}").format(moment=used))


@token_app.command("revoke")
def token_revoke(name: str) -> None:
    with _changing() as session:
        revoke_token(session, name)
    typer.echo(_("token {name} revoked").format(name=repr(name)))
