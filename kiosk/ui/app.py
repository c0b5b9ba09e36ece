"""The Kivy app: screens and the flow between them, on top of kiosk.answers.

Flow (timeouts from the station config and [ui] in kiosk.toml):

    home --smiley--> follow-up (if the survey has one) --option/skip--> thank-you --[ui] thanks_s (4 s)--> home
                     follow-up --no touch for followup_timeout_s--> home (the smiley already counts)
    home --no touch for idle_timeout_s--> idle ("you said, we did"), language back to default
    idle --touch--> home;  any physical button --> its answer, as on home
    home <-> closed, following the opening hours; touching "closed" still lets a patient answer
    corner held staff_hold_s --> PIN --> staff status (button and light test)

Touches and physical buttons meet in :class:`~kiosk.answers.AnswerDesk`: a touch
calls ``desk.smiley``; a button calls it from gpiozero's thread. Either way the
desk stores the answer first and then tells this app, which hops to Kivy's
thread and shows the next screen. So "thank you" appears only for a stored answer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.screenmanager import NoTransition, ScreenManager

from palaute_wire.contract import StationConfig

from ..answers import Answer, AnswerDesk
from ..config import UISection
from ..i18n import LANGUAGE_NAMES, Translator, default_translator
from .screens import (
    SMILEY_LABELS,
    ClosedScreen,
    FollowupScreen,
    HomeScreen,
    IdleScreen,
    PinScreen,
    StaffScreen,
    ThanksScreen,
    pick,
)
from .staffinfo import StaffInfo, StaffInfoSource, staff_rows, station_line
from .texts import N_, _, use_translator

_LOGGER = logging.getLogger(__name__)

KV_DIR = Path(__file__).resolve().parent
KV_FILES = ("widgets.kv", "home.kv", "followup.kv", "thanks.kv", "idle.kv", "closed.kv", "staff.kv")

REFERENCE_SIZE = (800, 480)
"""The official 7" display; every size in the .kv files is in these pixels times ``app.u``."""
PORTRAIT_REFERENCE = (480, 800)
"""A window taller than wide (the Touch Display 2 as delivered, 720x1280) uses the portrait
layout, scaled from this size; so a face is never smaller than on the 800x480 display."""

DEFAULT_NOTE = N_("We read every answer. Your feedback helps us make the health station better.")
HOURS_CHECK_S = 20.0
"""How often the opening hours are checked while nobody touches the screen."""


class Lights(Protocol):
    """The LEDs, as kiosk.buttons.ButtonPanel offers them."""

    def confirm(self, value: int) -> None: ...


class Speaker(Protocol):
    """Speech, as kiosk.audio.Speaker offers it."""

    def say(self, text: str, lang: str) -> None: ...


def _offline_info() -> StaffInfo:
    return StaffInfo(device_id="?", station_id="?")


