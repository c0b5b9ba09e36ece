"""``palaute-server``: the fleet server's command line (typer).

Subcommands live next to their feature and are added here with
``app.command()`` or ``app.add_typer()`` (user, token, station, device, export...).
Settings come from fleet_server.settings (PALAUTE_* and PALAUTE_CONFIG_FILE);
``--config`` names the file explicitly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from fleet_server.settings import Settings, SettingsError, load_settings

app = typer.Typer(
    name="palaute-server",
    help="Palaute fleet server: MQTT ingest, results API and dashboard.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOption = Annotated[
    Optional[Path],
    typer.Option("--config", "-c", help="TOML or .env settings file (else PALAUTE_CONFIG_FILE)", exists=False),
]


def settings_or_exit(config: Path | None = None, **overrides: object) -> Settings:
    """Load settings; on a bad value print which setting is wrong and exit 2."""
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(f"palaute-server: {exc}", err=True)
        raise typer.Exit(2) from None


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[Optional[str], typer.Option(help="HTTP address (PALAUTE_HTTP_HOST)")] = None,
    port: Annotated[Optional[int], typer.Option(help="HTTP port (PALAUTE_HTTP_PORT)")] = None,
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="serve the API only, no MQTT consumer")] = False,
) -> None:
    """Run the HTTP API and the MQTT ingest together; pending migrations are applied first."""
    import uvicorn

    from fleet_server.app import create_app

    settings = settings_or_exit(config, http_host=host, http_port=port)
    setup_logging(settings.log_level)
    uvicorn.run(
        create_app(settings, start_ingest=not no_ingest),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
    )


@app.command()
def migrate(config: ConfigOption = None) -> None:
    """Apply pending database migrations (alembic upgrade head) and exit."""
    from fleet_server.db import migrate as run_migrations

    settings = settings_or_exit(config)
    setup_logging(settings.log_level)
    run_migrations(settings.database_url)
    typer.echo("database is up to date")


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="dashboard/API port on 127.0.0.1")] = 8000,
    rate: Annotated[float, typer.Option(help="presses per minute per kiosk")] = 20.0,
    stations: Annotated[int, typer.Option(min=1, max=8, help="how many of the 8 sample stations")] = 8,
    kiosks_per_station: Annotated[int, typer.Option(min=1, max=10)] = 1,
    duration: Annotated[Optional[float], typer.Option(help="stop after this many seconds (default: Ctrl-C)")] = None,
    workdir: Annotated[Path, typer.Option(help="data, configs and logs of the demo")] = Path("var/demo"),
    fresh: Annotated[bool, typer.Option("--fresh", help="start from an empty database")] = False,
) -> None:
    """Run broker + fleet server + simulated kiosks at the sample stations; Ctrl-C stops all."""
    from fleet_server.demo import DemoOptions, run

    setup_logging("WARNING")
    raise typer.Exit(
        run(
            DemoOptions(
                workdir=workdir, http_port=port, presses_per_minute=rate, kiosks_per_station=kiosks_per_station,
                stations=stations, duration_s=duration, fresh=fresh,
            )
        )
    )


from fleet_server.fleet_cli import register as _register_fleet_commands  # noqa: E402

_register_fleet_commands(app)  # station, device, broker


def main() -> None:
    app()


if __name__ == "__main__":
    main()

from fleet_server.auth.cli import token_app as _token_app, user_app as _user_app  # noqa: E402

app.add_typer(_user_app, name="user")
app.add_typer(_token_app, name="token")

from fleet_server.export_cli import export_app as _export_app  # noqa: E402

app.add_typer(_export_app, name="export")
