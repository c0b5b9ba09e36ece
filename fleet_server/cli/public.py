"""``palaute-server public list|on|off``: which stations' and groups' results pages anyone may read.

The same switch as the dashboard's /public-pages (fleet_server.results.public.set_public). A
running server shows the change within ``PALAUTE_PUBLIC_CACHE_S`` seconds (its cache's life).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.cli.common import ConfigOption, echo_error, settings_or_exit
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.i18n import gettext as _
from fleet_server.models import Station, StationGroup
from fleet_server.results.public import set_public

public_app = typer.Typer(help="Public results pages: list them, turn them on or off.", no_args_is_help=True)

StationsOpt = Annotated[list[str] | None, typer.Option("--station", "-s", help="a station id; repeat for several")]
GroupsOpt = Annotated[list[str] | None, typer.Option("--group", "-g", help="a group id; repeat for several")]


@contextmanager
def _session(config) -> Iterator[Session]:
    settings = settings_or_exit(config)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


@public_app.command("list")
def public_list(config: ConfigOption = None) -> None:
    """Every station and group with its page on or off."""
    with _session(config) as session:
        for group in session.scalars(select(StationGroup).order_by(StationGroup.id)):
            typer.echo(f"{_('group'):<8}{group.id:<32} {_on_off(group.public_page)}  /public/groups/{group.id}")
        for station in session.scalars(select(Station).order_by(Station.id)):
            typer.echo(f"{_('station'):<8}{station.id:<32} {_on_off(station.public_page)}  /public/stations/{station.id}")


def _on_off(on: bool) -> str:
    return _("page open") if on else _("page closed")


def _switch(on: bool, station: list[str] | None, group: list[str] | None, config) -> None:
    if not station and not group:
        echo_error(_("name at least one {options}").format(options="--station, --group"))
        raise typer.Exit(2)
    with _session(config) as session:
        try:
            changed = set_public(session, stations=dict.fromkeys(station or [], on), groups=dict.fromkeys(group or [], on))
        except KeyError as exc:
            echo_error(_("{problem} (the ids: {command})").format(problem=exc.args[0], command="palaute-server public list"))
            raise typer.Exit(1) from None
        session.commit()
    typer.echo("\n".join(changed) if changed else _("Nothing changed."))


@public_app.command("on")
def public_on(station: StationsOpt = None, group: GroupsOpt = None, config: ConfigOption = None) -> None:
    """Open these pages to everyone."""
    _switch(True, station, group, config)


@public_app.command("off")
def public_off(station: StationsOpt = None, group: GroupsOpt = None, config: ConfigOption = None) -> None:
    """Close these pages (they answer 404, as an unknown id does)."""
    _switch(False, station, group, config)
