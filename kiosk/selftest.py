"""``palaute-kiosk selftest``: IT checks a freshly assembled kiosk over SSH, no screen needed.

It walks through every part in the pin map: each answer LED (and the status
LED) lights in turn and IT says whether they saw it; then IT presses each
button when asked and the test checks that exactly that button's pin
answered (a swapped wire shows up as "you pressed 3, expected 2").

Nothing is recorded as feedback: the self-test talks to the pins only.
The kiosk service must be stopped first (the pins can have one owner).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from gpiozero import PWMLED, Button
from gpiozero.exc import GPIOZeroError

from palaute_wire.contract import SMILEY_VALUES

from .pinmap import PinMap

_LOGGER = logging.getLogger(__name__)

COLOURS = {1: "red", 2: "orange", 3: "light green", 4: "green"}
"""The face colour of each answer, so IT can tell which button is meant."""


@dataclass
class Check:
    part: str
    ok: bool
    detail: str = ""


@dataclass
class SelftestReport:
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def summary(self) -> str:
        lines = [f"{'OK  ' if c.ok else 'FAIL'}  {c.part}{': ' + c.detail if c.detail else ''}" for c in self.checks]
        failed = sum(not c.ok for c in self.checks)
        lines.append("All parts work." if self.ok else f"{failed} part(s) need attention; see docs in hardware/.")
        return "\n".join(lines)


def _name(value: int) -> str:
    return f"button {value} ({SMILEY_VALUES[value]}, {COLOURS[value]})"


def run_selftest(
    pinmap: PinMap,
    *,
    ask: Callable[[str], str] = input,
    say: Callable[[str], None] = print,
    press_timeout_s: float = 30.0,
    bounce_time_s: float | None = 0.05,
    pin_factory=None,
) -> SelftestReport:
    """Walk IT through every LED and button; return what worked. Raises nothing for a bad part."""
    report = SelftestReport()
    try:
        leds = {v: PWMLED(p, pin_factory=pin_factory) for v, p in sorted(pinmap.leds.items())}
        status = PWMLED(pinmap.status_led, pin_factory=pin_factory) if pinmap.status_led is not None else None
        buttons = {
            v: Button(p, pull_up=True, bounce_time=bounce_time_s, pin_factory=pin_factory)
            for v, p in sorted(pinmap.buttons.items())
        }
        listen = (
            Button(pinmap.listen_button, pull_up=True, bounce_time=bounce_time_s, pin_factory=pin_factory)
            if pinmap.listen_button is not None else None
        )
    except GPIOZeroError as exc:
        say(f"Cannot use the GPIO pins: {exc}")
        say("Is the kiosk service running? Stop it first: sudo systemctl stop palaute-kiosk")
        report.checks.append(Check("GPIO", False, str(exc)))
        return report
    devices = [*leds.values(), status, *buttons.values(), listen]
    try:
        say(f"Pin map: {pinmap.source}")
        say("Part 1: lights. Answer y (yes) or n (no).")
        for value, led in leds.items():
            report.checks.append(_check_led(f"light {value} ({COLOURS[value]}, GPIO{pinmap.leds[value]})", led, ask))
        if status is not None:
            report.checks.append(_check_led(f"status light (GPIO{pinmap.status_led})", status, ask))
        say(f"Part 2: buttons. Press each button when asked ({press_timeout_s:.0f} s each).")
        named = {v: _name(v) for v in buttons}
        if listen is not None:
            buttons = {**buttons, 5: listen}
            named[5] = "the listen button"
        for value in buttons:
            pin = pinmap.buttons.get(value, pinmap.listen_button)
            report.checks.append(
                _check_button(value, f"{named[value]} (GPIO{pin})", buttons, named, leds.get(value), say,
                              press_timeout_s)
            )
    finally:
        for device in devices:
            if device is not None:
                device.close()
    say(report.summary())
    return report


def _check_led(part: str, led: PWMLED, ask: Callable[[str], str]) -> Check:
    led.on()
    try:
        answer = ask(f"Is the {part} on? [y/n] ").strip().lower()
    finally:
        led.off()
    ok = answer.startswith(("y", "k", "j"))  # yes / kyllä / ja
    return Check(part, ok, "" if ok else "not seen: check the LED's polarity, resistor and wire")


def _check_button(value, part, buttons, named, led, say, timeout_s) -> Check:
    pressed: list[int] = []
    event = threading.Event()
    def heard(value: int) -> None:
        pressed.append(value)
        event.set()

    for other, button in buttons.items():
        button.when_pressed = lambda _d, v=other: heard(v)
    say(f"Press {named[value]} now.")
    event.wait(timeout_s)
    for button in buttons.values():
        button.when_pressed = None
    if not pressed:
        return Check(part, False, f"no press within {timeout_s:.0f} s: check the switch and its two wires")
    if pressed[0] != value:
        return Check(part, False, f"got {named[pressed[0]]} instead: are two wires swapped?")
    if led is not None:
        led.blink(on_time=0.2, off_time=0.1, n=2, background=True)
    say("  OK")
    return Check(part, True)
