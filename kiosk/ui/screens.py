"""The kiosk's screens. Layout and look live in the .kv files; this holds the
little state each screen needs (which follow-up, which note, which PIN digits).

The flow between screens is in kiosk.ui.app; screens call back into the app
(``App.get_running_app()``) and never record answers themselves.
"""

from __future__ import annotations

import logging

from babel.dates import get_day_names
from kivy.animation import Animation
from kivy.app import App
from kivy.properties import ListProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.screenmanager import Screen

from palaute_wire.contract import FollowupQuestion, OpeningHours

from .texts import N_, _
from .widgets import PillButton

_LOGGER = logging.getLogger(__name__)

SMILEY_LABELS = {1: N_("Very bad"), 2: N_("Bad"), 3: N_("Good"), 4: N_("Very good")}
"""Under each face, so the meaning never rests on the picture alone."""

CLOSED_DAY = N_("closed")
"""After a weekday without opening hours in the closed note's table."""

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def pick(texts: dict[str, str], lang: str, fallback: str) -> str:
    """A config text in ``lang``, else the station default, else any; never a KeyError."""
    return texts.get(lang) or texts.get(fallback) or next(iter(texts.values()), "")


class HomeScreen(Screen):
    pass


class FollowupScreen(Screen):
    question = ObjectProperty(None, allownone=True)
    remaining = NumericProperty(1.0)
    """1 -> 0 over the timeout: the shrinking bar tells the patient time is running."""

    def show(self, question: FollowupQuestion, lang: str, default_lang: str, timeout_s: float) -> None:
        self.question = question
        self.fill(lang, default_lang)
        Animation.cancel_all(self, "remaining")
        self.remaining = 1.0
        Animation(remaining=0.0, d=timeout_s).start(self)

    def fill(self, lang: str, default_lang: str) -> None:
        grid = self.ids.options
        grid.clear_widgets()
        question = self.question
        if question is None:
            return
        self.ids.title.text = pick(question.text, lang, default_lang)
        app = App.get_running_app()
        for option in question.options:
            button = PillButton(text=pick(option.text, lang, default_lang))
            button.option_id = option.id
            button.font_size = 27 * app.u
            button.bind(on_release=lambda b: App.get_running_app().choose_option(b.option_id))
            grid.add_widget(button)

    def stop(self) -> None:
        Animation.cancel_all(self, "remaining")


class ThanksScreen(Screen):
    value = NumericProperty(4)


class IdleScreen(Screen):
    note = StringProperty("")
    index = NumericProperty(0)
    count = NumericProperty(1)


class ClosedScreen(Screen):
    hours_text = StringProperty("")

    def fill(self, hours: OpeningHours | None, lang: str) -> None:
        if hours is None:
            self.hours_text = ""
            return
        names = get_day_names("abbreviated", locale=lang)
        lines = []
        for index, day in enumerate(_DAYS):
            span = hours.days.get(day)
            name = names[index].capitalize()
            lines.append(f"{name}  {span[0]}–{span[1]}" if span else f"{name}  {_(CLOSED_DAY, lang)}")
        self.hours_text = "\n".join(lines)


class PinScreen(Screen):
    digits = StringProperty("")
    message = StringProperty("")

    def key(self, digit: str) -> None:
        if len(self.digits) < 12:
            self.digits += digit
        self.message = ""

    def clear(self) -> None:
        self.digits = ""
        self.message = ""


class StaffScreen(Screen):
    rows = ListProperty([])
    """(label, value) pairs shown in the status table."""
    pressed = ListProperty([])
    """Smiley values whose physical button was pressed during the button test."""
