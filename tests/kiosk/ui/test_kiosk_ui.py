"""The kiosk UI under Xvfb: real touches, real MockFactory pins, a real SQLite outbox."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from kiosk.buttons import ButtonPanel
from kiosk.config import UISection
from kiosk.pinmap import load_pinmap
from kiosk.ui.staffinfo import StaffInfo
from palaute_wire.contract import Note, OpeningHours, StationConfig, Survey
from palaute_wire.surveys import default_station_config

pytestmark = pytest.mark.ui

FAST_UI = UISection(staff_pin="2468", thanks_s=0.3, staff_hold_s=0.3, note_rotate_s=0.3)


def fast_config(**kw) -> StationConfig:
    base = default_station_config("kalvia", "Kälviän terveysasema")
    return base.model_copy(update={"followup_timeout_s": 30, "idle_timeout_s": 30, **kw})


def test_touch_walks_home_followup_thanks_home_and_stores_linked_answers(make_kiosk):
    k = make_kiosk(fast_config(), ui=FAST_UI)
    assert k.app.screen == "home"
    k.tap(k.face(1))
    k.wait_screen("followup")
    options = list(reversed(k.screen("followup").ids.options.children))
    assert 3 <= len(options) <= 6
    k.tap(options[0])
    k.wait_screen("thanks")
    assert k.screen("thanks").value == 1
    k.wait_screen("home", timeout=3)
    smiley, followup = k.stored()
    assert (smiley["kind"], smiley["value"], smiley["lang"], smiley["flags"]) == ("smiley", 1, "fi", [])
    assert followup["kind"] == "followup" and followup["value"] == options[0].option_id
    assert followup["answer_to"] == smiley["event_id"]


def test_skip_still_counts_the_smiley(make_kiosk):
    k = make_kiosk(fast_config(), ui=FAST_UI)
    k.tap(k.face(4))
    k.wait_screen("followup")
    k.tap(k.screen("followup").ids.skip)
    k.wait_screen("thanks")
    assert [(e["kind"], e["value"]) for e in k.stored()] == [("smiley", 4)]


def test_followup_times_out_back_home_and_the_smiley_already_counts(make_kiosk):
    k = make_kiosk(fast_config(followup_timeout_s=0.4), ui=FAST_UI)
    k.tap(k.face(2))
    k.wait_screen("followup")
    k.wait_screen("home", timeout=3)
    assert [(e["kind"], e["value"]) for e in k.stored()] == [("smiley", 2)]


def test_answer_without_followup_goes_straight_to_thanks(make_kiosk):
    survey = Survey(question={"fi": "Miten meni?", "sv": "Hur gick det?", "en": "How did it go?"})
    k = make_kiosk(fast_config(survey=survey), ui=FAST_UI)
    k.tap(k.face(3))
    k.wait_screen("thanks")
    assert k.stored()[0]["value"] == 3


def test_physical_button_gives_the_same_answer_and_screens_as_a_touch(make_kiosk, mock_pins):
    k = make_kiosk(fast_config(), ui=FAST_UI)
    with ButtonPanel(load_pinmap(), lambda v: k.desk.smiley(v, source="button"), bounce_time_s=None) as panel:
        k.app.lights = panel
        k.tap(k.face(3))
        k.wait_screen("followup")
        k.app.skip_followup()
        k.wait_screen("home", timeout=3)
        mock_pins.pin(panel.pinmap.buttons[3]).drive_low()
        mock_pins.pin(panel.pinmap.buttons[3]).drive_high()
        k.wait_screen("followup")
        assert panel.leds[3].value == 1
    touch, button = k.stored()
    same = ("kind", "value", "question_id", "lang", "flags", "station_id", "device_id", "survey_version")
    assert {f: touch[f] for f in same} == {f: button[f] for f in same}
    assert button["seq"] == touch["seq"] + 1


def test_language_switch_on_home_changes_texts_and_event_language(make_kiosk):
    k = make_kiosk(fast_config(), ui=FAST_UI)
    home = k.screen("home")
    k.shot("home-fi")
    k.tap(home.ids.question.parent.children[-1].children[1])  # the Svenska button in the top row
    assert k.app.lang == "sv"
    assert home.ids.question.text == "Hur var ditt besök i dag?"
    assert home.ids.s4.children[0].text == "Mycket bra"
    k.shot("home-sv")
    k.app.set_lang("en")
    k.frames(2)
    assert home.ids.s1.children[0].text == "Very bad"
    k.shot("home-en")
    k.tap(k.face(4))
    assert k.stored()[0]["lang"] == "en"


def test_idle_rotates_notes_resets_language_and_a_touch_returns_home(make_kiosk):
    notes = (
        Note(id="n1", text={"fi": "Lisäsimme tuoleja odotustilaan.", "sv": "Fler stolar.", "en": "More chairs."}),
        Note(id="n2", text={"fi": "Puhelinaika on nyt pidempi.", "sv": "Längre telefontid.", "en": "Longer phone hours."}),
        Note(id="old", text={"fi": "Vanha", "sv": "Gammal", "en": "Old"},
             ends=datetime.now(UTC) - timedelta(days=1)),
    )
    k = make_kiosk(fast_config(idle_timeout_s=0.5, notes=notes), ui=FAST_UI)
    k.wait_screen("idle", timeout=3)
    idle = k.screen("idle")
    k.tap(idle)
    assert k.app.screen == "home"
    k.tap(k.screen("home").ids.question.parent.children[-1].children[1])  # Svenska
    assert k.app.lang == "sv"
    k.wait_screen("idle", timeout=3)
    assert k.app.lang == "fi" and k.desk.lang == "fi"
    assert idle.note == "Lisäsimme tuoleja odotustilaan."
    k.shot("idle")
    k.wait_until(lambda: idle.note == "Puhelinaika on nyt pidempi.", what="the second note")
    k.wait_until(lambda: idle.note == "Lisäsimme tuoleja odotustilaan.", what="rotation back, skipping the expired note")
    k.tap(idle)
    assert k.app.screen == "home"
    assert k.stored() == []


def test_idle_without_notes_shows_a_default_and_a_button_answers(make_kiosk, mock_pins):
    k = make_kiosk(fast_config(idle_timeout_s=0.4), ui=FAST_UI)
    k.wait_screen("idle", timeout=3)
    assert "Luemme jokaisen vastauksen" in k.screen("idle").note
    with ButtonPanel(load_pinmap(), lambda v: k.desk.smiley(v, source="button"), bounce_time_s=None) as panel:
        mock_pins.pin(panel.pinmap.buttons[1]).drive_low()
        k.wait_screen("followup")
    assert k.stored()[0]["value"] == 1


def test_closed_hours_show_the_note_and_presses_are_flagged(make_kiosk):
    hours = OpeningHours(days={d: ("08:00", "16:00") for d in ("mon", "tue", "wed", "thu", "fri")})
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    k = make_kiosk(fast_config(opening_hours=hours), ui=FAST_UI, now=lambda: saturday)
    assert k.app.screen == "closed"
    assert "Ma  08:00–16:00" in k.screen("closed").hours_text and "La  suljettu" in k.screen("closed").hours_text
    k.shot("closed")
    k.tap(k.screen("closed"))
    assert k.app.screen == "home"
    k.tap(k.face(4))
    assert k.stored()[0]["flags"] == ["out_of_hours"]


def test_staff_screen_needs_long_press_and_pin_and_shows_no_feedback(make_kiosk, mock_pins):
    info = StaffInfo(
        device_id="kiosk-1", station_id="kalvia", station_name="Kälviä", broker="mqtts://broker.example.fi:8883",
        connected=True, queue_depth=3, last_send=datetime.now(UTC) - timedelta(seconds=42),
        version="0.1.0", clock_synced=True, config_version=4,
    )
    k = make_kiosk(fast_config(), ui=FAST_UI, staff_info=lambda: info)
    k.tap(k.face(4))  # one real answer, which the staff screen must not reveal
    k.app.go_home()
    corner = next(w for w in k.screen("home").walk() if type(w).__name__ == "CornerHold")
    k.tap(corner)
    assert k.app.screen == "home", "a short tap must not open the PIN pad"
    k.hold(corner, 0.5)
    assert k.app.screen == "pin"
    pin = k.screen("pin")
    keys = {w.text: w for w in pin.ids.keypad.children}
    for digit in "1111":
        k.tap(keys[digit])
    k.tap(pin.ids.ok)
    assert k.app.screen == "pin" and pin.message
    for digit in "2468":
        k.tap(keys[digit])
    k.tap(pin.ids.ok)
    assert k.app.screen == "staff"
    rows = dict(k.screen("staff").rows)
    assert rows["Laite"] == "kiosk-1" and rows["Lähettämättä"] == "3"
    assert rows["Palvelinyhteys"] == "Toimii" and re.fullmatch(r"4\d s sitten", rows["Viimeisin lähetys"])
    shown = " ".join(v for _, v in k.screen("staff").rows)
    assert "Tosi hyvä" not in shown and "smiley" not in shown
    with ButtonPanel(load_pinmap(), lambda v: k.desk.smiley(v, source="button"), bounce_time_s=None) as panel:
        k.app.lights = panel
        mock_pins.pin(panel.pinmap.buttons[2]).drive_low()
        k.wait_until(lambda: k.screen("staff").pressed == [2], what="button 2 lit on the staff screen")
        assert panel.leds[2].value == 1
        k.shot("staff")
        k.tap(k.screen("staff").ids.close)
        assert k.app.screen == "home"
        mock_pins.pin(panel.pinmap.buttons[2]).drive_high()
        mock_pins.pin(panel.pinmap.buttons[2]).drive_low()
    assert [e["value"] for e in k.stored()] == [4, 2], "test presses are not stored; presses after it are"


@pytest.mark.parametrize("size, px_per_mm", [((800, 480), 800 / 154.2), ((1280, 720), 1280 / 155.0)])
def test_smiley_targets_are_at_least_2cm(make_kiosk, size, px_per_mm):
    """800x480: the official 7" display (154 mm wide); 1280x720: a 7" panel too (worst case)."""
    k = make_kiosk(fast_config(), ui=FAST_UI, size=size)
    k.wait_until(lambda: tuple(k.app.root.size) == size, what="window resize")
    k.frames(3)
    for value in (1, 2, 3, 4):
        face = k.face(value)
        assert min(face.size) / px_per_mm >= 20, f"smiley {value} is {min(face.size) / px_per_mm:.1f} mm"
        x, y = face.to_window(*face.pos)
        assert 0 <= x and x + face.width <= size[0] and 0 <= y and y + face.height <= size[1]
    if size == (1280, 720):
        k.shot("home-fi-1280x720")


def test_followup_and_thanks_screenshots(make_kiosk):
    k = make_kiosk(fast_config(), ui=FAST_UI)
    k.tap(k.face(2))
    k.wait_screen("followup")
    k.shot("followup")
    k.tap(k.screen("followup").ids.skip)
    k.wait_screen("thanks")
    k.shot("thanks")


class RecordingSpeaker:
    """Stands in for kiosk.audio.Speaker (whose espeak-ng output tests/kiosk/test_audio.py checks)."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []

    def say(self, text: str, lang: str) -> None:
        self.said.append((text, lang))


def test_audio_mode_reads_question_options_and_thanks_in_the_current_language(make_kiosk):
    speaker = RecordingSpeaker()
    ui = FAST_UI.model_copy(update={"audio": True})
    k = make_kiosk(fast_config(), ui=ui, speaker=speaker)
    home = k.screen("home")
    assert home.ids.listen.opacity == 1
    k.app.set_lang("sv")
    k.shot("home-sv-audio")
    k.tap(home.ids.listen)
    text, lang = speaker.said[-1]
    assert lang == "sv" and text.startswith("Hur var ditt besök i dag?") and "Mycket dåligt" in text
    k.tap(k.face(1))
    k.wait_screen("followup")
    assert speaker.said[-1] == (("Vad gick dåligt? Jag väntade för länge, Personalens bemötande, "
                                "Jag fick inte nog information, Lokalerna, Något annat."), "sv")
    k.app.skip_followup()
    assert speaker.said[-1] == ("Tack! Ditt svar har sparats.", "sv")


def test_without_audio_there_is_no_listen_button(make_kiosk):
    k = make_kiosk(fast_config(), ui=FAST_UI)
    assert k.screen("home").ids.listen.disabled and k.screen("home").ids.listen.opacity == 0