class KioskApp(App):
    """The patient-facing kiosk. Give it the desk; it never records on its own."""

    lang = StringProperty("fi")
    languages = ListProperty(["fi", "sv", "en"])
    u = NumericProperty(1.0)
    """Scale of the reference 800x480 (or portrait 480x800) layout to the current window."""
    portrait = BooleanProperty(False)
    """The window is taller than wide: the .kv files stack what sits side by side in landscape."""
    question = StringProperty("")
    station_name = StringProperty("")
    survey_url = StringProperty("")
    """The web survey link the thank-you and idle screens show as a QR code ("" = none: no code)."""
    audio = BooleanProperty(False)
    staff_hold_s = NumericProperty(3.0)

    def __init__(
        self,
        desk: AnswerDesk,
        *,
        ui: UISection | None = None,
        staff_info: StaffInfoSource = _offline_info,
        lights: Lights | None = None,
        speaker: Speaker | None = None,
        translator: Translator | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.title = "Palaute"
        self.desk = desk
        self.ui = ui or UISection()
        self.staff_info = staff_info
        self.lights = lights
        self.speaker = speaker
        self.translator = translator or default_translator()
        self.audio = bool(self.ui.audio and speaker is not None)
        self.staff_hold_s = self.ui.staff_hold_s
        self._followup_answer: Answer | None = None
        self._listening = False
        """Listen was pressed in this patient's visit (see ``_speaking``)."""
        self._timers: dict[str, Any] = {}  # Kivy ClockEvents
        self._closed_override = False
        self._notes: list[str] = []
        self._main_thread = threading.current_thread()

    # -- lifecycle -----------------------------------------------------------------

    def build(self):
        use_translator(self.translator)
        for name in KV_FILES:
            path = str(KV_DIR / name)
            Builder.unload_file(path)  # several apps in one process (tests) must not stack rules
            Builder.load_file(path)
        manager = ScreenManager(transition=NoTransition())
        for screen in (
            HomeScreen(name="home"),
            FollowupScreen(name="followup"),
            ThanksScreen(name="thanks"),
            IdleScreen(name="idle"),
            ClosedScreen(name="closed"),
            PinScreen(name="pin"),
            StaffScreen(name="staff"),
        ):
            manager.add_widget(screen)
        return manager

    def on_start(self) -> None:
        Window.clearcolor = (0.05, 0.09, 0.17, 1)
        Window.bind(size=self._rescale, on_touch_down=self._touched)
        self._rescale(Window, Window.size)
        self.desk.listeners.append(self._heard)
        self.desk.config_listeners.append(self._config_heard)
        self.desk.unrecorded_listeners.append(self._unrecorded)
        self._apply_config(self.desk.config)
        self.set_lang(self.desk.config.default_lang)
        self._timers["hours"] = Clock.schedule_interval(lambda _dt: self._check_hours(), HOURS_CHECK_S)
        self.go_home()

    def on_stop(self) -> None:
        registries: tuple[tuple[object, list[Any]], ...] = (
            (self._heard, self.desk.listeners), (self._config_heard, self.desk.config_listeners),
            (self._unrecorded, self.desk.unrecorded_listeners))
        for listener, registry in registries:
            if listener in registry:
                registry.remove(listener)
        self.desk.divert = None
        for name in list(self._timers):
            self._cancel(name)
        Window.unbind(size=self._rescale, on_touch_down=self._touched)

    def _rescale(self, _window, size) -> None:
        portrait = size[1] > size[0]
        ref = PORTRAIT_REFERENCE if portrait else REFERENCE_SIZE
        self.u = max(0.5, min(size[0] / ref[0], size[1] / ref[1]))
        self.portrait = portrait

    # -- texts and config ------------------------------------------------------------

    def tr(self, message: str) -> str:
        return _(message, self.lang)

    def smiley_label(self, value: int, lang: str) -> str:
        return _(SMILEY_LABELS[int(value)], lang)

    def language_name(self, lang: str) -> str:
        return LANGUAGE_NAMES[lang]

    def set_lang(self, lang: str) -> None:
        if lang not in self.desk.config.languages:
            return
        self.desk.lang = lang
        self.lang = lang

    def on_lang(self, _instance, lang: str) -> None:
        config = self.desk.config
        self.question = pick(config.survey.question, lang, config.default_lang)
        if self.root is None:
            return
        followup: FollowupScreen = self.root.get_screen("followup")
        if followup.question is not None:
            followup.fill(lang, config.default_lang)
        self.root.get_screen("closed").fill(config.opening_hours, lang)
        self._load_notes()

    def _config_heard(self, config: StationConfig) -> None:
        self._on_kivy_thread(self._apply_config, config)

    def _apply_config(self, config: StationConfig) -> None:
        self.languages = list(config.languages)
        self.station_name = config.station_name
        self._check_survey_link()
        if self.lang not in config.languages:
            self.set_lang(config.default_lang)
        self.on_lang(self, self.lang)
        self._check_hours()

    def _check_survey_link(self) -> None:
        """Show the config's survey link, unless this kiosk's clock says it has expired
        (the server sends a new one long before that; a kiosk offline for weeks shows none)."""
        link = self.desk.config.survey_link
        self.survey_url = link.url if link is not None and datetime.now(UTC) < link.expires else ""

    def _load_notes(self) -> None:
        config = self.desk.config
        now = datetime.now(UTC)
        notes = [
            pick(n.text, self.lang, config.default_lang)
            for n in config.notes
            if (n.starts is None or n.starts <= now) and (n.ends is None or now < n.ends)
        ]
        self._notes = [n for n in notes if n] or [_(DEFAULT_NOTE, self.lang)]
        idle: IdleScreen = self.root.get_screen("idle")
        idle.count = len(self._notes)
        idle.index = min(idle.index, idle.count - 1)
        idle.note = self._notes[idle.index]

    # -- screens ---------------------------------------------------------------------

    @property
    def screen(self) -> str:
        return self.root.current

    def _show(self, name: str) -> None:
        if self.root.current == "followup" and name != "followup":
            self.root.get_screen("followup").stop()
        if self.root.current == "staff" and name != "staff":
            self.desk.divert = None
        self.root.current = name

    def go_home(self, *_args) -> None:
        """Home, or the closed note when the station is closed (unless a patient asked to answer)."""
        if self.root.current in ("followup", "thanks", "idle"):
            self._listening = False  # this patient's visit is over: the next one must ask for speech
        for name in ("followup", "thanks", "rotate"):
            self._cancel(name)
        self._followup_answer = None
        self.root.get_screen("followup").question = None
        if not self.desk.is_open() and not self._closed_override:
            self._show("closed")
        else:
            self._show("home")
        self._restart_idle()

    def _check_hours(self) -> None:
        if self.root is None:
            return
        is_open = self.desk.is_open()
        if is_open:
            self._closed_override = False
        if self.screen == "closed" and is_open or self.screen == "home" and not is_open and not self._closed_override:
            self.go_home()

    def answer_anyway(self) -> None:
        """Touch on the closed note: the patient may still answer (stored as out-of-hours)."""
        self._closed_override = True
        self.go_home()

    # -- answers -----------------------------------------------------------------------

    def press_smiley(self, value: int) -> None:
        """An on-screen face was touched: the same path as a physical button."""
        if self.desk.smiley(int(value), source="touch") is None:
            return  # the staff button test, or not recorded (then _unrecorded thanks the patient)
        if self.lights is not None:
            try:
                self.lights.confirm(int(value))
            except Exception:
                _LOGGER.exception("could not light LED %s", value)

    def _unrecorded(self, value: int, _source: str) -> None:
        """A press that could not be recorded: the patient still sees a thank-you, staff see the cause."""
        self._on_kivy_thread(self.show_thanks, int(value))

    def _heard(self, answer: Answer) -> None:
        self._on_kivy_thread(self._show_answer, answer)

    def _show_answer(self, answer: Answer) -> None:
        config = self.desk.config
        self._restart_idle()
        if answer.followup is not None:
            self._followup_answer = answer
            screen: FollowupScreen = self.root.get_screen("followup")
            self._cancel("thanks")
            screen.show(answer.followup, self.lang, config.default_lang, config.followup_timeout_s)
            self._show("followup")
            self._schedule("followup", self._followup_timed_out, config.followup_timeout_s)
            if self._speaking:
                self._say_followup()
        else:
            self.show_thanks(int(answer.event.value))

    def choose_option(self, option_id: str) -> None:
        answer = self._followup_answer
        if answer is None or answer.followup is None:
            return
        self.desk.followup(answer.followup.id, option_id, answer_to=answer.event.event_id)
        self.show_thanks(int(answer.event.value))

    def skip_followup(self) -> None:
        answer = self._followup_answer
        self.show_thanks(int(answer.event.value) if answer else 4)

    def _followup_timed_out(self, *_args) -> None:
        _LOGGER.info("follow-up timed out; the smiley is already stored")
        self.go_home()

    def show_thanks(self, value: int) -> None:
        self._cancel("followup")
        self._followup_answer = None
        self.root.get_screen("thanks").value = value
        self._check_survey_link()
        self._show("thanks")
        self._schedule("thanks", self.go_home, self.ui.thanks_s)
        if self._speaking:
            self._say_thanks()

    # -- idle and "you said, we did" -----------------------------------------------------

    def _touched(self, _window, _touch) -> None:
        self._restart_idle()

    def _restart_idle(self) -> None:
        self._schedule("idle", self._idle_timed_out, self.desk.config.idle_timeout_s)

    def _idle_timed_out(self, *_args) -> None:
        current = self.screen
        if current in ("pin", "staff"):
            self.go_home()
        elif current in ("home", "closed"):
            self.go_idle()
        else:
            self._restart_idle()

    def go_idle(self) -> None:
        """Rotate the notes; the next patient starts in the station's default language."""
        self._closed_override = False
        self._listening = False
        self.desk.reset_lang()
        self.set_lang(self.desk.config.default_lang)
        idle: IdleScreen = self.root.get_screen("idle")
        idle.index = 0
        self._load_notes()
        self._check_survey_link()
        self._show("idle")
        self._cancel("idle")
        self._timers["rotate"] = Clock.schedule_interval(lambda _dt: self.next_note(), self.ui.note_rotate_s)

    def next_note(self) -> None:
        idle: IdleScreen = self.root.get_screen("idle")
        idle.index = (idle.index + 1) % max(1, len(self._notes))
        idle.note = self._notes[idle.index]

    def wake(self) -> None:
        """A touch on the idle screen."""
        self.go_home()

    # -- audio -------------------------------------------------------------------------

    @property
    def _speaking(self) -> bool:
        """Speech only after this patient pressed Listen: never announce an answer to the waiting room."""
        return self.audio and self._listening and self.speaker is not None

    def listen(self) -> None:
        """Read the current screen aloud (the on-screen or the fifth physical button).

        From then on, until this patient's visit ends (thank-you, time-out or
        idle), the follow-up question and the thank-you are read too.
        """
        if self.speaker is None:
            return
        self._on_kivy_thread(self._listen_pressed)

    def _listen_pressed(self) -> None:
        self._listening = True
        self._restart_idle()
        self._say_current()

    def _say_current(self) -> None:
        if self.screen == "followup":
            self._say_followup()
        elif self.screen == "thanks":
            self._say_thanks()
        else:
            answers = ", ".join(self.smiley_label(v, self.lang) for v in (1, 2, 3, 4))
            text = self.tr(N_("{question} The faces from left to right: {answers}.")).format(
                question=self.question, answers=answers)
            self._say(text)

    def _say(self, text: str) -> None:
        if self.speaker is not None:
            self.speaker.say(text, self.lang)

    def _say_thanks(self) -> None:
        screen: ThanksScreen = self.root.get_screen("thanks")
        self._say(f"{screen.ids.title.text} {screen.ids.detail.text}")

    def _say_followup(self) -> None:
        screen: FollowupScreen = self.root.get_screen("followup")
        question = screen.question
        if question is None:
            return
        default = self.desk.config.default_lang
        options = ", ".join(pick(o.text, self.lang, default) for o in question.options)
        text = self.tr(N_("{question} Choices: {options}.")).format(
            question=pick(question.text, self.lang, default), options=options)
        self._say(text)

    # -- staff ---------------------------------------------------------------------------

    def open_pin(self) -> None:
        if not self.ui.staff_pin:
            _LOGGER.info("staff screen asked for, but [ui] staff_pin is not set")
            return
        self.root.get_screen("pin").clear()
        self._show("pin")
        self._restart_idle()

    def check_pin(self) -> None:
        screen: PinScreen = self.root.get_screen("pin")
        if self.ui.staff_pin and screen.digits == self.ui.staff_pin:
            screen.clear()
            self.open_staff()
        else:
            _LOGGER.warning("wrong staff PIN entered")
            screen.digits = ""
            screen.message = N_("Wrong PIN. Try again.")

    def open_staff(self) -> None:
        staff: StaffScreen = self.root.get_screen("staff")
        staff.pressed = []
        self.desk.divert = self._button_tested
        self.refresh_staff()
        self._show("staff")
        self._schedule_staff_refresh()

    def _schedule_staff_refresh(self) -> None:
        def tick(_dt):
            if self.screen != "staff":
                return False
            self.refresh_staff()
            return True

        self._cancel("staff")
        self._timers["staff"] = Clock.schedule_interval(tick, 1.0)

    def refresh_staff(self) -> None:
        try:
            info = self.staff_info()
        except Exception:
            _LOGGER.exception("staff info unavailable")
            info = _offline_info()
        staff: StaffScreen = self.root.get_screen("staff")
        staff.station = station_line(info)
        rows = staff_rows(info, self.tr)
        if rows != staff.rows:  # rebuilt only on change: the screen refreshes every second
            staff.rows = rows

    def _button_tested(self, value: int, source: str) -> None:
        """While the staff screen is open, a physical press lights its face here, and is not stored."""
        self._on_kivy_thread(self._mark_tested, value)

    def _mark_tested(self, value: int) -> None:
        staff: StaffScreen = self.root.get_screen("staff")
        if value not in staff.pressed:
            staff.pressed = sorted([*staff.pressed, value])
        self._restart_idle()

    def light_test(self) -> None:
        """Light each answer LED in turn, 0.6 s apart, so staff can see every one work."""
        if self.lights is None:
            return
        for i, value in enumerate((1, 2, 3, 4)):
            Clock.schedule_once(lambda _dt, v=value: self.lights.confirm(v), 0.6 * i)

    def close_staff(self) -> None:
        self.go_home()

    # -- plumbing --------------------------------------------------------------------------

    def _on_kivy_thread(self, fn: Callable, *args) -> None:
        if threading.current_thread() is self._main_thread:
            fn(*args)
        else:
            Clock.schedule_once(lambda _dt: fn(*args), 0)

    def _schedule(self, name: str, fn: Callable, delay: float) -> None:
        self._cancel(name)
        self._timers[name] = Clock.schedule_once(partial(_drop_dt, fn), delay)

    def _cancel(self, name: str) -> None:
        event = self._timers.pop(name, None)
        if event is not None:
            event.cancel()

    def screenshot(self, path: str | Path) -> Path:
        """Save the current screen as a PNG (what tests keep as artefacts)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.root.export_to_png(str(path))
        return path


def _drop_dt(fn: Callable, _dt: float) -> None:
    fn()
