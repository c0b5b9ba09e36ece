"""UI texts in Finnish, Swedish and English from gettext catalogues.

The catalogues live in kiosk/locale/<lang>/LC_MESSAGES/palaute.po (edited by
people) and palaute.mo (compiled, committed, loaded here). Message ids are the
English texts; ``python -m kiosk.i18n.catalog update`` extracts them from the
.kv and .py files and ``... compile`` rebuilds the .mo files. tests/kiosk/test_i18n.py
fails when a text lacks a translation or a .mo is older than its .po.

Texts that come from the station config (the survey question, follow-up
options, "you said, we did" notes) are not here: they arrive already in three
languages from the fleet server.
"""

from __future__ import annotations

import gettext
import logging
from pathlib import Path

_LOGGER = logging.getLogger(__name__)

DOMAIN = "palaute"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = ("fi", "sv", "en")

LANGUAGE_NAMES = {"fi": "Suomi", "sv": "Svenska", "en": "English"}
"""Each language named in itself, so a patient finds their own: never translated."""


def N_(message: str) -> str:
    """Mark a text for extraction where it is defined; translate it where it is shown."""
    return message


class Translator:
    """Loads the compiled catalogue of every language once; a missing one is an error.

    Failing loudly at start beats a kiosk that silently shows English to a
    Finnish patient because a .mo file was not shipped.
    """

    def __init__(self, locale_dir: Path = LOCALE_DIR, languages: tuple[str, ...] = LANGUAGES) -> None:
        self._catalogues: dict[str, gettext.NullTranslations] = {}
        for lang in languages:
            try:
                self._catalogues[lang] = gettext.translation(DOMAIN, str(locale_dir), languages=[lang])
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"no compiled catalogue for {lang!r} in {locale_dir}: "
                    f"run `python -m kiosk.i18n.catalog compile`"
                ) from None
        self.languages = languages

    def gettext(self, message: str, lang: str) -> str:
        catalogue = self._catalogues.get(lang)
        if catalogue is None:
            _LOGGER.warning("no catalogue for %r; showing the English text", lang)
            return message
        return catalogue.gettext(message)


_default: Translator | None = None


def default_translator() -> Translator:
    """The translator over the shipped catalogues, loaded on first use (not at import)."""
    global _default
    if _default is None:
        _default = Translator()
    return _default
