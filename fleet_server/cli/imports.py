"""``palaute-server import answers FILE.csv``: phone or SMS survey answers from a file
(fleet_server.channels.csv_import; the format is in docs/api.md "Importing answers")."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer

from fleet_server.channels.csv_import import BadCsv, count_rows, import_csv
from fleet_server.cli.common import echo_error
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.i18n import gettext as _
from fleet_server.core.settings import SettingsError, load_settings

import_app = typer.Typer(help="Import answers that came in another channel (phone, SMS).", no_args_is_help=True)


@import_app.command("answers")
def answers(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="the CSV file")],
    errors: Annotated[Path | None, typer.Option("--errors", help="also write the refused rows' report here (CSV)")] = None,
) -> None:
    """Store the answers of FILE.csv; each refused row is reported by line and reason. Exit 1 if any was refused."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        echo_error(str(exc))
        raise typer.Exit(2) from None
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        total = count_rows(file)
        with typer.progressbar(length=total, label=_("importing {file}").format(file=file.name), file=sys.stderr) as bar:
            report = import_csv(make_session_factory(engine), file, progress=bar.update)
    except BadCsv as exc:
        echo_error(f"{file}: {exc}")
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    for e in report.errors:
        typer.echo(f"{file.name}:{e.line}: {e.reason}: {e.detail}", err=True)
    if errors is not None:
        with errors.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(["line", "answer_id", "reason", "detail"])
            out.writerows([e.line, e.answer_id or "", e.reason, e.detail] for e in report.errors)
    typer.echo(_("{rows} rows: {stored} stored, {duplicates} already stored, {refused} refused").format(
        rows=report.rows, stored=report.stored, duplicates=report.duplicates, refused=len(report.errors)))
    if report.errors:
        raise typer.Exit(1)
