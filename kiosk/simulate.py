"""Simulated patients: press the smiley buttons at a rate, with a realistic mix.

Why through the pins: the simulator drives gpiozero MockFactory pins
(``drive_low()``/``drive_high()`` on each button's pin), so a simulated press
runs exactly the code a real press runs: Button -> ButtonPanel -> Kiosk ->
Recorder -> outbox, LED confirmation included. The demo, the benchmarks and the
end-to-end tests therefore exercise the real kiosk, not a shortcut.

The follow-up answer has no physical button, so it goes to the kiosk's
``AnswerDesk.followup`` (what the touch UI calls too, counting rules included), with
probability ``followup_share``, choosing an option of the current station
config's follow-up question for that smiley.

Presses arrive as a Poisson process (exponential gaps) averaging
``presses_per_minute``; most answers are in the station's default language.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

from palaute_wire.contract import FeedbackEvent, Lang

from .app import Kiosk
from .config import SimulateSection

_LOGGER = logging.getLogger(__name__)

OTHER_LANG_SHARE = 0.2
"""Share of simulated answers given in a language other than the station default."""


@dataclass
class SimulationResult:
    presses: int = 0
    followups: int = 0


class Simulator:
    """Presses a started Kiosk's mock buttons; ``run`` blocks, ``start`` uses a thread."""

    def __init__(
        self,
        kiosk: Kiosk,
        settings: SimulateSection,
        *,
        presses_per_minute: float | None = None,
        count: int | None = None,
        seed: int | None = None,
    ) -> None:
        if kiosk.buttons is None:
            raise RuntimeError("start the kiosk with buttons before simulating presses")
        for value, button in kiosk.buttons.buttons.items():
            if not hasattr(button.pin, "drive_low"):
                raise RuntimeError(
                    f"smiley {value} is on a real pin ({button.pin!r}); the simulator needs "
                    "gpiozero's MockFactory (Device.pin_factory = MockFactory(pin_class=MockPWMPin))"
                )
        self.kiosk = kiosk
        self.settings = settings
        self.rate = presses_per_minute or settings.presses_per_minute
        if self.rate <= 0:
            raise ValueError("presses per minute must be positive")
        self.count = count
        self.rng = random.Random(seed if seed is not None else settings.seed)
        self.result = SimulationResult()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_smiley: FeedbackEvent | None = None
        self._lock = threading.Lock()

    def press(self, value: int) -> FeedbackEvent | None:
        """One press and release of a smiley button; the stored event, or None if not stored."""
        pin = self.kiosk.buttons.buttons[value].pin  # type: ignore[union-attr]
        captured: list[FeedbackEvent] = []

        def capture(event: FeedbackEvent) -> None:
            if event.kind == "smiley":
                captured.append(event)

        with self._lock:  # one simulated finger: capture belongs to this press
            self.kiosk.recorder.on_recorded.append(capture)
            try:
                pin.drive_low()   # MockFactory calls when_pressed right here, in this thread
                pin.drive_high()
            finally:
                self.kiosk.recorder.on_recorded.remove(capture)
        return captured[-1] if captured else None

    def step(self) -> None:
        """One simulated patient: a smiley, and maybe the follow-up."""
        config = self.kiosk.station_config
        value = self.rng.choices((1, 2, 3, 4), weights=self.settings.mix)[0]
        lang: Lang = self.kiosk.default_lang
        if len(config.languages) > 1 and self.rng.random() < OTHER_LANG_SHARE:
            lang = self.rng.choice([lng for lng in config.languages if lng != lang] or [lang])
        # A button has no language of its own: it answers in the one chosen on screen
        # (kiosk.desk.lang). Simulate a patient who switched to ``lang``, then pressed.
        desk = self.kiosk.desk
        desk.lang = lang
        try:
            event = self.press(value)
            self.result.presses += 1
            if event is None:
                return
            question = desk.followup_for(value)
            if question is not None and self.rng.random() < self.settings.followup_share:
                option = self.rng.choice(question.options)
                desk.followup(question.id, option.id, answer_to=event.event_id)
                self.result.followups += 1
        finally:
            desk.reset_lang()

    def run(self) -> SimulationResult:
        """Press until ``count`` presses are made or ``stop()``; returns the tally."""
        mean_gap = 60.0 / self.rate
        _LOGGER.info("simulating %.1f presses/min%s", self.rate,
                     f", {self.count} presses" if self.count is not None else "")
        while not self._stop.is_set() and (self.count is None or self.result.presses < self.count):
            try:
                self.step()
            except Exception:
                _LOGGER.exception("simulated press failed")
            if self.count is not None and self.result.presses >= self.count:
                break
            self._stop.wait(self.rng.expovariate(1.0 / mean_gap))
        _LOGGER.info("simulation done: %d presses, %d follow-ups", self.result.presses, self.result.followups)
        return self.result

    def start(self) -> Simulator:
        self._thread = threading.Thread(target=self.run, name="palaute-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)
