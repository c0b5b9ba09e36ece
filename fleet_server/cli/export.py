"""``palaute-server export daily|events``: the dashboard's exports as files, for scheduled jobs.

The same writers as /api/v1/exports (fleet_server.results.exports), the same small-count
rule for daily figures; events (one row per answer) are for coordinators, so
keep the file inside the county's systems.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from fleet_server.cli.common import echo_error
from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.i18n import gettext as _
from fleet_server.core.i18n import ngettext
from fleet_server.core.settings import SettingsError, load_settings
from fleet_server.results import exports, groups
from fleet_server.results import figures as results

export_app = typer.Typer(help="Daily figures or individual answers as CSV or XLSX.", no_args_is_help=True)

RangeOpt = Annotated[str, typer.Option("--range", help="today | 7d | 30d | custom")]
FromOpt = Annotated[str | None, typer.Option("--from", help="custom: first local day, YYYY-MM-DD")]
ToOpt = Annotated[str | None, typer.Option("--to", help="custom: last local day, YYYY-MM-DD")]
StationOpt = Annotated[list[str] | None, typer.Option("--station", help="repeat for several; default all")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="only the stations under this group (county, "
                                                             "municipality or area); with --station, both must hold")]
FormatOpt = Annotated[str, typer.Option("--format", help="csv or xlsx")]
OutOpt = Annotated[Path | None, typer.Option("--output", "-o", help="file to write (default: standard output, CSV only)")]


def _run(kind: str, range_: str, from_: str | None, to: str | None, station: list[str] | None, fmt: str,
         output: Path | None, group: str | None = None) -> None:
    try:
        settings = load_settings()
        period = results.parse_period(range_, from_, to, results.today_local())
    except (SettingsError, results.BadPeriod) as exc:
        echo_error(str(exc))
        raise typer.Exit(2) from None
    if fmt not in ("csv", "xlsx"):
        echo_error(_("{option} is csv or xlsx").format(option="--format"))
        raise typer.Exit(2)
    if fmt == "xlsx" and output is None:
        echo_error(_("an XLSX export needs {option}").format(option="--output FILE"))
        raise typer.Exit(2)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        factory = make_session_factory(engine)
        with factory() as session:
            known = [s.id for s in results.stations_visible(session)]
        unknown = sorted(set(station or []) - set(known))
        if unknown:
            echo_error(_("no station {ids} (known: {known})").format(ids=", ".join(unknown), known=", ".join(known)))
            raise typer.Exit(1)
        ids = list(station or known)
        if group is not None:
            with factory() as session:
                tree = groups.load_tree(session)
            if group not in tree.groups:
                echo_error(_("no group {id} (known: {known})").format(
                    id=group, known=", ".join(sorted(tree.groups)) or _("none yet")))
                raise typer.Exit(1)
            under = set(tree.under(group))
            ids = [sid for sid in ids if sid in under]
        header: tuple[str, ...]
        if kind == "daily":
            header = exports.DAILY_COLUMNS
            rows = lambda s: exports.daily_table(s, ids, period, settings.min_responses)
        else:
            header = exports.EVENT_COLUMNS
            rows = lambda s: exports.event_rows(s, ids, period)
        chunks = (exports.stream_csv(factory, header, rows) if fmt == "csv"
                  else exports.stream_xlsx(factory, f"palaute-{kind}", header, rows))
        with open(output, "wb") if output else contextlib.nullcontext(sys.stdout.buffer) as out:
            for chunk in chunks:
                out.write(chunk)
        if output:
            typer.echo(ngettext("wrote {path} ({kind}, {first} – {last}, {n} station)",
                                "wrote {path} ({kind}, {first} – {last}, {n} stations)", len(ids)).format(
                path=output, kind=kind, first=period.first, last=period.last, n=len(ids)), err=True)
    finally:
        engine.dispose()


@export_app.command("daily")
def export_daily(range_: RangeOpt = "7d", from_: FromOpt = None, to: ToOpt = None, station: StationOpt = None,
                 fmt: FormatOpt = "csv", output: OutOpt = None, group: GroupOpt = None) -> None:
    """Per-station daily figures (small-count rule applied)."""
    _run("daily", range_, from_, to, station, fmt, output, group)


@export_app.command("events")
def export_events(range_: RangeOpt = "7d", from_: FromOpt = None, to: ToOpt = None, station: StationOpt = None,
                  fmt: FormatOpt = "csv", output: OutOpt = None, group: GroupOpt = None) -> None:
    """One row per answer (individual answers: keep the file inside the county)."""
    _run("events", range_, from_, to, station, fmt, output, group)
