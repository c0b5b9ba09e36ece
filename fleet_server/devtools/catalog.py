"""Keep the dashboard's gettext catalogues in step with the code: extract, update, compile, check.

    python -m fleet_server.devtools.catalog update    # new texts into every .po (English filled in)
    python -m fleet_server.devtools.catalog compile   # .po -> .mo (commit both)
    python -m fleet_server.devtools.catalog check     # what tests/server/test_dashboard_i18n.py asserts

The same approach as the kiosk's (kiosk/i18n/catalog.py): texts are ``_()`` / ``ngettext()``
calls in the Jinja templates (Jinja's own Babel extractor) and ``_()`` / ``N_()`` /
``gettext()`` calls in the Python modules listed in SOURCES; Babel does the .po/.mo work.
"""

from __future__ import annotations

import io
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from jinja2.ext import babel_extract

from fleet_server.core.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

_LOGGER = logging.getLogger(__name__)

SERVER_DIR = Path(__file__).resolve().parent.parent
TEMPLATES = ("web/templates/*.html",)
SOURCES = ("web/*.py", "channels/web_survey.py", "results/figures.py", "results/exports.py", "auth/setup.py", "auth/routes.py")
"""Globs under fleet_server/ whose texts a dashboard user reads."""

_FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)
_KEYWORDS = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2)}
_PLACEHOLDER = re.compile(r"%\(\w+\)s|{\w*}")


def _add(template: Catalog, message, location) -> None:
    if isinstance(message, tuple):
        if message[0]:
            template.add(message, locations=[location])
    elif isinstance(message, str) and message:
        template.add(message, locations=[location])


def extract(root: Path = SERVER_DIR) -> Catalog:
    """Every dashboard text in the templates and sources, as a template catalogue."""
    template = Catalog(domain=DOMAIN, creation_date=_FIXED_DATE)
    for pattern in TEMPLATES:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root).as_posix()
            for lineno, message, _comments, _context in extract_from_file(
                babel_extract,  # type: ignore[arg-type]  # jinja2's extractor, typed before babel's stubs
                str(path), keywords=_KEYWORDS, options={"extensions": "jinja2.ext.i18n"},
            ):
                _add(template, message, (rel, lineno))
    for pattern in SOURCES:
        for path in sorted(root.glob(pattern)):
            rel = path.relative_to(root).as_posix()
            for lineno, message, _comments, _context in extract_from_file("python", str(path), keywords=_KEYWORDS):
                _add(template, message, (rel, lineno))
    return template


def po_path(lang: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def read_catalog(lang: str, locale_dir: Path = LOCALE_DIR) -> Catalog:
    with po_path(lang, locale_dir).open("rb") as handle:
        return read_po(handle, locale=lang, domain=DOMAIN)


def compiled(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def update(locale_dir: Path = LOCALE_DIR) -> None:
    """Merge the extracted texts into every language's .po (kept: existing translations)."""
    template = extract()
    for lang in LANGUAGES:
        path = po_path(lang, locale_dir)
        if path.exists():
            catalog = read_catalog(lang, locale_dir)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            catalog = Catalog(locale=lang, domain=DOMAIN, creation_date=_FIXED_DATE)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        if lang == "en":
            for message in catalog:
                if message.id and not message.string or message.id and isinstance(message.id, tuple) and not any(message.string or ()):
                    message.string = message.id
        catalog.project, catalog.version = "palaute", "1"
        catalog.revision_date = _FIXED_DATE
        catalog.fuzzy = False
        with path.open("wb") as handle:
            write_po(handle, catalog, width=88, include_lineno=False, sort_output=False)
        _LOGGER.info("updated %s", path)


def compile_all(locale_dir: Path = LOCALE_DIR) -> None:
    for lang in LANGUAGES:
        mo = po_path(lang, locale_dir).with_suffix(".mo")
        mo.write_bytes(compiled(read_catalog(lang, locale_dir)))
        _LOGGER.info("compiled %s", mo)


def _strings(message) -> list[str]:
    value = message.string
    return list(value) if isinstance(value, (tuple, list)) else [value]


def problems(locale_dir: Path = LOCALE_DIR) -> list[str]:
    """Everything that would show a dashboard user an untranslated or outdated text."""
    found: list[str] = []
    wanted = {m.id: m for m in extract() if m.id}
    for lang in LANGUAGES:
        path = po_path(lang, locale_dir)
        if not path.exists():
            found.append(f"{path}: missing; run `python -m fleet_server.devtools.catalog update`")
            continue
        catalog = read_catalog(lang, locale_dir)
        for msgid in sorted(wanted, key=str):
            key = msgid[0] if isinstance(msgid, tuple) else msgid
            message = catalog.get(key)
            singular = msgid[0] if isinstance(msgid, (tuple, list)) else msgid
            if message is None:
                found.append(f"{lang}: {singular!r} is not in {path.name}; run `... catalog update`")
            elif not all(_strings(message)) or message.fuzzy:
                found.append(f"{lang}: {singular!r} has no (or only a fuzzy) translation")
            elif any(set(_PLACEHOLDER.findall(singular)) != set(_PLACEHOLDER.findall(s)) for s in _strings(message)
                     if "%(num)d" not in singular):
                found.append(f"{lang}: {singular!r} translation changes the placeholders")
        mo = path.with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != compiled(catalog):
            found.append(f"{mo}: stale or missing; run `python -m fleet_server.devtools.catalog compile`")
    return found


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    verb = (argv if argv is not None else sys.argv[1:] or ["check"])[0]
    if verb == "update":
        update()
    elif verb == "compile":
        compile_all()
    elif verb == "check":
        issues = problems()
        for line in issues:
            print(line)
        return 1 if issues else 0
    else:
        print("usage: python -m fleet_server.devtools.catalog update|compile|check", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
