"""Every UI text has a Finnish, Swedish and English translation, and the .mo files are current."""

from __future__ import annotations

import re

from kiosk.i18n import LANGUAGES, Translator
from kiosk.i18n.catalog import extract, problems, read_catalog


def test_every_ui_text_is_translated_and_every_mo_is_fresh():
    assert problems() == []


def test_the_extractor_finds_texts_in_kv_and_python():
    found = {m.id for m in extract() if m.id}
    assert {"Skip", "Thank you!", "Very good", "Unsent answers", "closed"} <= found


def test_translations_load_and_differ_from_english():
    tr = Translator()
    assert tr.gettext("Thank you!", "fi") == "Kiitos!"
    assert tr.gettext("Thank you!", "sv") == "Tack!"
    assert tr.gettext("Thank you!", "en") == "Thank you!"


def test_patient_texts_are_plain_language_short_sentences():
    """Selkokieli-style: no sentence in any language longer than 12 words."""
    for lang in LANGUAGES:
        for message in read_catalog(lang):
            if not message.id:
                continue
            for sentence in re.split(r"[.!?:]\s*", message.string):
                assert len(sentence.split()) <= 12, f"{lang}: {sentence!r} is long; split it"
