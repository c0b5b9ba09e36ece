"""The kiosk's screens. Layout and look live in the .kv files; this holds the
little state each screen needs (which follow-up, which note, which PIN digits).

The flow between screens is in kiosk.ui.app; screens call back into the app
(``App.get_running_app()``) and never record answers themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import cast

from babel.dates import get_day_names
from kivy.app import App
from kivy.clock import Clock
from kivy.properties import ListProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.screenmanager import Screen

from palaute_wire.contract import FollowupQuestion, Lang, OpeningHours
from palaute_wire.opening_hours import WEEKDAYS

from . import theme
from .texts import N_, _
from .widgets import PillButton, StaffRow

_LOGGER = logging.getLogger(__name__)

SMILEY_LABELS = {1: N_("Very bad"), 2: N_("Bad"), 3: N_("Good"), 4: N_("Very good")}
"""Under each face, so the meaning never rests on the picture alone."""

CLOSED_DAY = N_("closed")
"""After a weekday without opening hours in the closed note's table."""



def clock_time(hhmm: str, lang: str) -> str:
    """'08:00' as written in the language: 8.00 in Finnish and Swedish, 08:00 in English."""
    if lang in ("fi", "sv"):
        hours, minutes = hhmm.split(":")
        return f"{int(hours)}.{minutes}"
    return hhmm


def pick(texts: Mapping[Lang, str], lang: str, fallback: str) -> str:
    """A config text in ``lang``, else the station default, else any; never a KeyError."""
    by_lang = cast("Mapping[str, str]", texts)  # any other key only misses
    return by_lang.get(lang) or by_lang.get(fallback) or next(iter(texts.values()), "")


class HomeScreen(Screen):
    pass


class FollowupScreen(Screen):
    question = ObjectProperty(None, allownone=True)
    remaining = NumericProperty(1.0)
    """1 -> 0 over the timeout: the shrinking bar tells the patient time is running.

    Stepped once a second, not animated: Kivy redraws the whole window for any
    change, and a 60 fps bar cost most of a core under software rendering."""

    COUNTDOWN_STEP_S = 1.0

    def show(self, question: FollowupQuestion, lang: str, default_lang: str, timeout_s: float) -> None:
        self.question = question
        self.fill(lang, default_lang)
        self.stop()
        self.remaining = 1.0
        self._timeout_s = max(0.001, float(timeout_s))
        self._started = Clock.get_time()
        self._tick = Clock.schedule_interval(self._step, self.COUNTDOWN_STEP_S)

    def _step(self, _dt) -> bool:
        left = max(0.0, 1.0 - (Clock.get_time() - self._started) / self._timeout_s)
        self.remaining = round(left, 3)
        return left > 0

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
            button.size_hint_y = None
            button.height = (96 if app.portrait else 70) * app.u
            button.bind(on_release=lambda b: App.get_running_app().choose_option(b.option_id))
            grid.add_widget(button)

    def stop(self) -> None:
        tick = getattr(self, "_tick", None)
        if tick is not None:
            tick.cancel()
            self._tick = None


class ThanksScreen(Screen):
    value = NumericProperty(4)


class IdleScreen(Screen):
    note = StringProperty("")
    index = NumericProperty(0)
    count = NumericProperty(1)
    note_font_size = NumericProperty(38)
    """The largest size (38 down to 22 reference px) at which the whole note fits its panel:
    the server allows 280 characters, and a cut note loses its first and last lines."""

    def on_kv_post(self, _base_widget) -> None:
        self.bind(note=self._fit, size=self._fit)
        self.ids.note.bind(size=self._fit)

    def _fit(self, *_args) -> None:
        from kivy.core.text import Label as CoreLabel

        label = self.ids.note
        u = App.get_running_app().u
        width, height = label.width - 40 * u, label.height - 16 * u
        if width <= 0 or height <= 0:
            return
        size = 38.0
        while size > 22:
            measure = CoreLabel(text=self.note, font_size=size * u, text_size=(width, None))
            measure.refresh()
            if measure.texture.size[1] <= height:
                break
            size -= 2
        self.note_font_size = size * u


class ClosedScreen(Screen):
    hours_text = StringProperty("")

    def fill(self, hours: OpeningHours | None, lang: str) -> None:
        if hours is None:
            self.hours_text = ""
            return
        names = get_day_names("abbreviated", locale=lang)
        lines = []
        for index, day in enumerate(WEEKDAYS):
            span = hours.days.get(day)
            name = names[index].capitalize()
            hours_text = f"{clock_time(span[0], lang)}–{clock_time(span[1], lang)}" if span else _(CLOSED_DAY, lang)
            lines.append(f"{name}  {hours_text}")
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


STATE_COLOURS = {"ok": theme.OK, "bad": theme.BAD, "warn": theme.WARNING, "": theme.WHITE}
STATE_MARKS = {"ok": "●", "bad": "✖", "warn": "▲", "": ""}
"""A mark as well as a colour per state: never colour alone."""


class StaffScreen(Screen):
    rows = ListProperty([])
    """(label, value, state) rows of the status table (kiosk.ui.staffinfo.staff_rows)."""
    station = StringProperty("")
    """The station's whole name and id, on its own line: wrapped, never shortened."""

    def on_rows(self, _instance, rows) -> None:
        table = self.ids.table
        table.clear_widgets()
        for label, value, state in rows:
            table.add_widget(StaffRow(mark=STATE_MARKS.get(state, ""), label=label, value=value,
                                              colour=STATE_COLOURS.get(state, theme.WHITE)))

    def value_of(self, label: str) -> tuple[str, str]:
        """(value, state) of a row (tests)."""
        for row_label, value, state in self.rows:
            if row_label == label:
                return value, state
        raise KeyError(label)
    pressed = ListProperty([])
    """Smiley values whose physical button was pressed during the button test."""
