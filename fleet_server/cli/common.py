"""What every command group of ``palaute-server`` shares: the --config option, loading
settings with a one-line error, and logging set-up."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from fleet_server.core.i18n import gettext as _
from fleet_server.core.settings import Settings, SettingsError, load_settings

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML or .env settings file (else PALAUTE_CONFIG_FILE)", exists=False),
]


def settings_or_exit(config: Path | None = None, **overrides: Any) -> Settings:
    """Load settings; on a bad value print which setting is wrong and exit 2."""
    try:
        return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        typer.echo(f"palaute-server: {exc}", err=True)
        raise typer.Exit(2) from None


def echo_error(message: str) -> None:
    """``error: message`` on standard error, the label in the reader's language."""
    typer.echo(_("error:") + f" {message}", err=True)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
