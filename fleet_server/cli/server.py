"""``palaute-server serve | migrate | demo``: run the service, migrate its database, run the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fleet_server.cli.common import ConfigOption, settings_or_exit, setup_logging
from fleet_server.core import i18n


def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="HTTP address (PALAUTE_HTTP_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="HTTP port (PALAUTE_HTTP_PORT)")] = None,
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="serve the API only, no MQTT consumer")] = False,
) -> None:
    """Run the HTTP API and the MQTT ingest together; pending migrations are applied first."""
    import uvicorn

    from fleet_server.app import create_app
    from fleet_server.core.settings import SettingsError

    settings = settings_or_exit(config, http_host=host, http_port=port)
    setup_logging(settings.log_level)
    try:
        application = create_app(settings, start_ingest=not no_ingest)
    except SettingsError as exc:  # e.g. no PALAUTE_SESSION_SECRET in production: one line, no traceback
        typer.echo(f"palaute-server: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run(
        application,
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
    )


def migrate(config: ConfigOption = None) -> None:
    """Apply pending database migrations (alembic upgrade head) and exit."""
    from fleet_server.core.db import migrate as run_migrations

    settings = settings_or_exit(config)
    setup_logging(settings.log_level)
    run_migrations(settings.database_url)
    typer.echo(i18n.gettext("database is up to date"))


def demo(
    port: Annotated[int, typer.Option(help="dashboard/API port on 127.0.0.1")] = 8000,
    rate: Annotated[float, typer.Option(help="presses per minute per kiosk")] = 20.0,
    stations: Annotated[int, typer.Option(min=1, max=8, help="how many of the 8 sample stations")] = 8,
    kiosks_per_station: Annotated[int, typer.Option(min=1, max=10)] = 1,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds (default: Ctrl-C)")] = None,
    workdir: Annotated[Path, typer.Option(help="data, configs and logs of the demo")] = Path("var/demo"),
    fresh: Annotated[bool, typer.Option("--fresh", help="start from an empty database")] = False,
    lang: Annotated[str | None, typer.Option(
        help="the console's language: fi, sv or en (default: PALAUTE_LANG, else the locale's, else en)")] = None,
) -> None:
    """Run broker + fleet server + simulated kiosks at the sample stations; Ctrl-C stops all."""
    from fleet_server.core.i18n import LANGUAGES
    from fleet_server.devtools.demo import DemoOptions, run

    if lang is not None and lang not in LANGUAGES:
        raise typer.BadParameter(f"{lang!r}: one of {', '.join(LANGUAGES)}", param_hint="--lang")
    setup_logging("WARNING")
    raise typer.Exit(
        run(
            DemoOptions(
                workdir=workdir, http_port=port, presses_per_minute=rate, kiosks_per_station=kiosks_per_station,
                stations=stations, duration_s=duration, fresh=fresh, lang=lang or i18n.lang(),
            )
        )
    )


def register(app: typer.Typer) -> None:
    app.command()(serve)
    app.command()(migrate)
    app.command()(demo)
