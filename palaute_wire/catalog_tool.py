"""Gettext catalogues kept in step with the code: update, compile, check (the kiosk's and the dashboard's).

Each side says where its texts are (an ``extract`` function giving a template catalogue), its
domain, locale folder and languages; this module does the rest with Babel, the same way for both:

    python -m kiosk.i18n.catalog update|compile|check
    python -m fleet_server.devtools.catalog update|compile|check

``update`` merges new texts into every .po (English filled in from the ids, existing translations
kept, obsolete ones dropped); ``compile`` writes the .mo files (both are committed); ``check`` lists
everything that would show a reader an untranslated or outdated text, which the tests assert is empty.
"""

from __future__ import annotations

import io
import itertools
import logging
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

_LOGGER = logging.getLogger(__name__)

FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)
"""Headers carry a fixed date, so an unchanged catalogue is byte for byte the same file."""
PLACEHOLDER = re.compile(r"%\(\w+\)s|{\w*}")

MessageId = str | tuple[str, ...] | list[str]
Location = tuple[str, int]


def add_message(template: Catalog, message: object, location: Location) -> None:
    """Add an extracted text (a plural's forms as a tuple) unless it is empty."""
    if isinstance(message, str) and message:
        template.add(message, locations=[location])
    elif isinstance(message, tuple) and message and isinstance(message[0], str) and message[0]:
        template.add(tuple(str(form) for form in message), locations=[location])


def compiled(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    return buffer.getvalue()


def _strings(message: Message) -> list[str]:
    value = message.string
    return [str(s) for s in value] if isinstance(value, (tuple, list)) else [str(value or "")]


def _singular(msgid: MessageId) -> str:
    return msgid[0] if isinstance(msgid, (tuple, list)) else msgid


def _sources(msgid: MessageId) -> Iterator[str]:
    """What each form translates: the singular, then the plural for every other form (fi, sv, en:
    form 0 is one, form 1 the rest), so a form may drop what only the other one says."""
    if not isinstance(msgid, (tuple, list)):
        yield from itertools.repeat(msgid)
        return
    yield msgid[0]
    yield from itertools.repeat(msgid[1])


def _no_problems() -> list[str]:
    return []


@dataclass(frozen=True)
class CatalogTool:
    """One side's catalogues: where they live, how their texts are found, the command that updates them."""

    domain: str
    locale_dir: Path
    languages: Sequence[str]
    extract: Callable[[], Catalog]
    command: str
    """How a person runs this tool, e.g. ``python -m kiosk.i18n.catalog`` (named in the problems)."""
    extra_problems: Callable[[], list[str]] = field(default=_no_problems)
    """Side-specific findings added to ``problems()`` (the kiosk's texts outside the catalogue)."""

    def po_path(self, lang: str) -> Path:
        return self.locale_dir / lang / "LC_MESSAGES" / f"{self.domain}.po"

    def read_catalog(self, lang: str) -> Catalog:
        with self.po_path(lang).open("rb") as handle:
            return read_po(handle, locale=lang, domain=self.domain)

    def update(self) -> None:
        """Merge the extracted texts into every language's .po (kept: existing translations)."""
        template = self.extract()
        for lang in self.languages:
            path = self.po_path(lang)
            if path.exists():
                catalog = self.read_catalog(lang)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                catalog = Catalog(locale=lang, domain=self.domain, creation_date=FIXED_DATE)
            catalog.update(template, no_fuzzy_matching=True)
            catalog.obsolete.clear()
            if lang == "en":
                for message in catalog:
                    if message.id and not any(_strings(message)):
                        message.string = message.id
            catalog.project, catalog.version = "palaute", "1"
            catalog.revision_date = FIXED_DATE
            catalog.fuzzy = False  # the header is reviewed with the texts
            with path.open("wb") as handle:
                write_po(handle, catalog, width=88, include_lineno=False, sort_output=False)
            _LOGGER.info("updated %s", path)

    def compile_all(self) -> None:
        for lang in self.languages:
            mo = self.po_path(lang).with_suffix(".mo")
            mo.write_bytes(compiled(self.read_catalog(lang)))
            _LOGGER.info("compiled %s", mo)

    def problems(self) -> list[str]:
        """Everything that would show a reader an untranslated or outdated text."""
        found = list(self.extra_problems())
        wanted = [m.id for m in self.extract() if m.id]
        for lang in self.languages:
            path = self.po_path(lang)
            if not path.exists():
                found.append(f"{path}: missing; run `{self.command} update`")
                continue
            catalog = self.read_catalog(lang)
            for msgid in sorted(wanted, key=str):
                singular = _singular(msgid)
                message = catalog.get(singular)
                if message is None:
                    found.append(f"{lang}: {singular!r} is not in {path.name}; run `{self.command} update`")
                elif not all(_strings(message)) or message.fuzzy:
                    found.append(f"{lang}: {singular!r} has no (or only a fuzzy) translation")
                elif "%(num)d" not in singular and any(
                        set(PLACEHOLDER.findall(source)) != set(PLACEHOLDER.findall(said))
                        for source, said in zip(_sources(msgid), _strings(message), strict=False)):
                    found.append(f"{lang}: {singular!r} translation changes the placeholders")
            mo = path.with_suffix(".mo")
            if not mo.exists() or mo.read_bytes() != compiled(catalog):
                found.append(f"{mo}: stale or missing; run `{self.command} compile`")
        return found

    def main(self, argv: list[str] | None = None) -> int:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        verb = (argv if argv is not None else sys.argv[1:] or ["check"])[0]
        if verb == "update":
            self.update()
        elif verb == "compile":
            self.compile_all()
        elif verb == "check":
            issues = self.problems()
            for line in issues:
                print(line)
            return 1 if issues else 0
        else:
            print(f"usage: {self.command} update|compile|check", file=sys.stderr)
            return 2
        return 0
