"""Keep the dashboard's gettext catalogues in step with the code: extract, update, compile, check.

    python -m fleet_server.devtools.catalog update    # new texts into every .po (English filled in)
    python -m fleet_server.devtools.catalog compile   # .po -> .mo (commit both)
    python -m fleet_server.devtools.catalog check     # what tests/server/test_dashboard_i18n.py asserts

Texts are ``_()`` / ``ngettext()`` calls in the Jinja templates (Jinja's own Babel extractor,
templates in subfolders too) and ``_()`` / ``N_()`` / ``gettext()`` calls in the Python modules
listed in SOURCES; the .po/.mo work is the kiosk's too (palaute_wire.catalog_tool).
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from jinja2.ext import babel_extract

from fleet_server.core.i18n import DOMAIN, LANGUAGES, LOCALE_DIR
from palaute_wire.catalog_tool import FIXED_DATE, CatalogTool, add_message

SERVER_DIR = Path(__file__).resolve().parent.parent
TEMPLATES = ("web/templates/**/*.html",)
SOURCES = ("web/*.py", "channels/web_survey.py", "results/figures.py", "results/exports.py", "results/monthly_report.py",
           "results/public.py", "auth/setup.py", "auth/routes.py", "auth/deps.py", "auth/service.py", "auth/passwords.py",
           "fleet/alerts.py", "fleet/device_health.py", "fleet/gap_words.py", "fleet/gaps.py", "fleet/report_mail.py",
           "fleet/provisioning.py", "fleet/broker_accounts.py", "fleet/releases.py", "fleet/rollouts.py",
           "core/i18n.py", "devtools/demo.py", "cli/*.py")
"""Globs under fleet_server/ whose texts a dashboard user reads (and the consoles': the demo's, IT's
``palaute-server``)."""

_KEYWORDS = {"_": None, "N_": None, "NN_": (1, 2), "gettext": None, "ngettext": (1, 2)}


def extract(root: Path = SERVER_DIR) -> Catalog:
    """Every dashboard text in the templates and sources, as a template catalogue."""
    template = Catalog(domain=DOMAIN, creation_date=FIXED_DATE)
    for pattern in TEMPLATES:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root).as_posix()
            for lineno, message, _comments, _context in extract_from_file(
                babel_extract,  # type: ignore[arg-type]  # jinja2's extractor, typed before babel's stubs
                str(path), keywords=_KEYWORDS, options={"extensions": "jinja2.ext.i18n"},
            ):
                add_message(template, message, (rel, lineno))
    for pattern in SOURCES:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root).as_posix()
            for lineno, message, _comments, _context in extract_from_file("python", str(path), keywords=_KEYWORDS):
                add_message(template, message, (rel, lineno))
    return template


TOOL = CatalogTool(domain=DOMAIN, locale_dir=LOCALE_DIR, languages=LANGUAGES, extract=extract,
                   command="python -m fleet_server.devtools.catalog")
po_path, read_catalog, update, compile_all, problems, main = (
    TOOL.po_path, TOOL.read_catalog, TOOL.update, TOOL.compile_all, TOOL.problems, TOOL.main)


if __name__ == "__main__":
    sys.exit(main())
