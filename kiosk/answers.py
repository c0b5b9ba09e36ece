"""The one path from "a patient gave an answer" to a stored, flagged event.

The touch screen (kiosk.ui), the physical arcade buttons (kiosk.buttons) and the
simulator all call :meth:`AnswerDesk.smiley` / :meth:`AnswerDesk.followup`, so
the counting rules below hold the same way whatever the patient pressed:

- Every press is stored. Nothing is dropped, merged or hidden here.
- A press is flagged ``burst`` when it is one of *more than*
  ``StationConfig.burst.max_presses`` smiley presses within
  ``StationConfig.burst.window_s`` seconds (touch and buttons together). The
  first ``max_presses`` presses of a burst are stored unflagged; the flag
  starts with the press that breaks the limit. A hammered button is caught by
  the same rule; a held button is one press (gpiozero fires once per press).
- A press is flagged ``out_of_hours`` when the station's opening hours say it
  is closed at that moment (``palaute_wire.opening_hours``, the rule the
  server's figures and alerts use too: station local time, public holidays
  closed unless the config says otherwise).
- The answer is stored whatever the config holds: when its opening hours
  cannot be read, the press is stored unflagged and the error logged.

docs/counting.md says the same in plain words for coordinators; keep them in
step. Listeners (the UI) are told about each stored answer *after* it is
durable, so a thank-you is never shown for an answer that could still be lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from palaute_wire.contract import (
    BurstRule,
    EventFlag,
    FeedbackEvent,
    FollowupQuestion,
    Lang,
    StationConfig,
)
from palaute_wire.opening_hours import is_open, is_public_holiday

from .feedback import Recorder

_LOGGER = logging.getLogger(__name__)


class BurstDetector:
    """Sliding-window counter of presses; says whether the newest one is in a burst."""

    def __init__(self, rule: BurstRule, clock: Callable[[], float] = time.monotonic) -> None:
        self.rule = rule
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def observe(self) -> bool:
        """Count one press now; True when it is press number max_presses+1 or later in the window."""
        now = self._clock()
        with self._lock:
            times = self._times
            times.append(now)
            while times and now - times[0] > self.rule.window_s:
                times.popleft()
            return len(times) > self.rule.max_presses


@dataclass(frozen=True)
class Answer:
    """A stored smiley answer, as listeners (the UI, the LEDs) see it."""

    event: FeedbackEvent
    source: str
    """"touch", "button" or "simulate": for logs and the staff test only."""
    followup: FollowupQuestion | None
    """The follow-up question to ask next, if the survey has one for this smiley."""


AnswerListener = Callable[[Answer], None]


class AnswerDesk:
    """Owns the counting rules and the current language; hands events to the Recorder.

    Thread-safe: gpiozero calls :meth:`smiley` from its own thread, the UI from
    Kivy's main thread. Listeners run in the caller's thread; the UI hops to
    its own thread itself.
    """

    def __init__(
        self,
        recorder: Recorder,
        config: StationConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.recorder = recorder
        self._clock = clock
        self._now = now
        self._config = config
        self._burst = BurstDetector(config.burst, clock)
        self.lang: Lang = config.default_lang
        self.listeners: list[AnswerListener] = []
        self.config_listeners: list[Callable[[StationConfig], None]] = []
        """Told after a new station config is applied (the UI redraws texts and notes)."""
        self.unrecorded_listeners: list[Callable[[int, str], None]] = []
        """Told (value, source) when a press could not be recorded at all: the UI still thanks the
        patient (a storage problem is staff's business, shown on the staff screen and in status)."""
        self.divert: Callable[[int, str], None] | None = None
        """While set (the staff screen's button test), smiley presses go here and are NOT stored."""
        recorder.survey_version = config.survey_version
        self._load_holidays()

    # -- configuration ---------------------------------------------------------

    @property
    def config(self) -> StationConfig:
        return self._config

    def set_config(self, config: StationConfig) -> None:
        """Apply a new station config (from the fleet server); the burst window restarts."""
        self._config = config
        self._burst = BurstDetector(config.burst, self._clock)
        self.recorder.survey_version = config.survey_version
        if self.lang not in config.languages:
            self.lang = config.default_lang
        self._load_holidays()
        _LOGGER.info("station config v%s applied", config.config_version)
        for listener in list(self.config_listeners):
            try:
                listener(config)
            except Exception:
                _LOGGER.exception("config listener failed")

    def reset_lang(self) -> None:
        """Back to the station's default language (after idle: the next patient starts fresh)."""
        self.lang = self._config.default_lang

    def is_open(self, when: datetime | None = None) -> bool:
        """Open by the station's hours; open when they cannot be read (never lose or hide an answer)."""
        try:
            return is_open(self._config.opening_hours, when or self._now())
        except Exception:
            _LOGGER.exception("opening hours %r unreadable: taken as open", self._config.opening_hours)
            return True

    def _load_holidays(self) -> None:
        """Read this year's public holidays now, not during a patient's first press."""
        hours = self._config.opening_hours
        if hours is not None and hours.days and not hours.open_on_public_holidays:
            is_public_holiday(self._now().date())

    def followup_for(self, value: int) -> FollowupQuestion | None:
        for question in self._config.survey.followups:
            if value in question.for_values:
                return question
        return None

    # -- answers -----------------------------------------------------------------

    def smiley(self, value: int, *, source: str = "touch") -> Answer | None:
        """Store one smiley press (1..4) with its flags and tell the listeners.

        Returns None while the staff button test diverts presses, or when the
        press could not be recorded (``unrecorded_listeners`` are told then).
        """
        divert = self.divert
        if divert is not None:
            divert(value, source)
            return None
        flags: list[EventFlag] = []
        if self._burst.observe():
            flags.append("burst")
        if not self.is_open():
            flags.append("out_of_hours")
        try:
            event = self.recorder.record(
                "smiley", value, question_id=self._config.survey.question_id, lang=self.lang, flags=flags
            )
        except Exception:
            # The outbox holds answers in memory through disk errors, so this is a bug or a bad
            # value; either way it must not reach Kivy's touch handler or gpiozero's thread.
            _LOGGER.exception("smiley %s from %s was not recorded", value, source)
            for listener in list(self.unrecorded_listeners):
                try:
                    listener(value, source)
                except Exception:
                    _LOGGER.exception("unrecorded listener failed")
            return None
        if flags:
            _LOGGER.info("smiley %s stored with flags %s (seq=%s)", value, ",".join(flags), event.seq)
        answer = Answer(event, source, self.followup_for(value))
        self._tell(answer)
        return answer

    def followup(self, question_id: str, option_id: str, *, answer_to: UUID) -> FeedbackEvent | None:
        """Store the follow-up option chosen after the smiley ``answer_to``; None if it could not be."""
        flags: tuple[EventFlag, ...] = () if self.is_open() else ("out_of_hours",)
        try:
            return self.recorder.record(
                "followup", option_id, question_id=question_id, lang=self.lang, answer_to=answer_to, flags=flags
            )
        except Exception:
            _LOGGER.exception("follow-up %s/%s was not recorded", question_id, option_id)
            return None

    def _tell(self, answer: Answer) -> None:
        for listener in list(self.listeners):
            try:
                listener(answer)
            except Exception:  # a broken screen or LED must not undo a stored answer
                _LOGGER.exception("answer listener failed for seq=%s", answer.event.seq)
