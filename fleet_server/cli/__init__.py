"""``palaute-server``: the fleet server's command line (typer).

One module per command group (server: serve, migrate, demo; fleet: station,
device, broker, alerts; users: user, token; export; imports: import; releases: release, rollout; public; reports: report), joined into one typer app here.
Settings come from fleet_server.core.settings (PALAUTE_* and PALAUTE_CONFIG_FILE);
``--config`` names the file explicitly.
"""

from __future__ import annotations

import os

import typer

from fleet_server.cli import export, fleet, imports, public, releases, reports, server, users
from fleet_server.core import i18n

app = typer.Typer(
    name="palaute-server",
    help="Palaute fleet server: MQTT ingest, results API and dashboard.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _language(ctx: typer.Context) -> None:
    # Every command's output in the reader's language (i18n.console_lang), for this invocation only.
    token = i18n.current_lang.set(i18n.console_lang(os.environ))
    ctx.call_on_close(lambda: i18n.current_lang.reset(token))


server.register(app)  # serve, migrate, demo
fleet.register(app)  # station, device, broker, alerts
app.add_typer(users.user_app, name="user")
app.add_typer(users.token_app, name="token")
app.add_typer(export.export_app, name="export")
app.add_typer(imports.import_app, name="import")
app.add_typer(releases.release_app, name="release")
app.add_typer(releases.rollout_app, name="rollout")
app.add_typer(public.public_app, name="public")
app.add_typer(reports.report_app, name="report")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
