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

from fleet_server.cli.common import ConfigOption, settings_or_exit
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.errors import SubscriptionInvalid
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
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        session.commit()
        typer.echo(f"subscription {row.id}: {row.email} gets {'station ' + station if station else 'group ' + str(group)}"
                   f" in {row.language}")


@report_app.command("list")
def list_(config: ConfigOption = None) -> None:
    """Every subscription, with its last sending."""
    with _database(config) as (_settings, factory), factory() as session:
        rows = report_mail.list_subscriptions(session)
        last = report_mail.last_deliveries(session, [r.id for r in rows])
        for r in rows:
            d = last.get(r.id)
            sent = ("never" if d is None else f"{d.month:%Y-%m} sent {d.delivered_at:%Y-%m-%d %H:%M}Z" if d.delivered_at
                    else f"{d.month:%Y-%m} not sent ({d.attempts} attempts) {d.last_error}".rstrip())
            scope = f"station {r.station_id}" if r.station_id else f"group {r.group_id}"
            typer.echo(f"{r.id}\t{r.email}\t{scope}\t{r.language}\t{sent}")


@report_app.command("unsubscribe")
def unsubscribe(subscription_id: Annotated[int, typer.Argument(help="the id `report list` prints")],
                config: ConfigOption = None) -> None:
    """Stop one subscription."""
    with _database(config) as (_settings, factory), factory() as session:
        if not report_mail.remove_subscription(session, subscription_id):
            typer.echo(f"error: no subscription {subscription_id} (see `palaute-server report list`)", err=True)
            raise typer.Exit(1)
        session.commit()
        typer.echo(f"subscription {subscription_id} removed")


@report_app.command("send")
def send(config: ConfigOption = None) -> None:
    """Send the reports that are due now (what the fleet loop does each pass)."""
    with _database(config) as (settings, factory):
        if not settings.smtp_host:
            typer.echo("error: no SMTP server: set PALAUTE_SMTP_HOST", err=True)
            raise typer.Exit(2)
        typer.echo(f"{report_mail.run_once(factory, settings)} report(s) sent")
