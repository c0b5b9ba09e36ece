"""The dashboard in Finnish, Swedish and English: gettext catalogues and Babel formats.

Catalogues: fleet_server/locale/<lang>/LC_MESSAGES/dashboard.po (edited by people) and
dashboard.mo (compiled, committed, loaded here); message ids are the English texts.
``python -m fleet_server.devtools.catalog update|compile|check`` keeps them in step with the
templates and modules; tests/server/test_dashboard_i18n.py fails on a missing or stale one.

The language of one request is in a context variable (``current_lang``), set by the
middleware from, in order: the ``palaute_lang`` cookie (written when a person picks a
language on the page, and at sign-in from their saved choice, ``users.language``), then
the browser's Accept-Language, then English. Jinja's i18n extension and the format
helpers below read it, so a template or a module never passes the language around.

Formats: one per language, everywhere (pages, exports, e-mails): Babel's short date
(fi and sv 1.12.2026, as in Finland; en 01/12/2026, British English, day first), 24-hour
times, the locale's decimal sign and grouping.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Protocol, TypeVar

from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_decimal
from babel.support import Translations

from palaute_wire.opening_hours import LOCAL_TZ

DOMAIN = "dashboard"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("fi", "sv", "en")
DEFAULT_LANG = "en"
"""When the browser names none of our languages (real browsers always send Accept-Language)."""
LANG_COOKIE = "palaute_lang"
LANGUAGE_NAMES = {"fi": "Suomi", "sv": "Svenska", "en": "English"}
"""Each language named in itself, so a reader finds their own: never translated."""

BABEL_LOCALES = {"fi": "fi_FI", "sv": "sv_FI", "en": "en_GB"}
"""Formats: Finland's Swedish, and British English (day before month, 24-hour clock)."""

current_lang: ContextVar[str] = ContextVar("current_lang", default=DEFAULT_LANG)


def N_(message: str) -> str:
    """Mark a text for extraction where it is defined; translate it where it is shown (``_()``)."""
    return message


_SINGULARS: dict[str, str] = {}


def NN_(singular: str, plural: str) -> str:
    """Mark a text with a count for extraction; it stands for itself by its ``plural`` (a stored id),
    and ``counted(plural, n)`` says it in the form ``n`` needs in the reader's language."""
    _SINGULARS[plural] = singular
    return plural


def counted(text: str, n: int) -> str:
    """``text`` in the current language: in the form ``n`` needs if it was marked with ``NN_``."""
    singular = _SINGULARS.get(text)
    if singular is None:
        return gettext(text)
    return ngettext(singular, text, n)


