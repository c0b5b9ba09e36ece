"""Every UI text has a Finnish, Swedish and English translation, and the .mo files are current."""

from __future__ import annotations

import re

from kiosk.i18n import LANGUAGES, Translator
from kiosk.i18n.catalog import extract, problems, read_catalog


def test_every_ui_text_is_translated_and_every_mo_is_fresh():
    assert problems() == []


def test_the_extractor_finds_texts_in_kv_and_python():
    found = {m.id for m in extract() if m.id}
    assert {"Skip", "Thank you!", "Very good", "Unsent answers", "closed", "This kiosk is out of order."} <= found


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


def test_the_check_catches_spoken_or_shown_text_outside_the_catalogue(tmp_path):
    """The old listen prompt: a marked text inside an f-string, which extraction never sees."""
    from kiosk.i18n.catalog import stray_texts

    ui = tmp_path / "ui"
    ui.mkdir()
    (ui / "app.py").write_text(
        "from kiosk.i18n import N_\n"
        "def prompt(tr, question, labels):\n"
        "    return f\"{question} {tr(N_('The buttons from left to right are:'))} {labels}.\"\n"
        "def spoken(name):\n"
        "    return f'Hello {name}, press a face'\n"
        "def logged(log, name):\n"
        "    log.info(f'started {name}')\n",
        encoding="utf-8",
    )
    (ui / "x.kv").write_text('<X@Label>:\n    text: "Untranslated words"\n    font_name: "Roboto"\n',
                             encoding="utf-8")
    found = "\n".join(stray_texts(tmp_path))
    assert "'The buttons from left to right are:' is marked but extraction never finds it" in found
    assert "f-string text 'Hello '" in found
    assert "'Untranslated words' is not from the catalogue" in found
    assert "started" not in found, "log lines are for the journal"


def test_finnish_and_swedish_texts_follow_the_review():
    tr = Translator()
    fi = {m.id: m.string for m in read_catalog("fi") if m.id}
    assert tr.gettext("We received your answer.", "fi") == "Saimme vastauksesi."
    assert tr.gettext("closed", "fi") == "kiinni"
    assert "Välityspalvelin" not in fi.values() and "Tosi hyvä" not in fi.values()
    assert not any(s.startswith("Te ") for s in fi.values()), "singular address: sinä, not Te"
    assert tr.gettext("Not on time", "fi") == "Ei " + tr.gettext("On time", "fi").lower()
    assert tr.gettext("Not on time", "sv") == "Går inte rätt" and tr.gettext("On time", "sv") == "Går rätt"
