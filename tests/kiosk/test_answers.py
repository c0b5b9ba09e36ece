"""The counting rules of kiosk.answers, against a real SQLite outbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kiosk.answers import AnswerDesk, is_open
from kiosk.feedback import Recorder
from kiosk.outbox import Outbox
from palaute_wire.contract import (
    BurstRule,
    FollowupOption,
    FollowupQuestion,
    OpeningHours,
    StationConfig,
    Survey,
)

T = {"fi": "x", "sv": "x", "en": "x"}


def station(**kw) -> StationConfig:
    survey = Survey(
        question={"fi": "Miten käynti meni?", "sv": "Hur gick besöket?", "en": "How was your visit?"},
        followups=(
            FollowupQuestion(
                id="what-wrong",
                for_values=(1, 2),
                text=T,
                options=tuple(FollowupOption(id=o, text=T) for o in ("waiting", "staff", "info")),
            ),
        ),
    )
    kw.setdefault("config_version", 1)
    return StationConfig(station_id="kalvia", survey=survey, **kw)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def outbox(tmp_path):
    with Outbox(tmp_path / "outbox.db") as box:
        yield box


def stored(outbox: Outbox) -> list[dict]:
    return [json.loads(p.payload) for p in outbox.pending(1000)]


def make_desk(outbox, config=None, clock=None, now=None) -> AnswerDesk:
    recorder = Recorder(outbox, "kalvia", "kiosk-1")
    kw = {}
    if now is not None:
        kw["now"] = now
    return AnswerDesk(recorder, config or station(), clock=clock or FakeClock(), **kw)


def test_presses_beyond_the_burst_limit_are_stored_flagged_never_dropped(outbox):
    clock = FakeClock()
    desk = make_desk(outbox, station(burst=BurstRule(max_presses=3, window_s=10)), clock)
    for _ in range(6):
        desk.smiley(4, source="button")
        clock.t += 0.5
    events = stored(outbox)
    assert len(events) == 6
    assert [e["flags"] for e in events] == [[], [], [], ["burst"], ["burst"], ["burst"]]


def test_presses_spread_out_beyond_the_window_are_not_a_burst(outbox):
    clock = FakeClock()
    desk = make_desk(outbox, station(burst=BurstRule(max_presses=2, window_s=5)), clock)
    for _ in range(5):
        desk.smiley(3)
        clock.t += 6
    assert all(e["flags"] == [] for e in stored(outbox))


def test_touch_and_button_presses_count_towards_the_same_burst(outbox):
    clock = FakeClock()
    desk = make_desk(outbox, station(burst=BurstRule(max_presses=2, window_s=10)), clock)
    desk.smiley(1, source="touch")
    desk.smiley(2, source="button")
    third = desk.smiley(3, source="touch")
    assert third.event.flags == ("burst",)


def test_out_of_hours_presses_are_flagged_and_counted(outbox):
    hours = OpeningHours(days={"mon": ("08:00", "16:00")})
    # Monday 2026-11-30 17:30 in Helsinki (UTC+2) = 15:30 UTC: closed.
    closed = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)
    desk = make_desk(outbox, station(opening_hours=hours), now=lambda: closed)
    answer = desk.smiley(2)
    desk.followup("what-wrong", "waiting", answer_to=answer.event.event_id)
    assert [e["flags"] for e in stored(outbox)] == [["out_of_hours"], ["out_of_hours"]]


def test_opening_hours_use_station_local_time():
    hours = OpeningHours(timezone="Europe/Helsinki", days={"mon": ("08:00", "16:00")})
    assert is_open(hours, datetime(2026, 11, 30, 6, 0, tzinfo=UTC))  # 08:00 local
    assert not is_open(hours, datetime(2026, 11, 30, 5, 59, tzinfo=UTC))
    assert not is_open(hours, datetime(2026, 11, 30, 14, 0, tzinfo=UTC))  # 16:00 closes
    assert not is_open(hours, datetime(2026, 12, 1, 8, 0, tzinfo=UTC))  # tuesday: no hours
    assert is_open(None, datetime(2026, 12, 6, 3, 0, tzinfo=UTC))


def test_smiley_offers_the_followup_for_its_value_and_links_the_answer(outbox):
    desk = make_desk(outbox)
    unhappy = desk.smiley(1)
    happy = desk.smiley(4)
    assert unhappy.followup.id == "what-wrong"
    assert happy.followup is None
    desk.followup("what-wrong", "staff", answer_to=unhappy.event.event_id)
    last = stored(outbox)[-1]
    assert last["kind"] == "followup" and last["value"] == "staff"
    assert last["answer_to"] == str(unhappy.event.event_id)


def test_events_carry_the_current_language_until_reset(outbox):
    desk = make_desk(outbox)
    desk.lang = "sv"
    desk.smiley(3)
    desk.reset_lang()
    desk.smiley(3)
    assert [e["lang"] for e in stored(outbox)] == ["sv", "fi"]


def test_listeners_hear_only_after_the_event_is_durable(outbox):
    desk = make_desk(outbox)
    seen = []
    desk.listeners.append(lambda a: seen.append(outbox.stats().last_seq == a.event.seq))
    desk.smiley(4)
    assert seen == [True]


def test_a_failing_listener_does_not_lose_the_answer(outbox):
    desk = make_desk(outbox)
    desk.listeners.append(lambda a: 1 / 0)
    assert desk.smiley(2) is not None
    assert len(stored(outbox)) == 1


def test_staff_button_test_diverts_presses_without_storing(outbox):
    desk = make_desk(outbox)
    tested = []
    desk.divert = lambda value, source: tested.append(value)
    assert desk.smiley(3, source="button") is None
    desk.divert = None
    desk.smiley(3, source="button")
    assert tested == [3] and len(stored(outbox)) == 1


def test_new_config_changes_the_rule_and_survey_version(outbox):
    clock = FakeClock()
    desk = make_desk(outbox, station(burst=BurstRule(max_presses=1, window_s=10)), clock)
    desk.smiley(4)
    desk.set_config(station(burst=BurstRule(max_presses=10, window_s=10), survey_version=7, config_version=2))
    desk.smiley(4)
    desk.smiley(4)
    events = stored(outbox)
    assert [e["flags"] for e in events] == [[], [], []]
    assert events[-1]["survey_version"] == 7


def test_headless_runtime_buttons_go_through_the_same_counting_rules(tmp_path):
    """kiosk.app.Kiosk without a screen: hammering a physical button is stored, flagged burst."""
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    from kiosk.app import Kiosk
    from tests.support.kiosk_support import kiosk_config

    saved = Device.pin_factory
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    try:
        with Kiosk(kiosk_config(tmp_path, "mqtt://127.0.0.1:9")) as kiosk:  # no broker: answers queue up
            kiosk.start()
            pin = Device.pin_factory.pin(kiosk.pinmap.buttons[1])
            for _ in range(7):
                pin.drive_low()
                pin.drive_high()
            events = stored(kiosk.outbox)
    finally:
        Device.pin_factory.reset()
        Device.pin_factory = saved
    limit = kiosk.desk.config.burst.max_presses
    assert len(events) == 7
    assert [e["flags"] for e in events] == [[]] * limit + [["burst"]] * (7 - limit)


def test_a_press_is_stored_whatever_the_opening_hours_hold(outbox):
    """A zone the contract would refuse (here slipped past it) must not cost the answer."""
    broken = OpeningHours.model_construct(timezone="Europe/Helsinkii", days={"mon": ("08:00", "16:00")},
                                          open_on_public_holidays=None)
    config = station().model_copy(update={"opening_hours": broken})
    desk = make_desk(outbox, config, now=lambda: datetime(2026, 11, 30, 7, 0, tzinfo=UTC))
    answer = desk.smiley(1)
    assert answer is not None
    desk.followup("what-wrong", "staff", answer_to=answer.event.event_id)
    assert [(e["kind"], e["value"], e.get("flags", [])) for e in stored(outbox)] == [
        ("smiley", 1, []), ("followup", "staff", []),
    ]


def test_a_public_holiday_is_a_closed_day_unless_the_station_opens_on_holidays(outbox):
    christmas_eve_10 = datetime(2026, 12, 24, 8, 0, tzinfo=UTC)  # a Thursday, 10:00 local
    days = {"thu": ("08:00", "16:00")}
    closed = make_desk(outbox, station(opening_hours=OpeningHours(days=days)), now=lambda: christmas_eve_10)
    closed.smiley(4)
    opens = OpeningHours(days=days, open_on_public_holidays=True)
    make_desk(outbox, station(opening_hours=opens), now=lambda: christmas_eve_10).smiley(4)
    assert [e.get("flags", []) for e in stored(outbox)] == [["out_of_hours"], []]