@cache
def translations(lang: str) -> Translations:
    """The compiled catalogue; a missing one is an error, not English in disguise."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.mo"
    if not path.exists():
        raise FileNotFoundError(f"no compiled catalogue {path}: run `python -m fleet_server.devtools.catalog compile`")
    with path.open("rb") as handle:
        return Translations(handle, domain=DOMAIN)


def lang() -> str:
    return current_lang.get()


@contextmanager
def using(lang_code: str) -> Iterator[None]:
    """Texts and formats in ``lang_code`` inside the body, outside any request (e-mails, PDFs
    the fleet loop makes for a subscriber); the previous language comes back afterwards."""
    if lang_code not in LANGUAGES:
        raise ValueError(f"no catalogue for language {lang_code!r} (have: {', '.join(LANGUAGES)})")
    token = current_lang.set(lang_code)
    try:
        yield
    finally:
        current_lang.reset(token)


def console_lang(environ: Mapping[str, str]) -> str:
    """A command line's language (``palaute-server``, the demo's console): PALAUTE_LANG, else the
    locale's (LC_ALL, LC_MESSAGES, LANG: fi_FI.UTF-8 is Finnish), else English."""
    for name in ("PALAUTE_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        code = environ.get(name, "")[:2].lower()
        if code in LANGUAGES:
            return code
    return DEFAULT_LANG


def gettext(message: str) -> str:
    return translations(lang()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(lang()).ngettext(singular, plural, n)


_ = gettext


def negotiate(accept_language: str | None) -> str:
    """The best of our languages for an Accept-Language header (q-values honoured)."""
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > 0:
            choices.append((-q, i, primary))
    return min(choices)[2] if choices else DEFAULT_LANG


def pick(cookie: str | None, accept_language: str | None) -> str:
    return cookie if cookie in LANGUAGES else negotiate(accept_language)


_NORDIC_ORDER = str.maketrans({"å": "z\U0010fff0", "ä": "z\U0010fff1", "ö": "z\U0010fff2"})


def sort_key(text: str) -> str:
    """A name's place in a list as Finnish and Swedish readers look for it: case aside, and å, ä, ö
    after z in that order (by code point ä came before å, and both after z only by chance)."""
    return text.casefold().translate(_NORDIC_ORDER)


class _Named(Protocol):
    @property
    def id(self) -> str: ...

    def name_in(self, lang: str) -> str: ...


_N = TypeVar("_N", bound=_Named)


def by_name(items: Iterable[_N], lang_code: str | None = None) -> list[_N]:
    """Stations or groups as a list shows them to a reader of ``lang_code`` (the context's language
    if None): by their names in that language in ``sort_key``'s order, then by id."""
    code = lang_code or lang()
    return sorted(items, key=lambda item: (sort_key(item.name_in(code)), item.id))


# ----------------------------------------------------------------- formats


@cache
def _locale(lang_code: str) -> Locale:
    return Locale.parse(BABEL_LOCALES[lang_code])


def babel_locale() -> Locale:
    return _locale(lang())


@cache
def _symbols(lang_code: str) -> tuple[str, str]:
    """(group, decimal) separators of the language's locale, from Babel's CLDR data."""
    symbols = _locale(lang_code).number_symbols["latn"]
    return symbols["group"], symbols["decimal"]


def number(value: float, decimals: int | None = None) -> str:
    """A number with the locale's separators (fi/sv 1 234,5, en 1,234.5); ``decimals`` fixes the places.

    Formatted here from Babel's separators rather than by ``format_decimal`` on every call: a
    500-station overview prints thousands of figures.
    """
    if decimals is None:
        if isinstance(value, int) or float(value).is_integer():
            text = f"{int(value):,}"
        else:
            return format_decimal(value, locale=babel_locale())
    else:
        text = f"{value:,.{decimals}f}"
    group, decimal = _symbols(lang())
    return text.replace(",", "\x00").replace(".", decimal).replace("\x00", group)


def percent(share: float) -> str:
    """A share 0..1 as whole per cent ("75 %", a no-break space before the sign in every language)."""
    return number(round(share * 100)) + "\u00a0%"


def day(value: date | None) -> str:
    return format_date(value, format="short", locale=babel_locale()) if value else ""


def day_month(value: date) -> str:
    """A short label for a chart axis: weekday and day (fi "ma 2.11.", sv "mån 2/11", en "Mon 2 Nov")."""
    pattern = {"fi": "EEE d.M.", "sv": "EEE d/M", "en": "EEE d MMM"}[lang()]
    return format_date(value, format=pattern, locale=babel_locale())


def weekday_names() -> list[str]:
    """Monday first, abbreviated, in the reader's language."""
    names = babel_locale().days["format"]["abbreviated"]
    return [names[i] for i in range(7)]


def moment(value: datetime | None) -> str:
    """A local date and time, one format per language."""
    if value is None:
        return "—"
    local = value.astimezone(LOCAL_TZ)
    return f"{day(local.date())} {format_time(local, format='HH:mm', locale=babel_locale())}"


def moment_long(value: datetime) -> str:
    return format_datetime(value.astimezone(LOCAL_TZ), format="medium", locale=babel_locale())


def ago(delta: timedelta) -> str:
    """A duration back from now, as the pages say it: "40 s ago", "12 min ago", "3 h ago", "2 days ago"."""
    seconds = int(delta.total_seconds())
    if seconds < 90:
        return _("{n} s ago").format(n=seconds)
    if seconds < 2 * 3600:
        return _("{n} min ago").format(n=seconds // 60)
    if seconds < 2 * 86400:
        return _("{n} h ago").format(n=seconds // 3600)
    return _("{n} days ago").format(n=seconds // 86400)
