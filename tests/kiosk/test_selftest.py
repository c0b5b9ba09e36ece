"""The assembly self-test, driven through gpiozero's MockFactory like IT at the keyboard."""

from __future__ import annotations

import threading

import pytest
from gpiozero import Device
from gpiozero.pins.mock import MockFactory, MockPWMPin

from kiosk.pinmap import load_pinmap
from kiosk.selftest import run_selftest


@pytest.fixture
def pins():
    previous = Device.pin_factory
    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    yield Device.pin_factory
    Device.pin_factory.reset()
    Device.pin_factory = previous


def scripted_it(pins, pinmap, press_map=None, lights_seen=True):
    """An IT person: presses what is asked (or what press_map says) and reports the lights."""
    press_map = press_map or {}
    lit: list[int] = []

    def ask(prompt: str) -> str:
        on = [p for p in [*pinmap.leds.values(), pinmap.status_led] if pins.pin(p).state > 0]
        lit.extend(on)
        return "y" if lights_seen and len(on) == 1 else "n"

    def say(message: str) -> None:
        if message.startswith("Press "):
            value = 5 if "listen" in message else int(message.split()[2])
            target = press_map.get(value, value)
            pin = pinmap.listen_button if target == 5 else pinmap.buttons[target]

            def press():
                pins.pin(pin).drive_low()
                pins.pin(pin).drive_high()

            threading.Timer(0.01, press).start()

    return ask, say, lit


def test_selftest_passes_when_every_light_and_button_works(pins):
    pinmap = load_pinmap()
    ask, say, lit = scripted_it(pins, pinmap)
    report = run_selftest(pinmap, ask=ask, say=say, press_timeout_s=2, bounce_time_s=None)
    assert report.ok, report.summary()
    assert lit == [*pinmap.leds.values(), pinmap.status_led], "each LED lit alone, in order"
    assert len(report.checks) == 4 + 1 + 4 + 1


def test_selftest_finds_swapped_button_wires(pins):
    pinmap = load_pinmap()
    ask, say, _ = scripted_it(pins, pinmap, press_map={2: 3, 3: 2})
    report = run_selftest(pinmap, ask=ask, say=say, press_timeout_s=2, bounce_time_s=None)
    failed = [c for c in report.checks if not c.ok]
    assert [c.part.split(" (")[0] for c in failed] == ["button 2", "button 3"]
    assert "swapped" in failed[0].detail


def test_selftest_reports_a_dead_light_and_a_dead_button(pins):
    pinmap = load_pinmap()
    ask, _, _ = scripted_it(pins, pinmap, lights_seen=False)
    report = run_selftest(pinmap, ask=ask, say=lambda m: None, press_timeout_s=0.05, bounce_time_s=None)
    assert not report.ok
    assert all(not c.ok for c in report.checks)
    assert "no press" in report.checks[-1].detail
