"""The ``_(text, lang)`` the .kv files and screens use to show a translated text.

Passing the language explicitly (``_("Skip", app.lang)``) is what makes Kivy
re-evaluate a kv binding when the patient switches language: kv rebinds on
every property named in the expression.
"""

from __future__ import annotations

from kiosk.i18n import N_, Translator, default_translator

__all__ = ["N_", "_", "use_translator"]

_translator: Translator | None = None


def use_translator(translator: Translator) -> None:
    global _translator
    _translator = translator


def _(message: str, lang: str) -> str:
    return (_translator or default_translator()).gettext(message, lang)
