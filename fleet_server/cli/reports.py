"""``palaute-server report ...``: who gets the monthly report by e-mail, and sending what is due.

The same rules as the dashboard's Monthly reports page (fleet_server.fleet.report_mail); the
fleet loop sends on the 1st by itself, ``report send`` runs one pass now (e.g. after fixing the
SMTP settings).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from fleet_server.cli.common import ConfigOption, echo_error, settings_or_exit
from fleet_server.core import i18n
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.errors import SubscriptionInvalid
from fleet_server.core.i18n import gettext as _
from fleet_server.core.i18n import ngettext
from fleet_server.core.settings import Settings
from fleet_server.fleet import report_mail

report_app = typer.Typer(help="Monthly reports by e-mail: subscribe, list, unsubscribe, send.", no_args_is_help=True)


@contextmanager
def _database(config: Path | None) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    settings = settings_or_exit(config)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        yield settings, make_session_factory(engine)
    finally:
        engine.dispose()


def _scope(station: str | None, group: str | None) -> str:
    return _("station {id}").format(id=station) if station else _("group {id}").format(id=group)


@report_app.command("subscribe")
def subscribe(
    email: Annotated[str, typer.Argument(help="the address that gets the PDF")],
    station: Annotated[str | None, typer.Option("--station", help="a station's report")] = None,
    group: Annotated[str | None, typer.Option("--group", help="a group's report (county, municipality, area)")] = None,
    lang: Annotated[str, typer.Option("--lang", help="fi, sv or en")] = "fi",
    config: ConfigOption = None,
) -> None:
    """Send EMAIL the monthly report of one station or group on the 1st of each month."""
    with _database(config) as (_settings, factory), factory() as session:
        try:
            row = report_mail.add_subscription(session, email, lang, station_id=station, group_id=group,
                                               created_by="cli")
        except SubscriptionInvalid as exc:
            echo_error(str(exc))
            raise typer.Exit(1) from None
        session.commit()
        typer.echo(_("subscription {id}: {email} gets the report of {scope} in {lang}").format(
            id=row.id, email=row.email, scope=_scope(station, group), lang=row.language))


@report_app.command("list")
def list_(config: ConfigOption = None) -> None:
    """Every subscription, with its last sending."""
    with _database(config) as (_settings, factory), factory() as session:
        rows = report_mail.list_subscriptions(session)
        last = report_mail.last_deliveries(session, [r.id for r in rows])
        for r in rows:
            d = last.get(r.id)
            if d is None:
                sent = _("never")
            elif d.delivered_at:
                sent = _("{month} sent {moment}").format(month=f"{d.month:%Y-%m}", moment=i18n.moment(d.delivered_at))
            else:
                sent = (ngettext("{month} not sent ({n} attempt)", "{month} not sent ({n} attempts)", d.attempts).format(
                    month=f"{d.month:%Y-%m}", n=d.attempts) + f" {d.last_error or ''}").rstrip()
            typer.echo(f"{r.id}\t{r.email}\t{_scope(r.station_id, r.group_id)}\t{r.language}\t{sent}")


@report_app.command("unsubscribe")
def unsubscribe(subscription_id: Annotated[int, typer.Argument(help="the id `report list` prints")],
                config: ConfigOption = None) -> None:
    """Stop one subscription."""
    with _database(config) as (_settings, factory), factory() as session:
        if not report_mail.remove_subscription(session, subscription_id):
            echo_error(_("no subscription {id} (see: {command})").format(id=subscription_id, command="palaute-server report list"))
            raise typer.Exit(1)
        session.commit()
        typer.echo(_("subscription {id} removed").format(id=subscription_id))


@report_app.command("send")
def send(config: ConfigOption = None) -> None:
    """Send the reports that are due now (what the fleet loop does each pass)."""
    with _database(config) as (settings, factory):
        if not settings.smtp_host:
            echo_error(_("no SMTP server: set {setting}").format(setting="PALAUTE_SMTP_HOST"))
            raise typer.Exit(2)
        sent = report_mail.run_once(factory, settings)
        typer.echo(ngettext("{n} report sent", "{n} reports sent", sent).format(n=sent))
