"""The physical smiley buttons and their lights, through gpiozero.

Why gpiozero's pin factory is the only seam: the same code drives real pins on a
Pi (lgpio), MockFactory pins in tests and in ``--simulate``, and nothing here
knows which. Devices are made when a :class:`ButtonPanel` is built, never at
import, with whatever ``Device.pin_factory`` is current (or the one passed in).

A press calls ``on_press(value)`` once, in gpiozero's callback thread (the same
thread as ``drive_low()`` with MockFactory). When the callback returns, the
answer is stored, and only then does its LED light as confirmation: the light
means "your answer counts". A callback that raises leaves the LED dark.

The status LED shows the broker link: steady on = connected, blinking = offline.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Self

from gpiozero import PWMLED, Button

from .pinmap import PinMap

_LOGGER = logging.getLogger(__name__)

OFFLINE_BLINK_S = 0.5
"""Status LED half-period while the broker is unreachable."""

IDENTIFY_BLINK_S = 0.25
"""Half-period of the "identify" blink, fast so it stands out from offline."""


class ButtonPanel:
    """Four smiley buttons, their LEDs and the optional status LED and listen button."""

    def __init__(
        self,
        pinmap: PinMap,
        on_press: Callable[[int], object],
        *,
        bounce_time_s: float | None = 0.05,
        confirm_s: float = 1.5,
        on_listen: Callable[[], object] | None = None,
        pin_factory=None,
    ) -> None:
        self.pinmap = pinmap
        self._on_press = on_press
        self._on_listen = on_listen
        self._confirm_s = confirm_s
        self._lock = threading.Lock()
        self._timers: dict[int, threading.Timer] = {}
        self._connected: bool | None = None
        self._closed = False
        self.buttons: dict[int, Button] = {}
        self.leds: dict[int, PWMLED] = {}
        self.status_led: PWMLED | None = None
        self.listen_button: Button | None = None
        try:
            for value, pin in sorted(pinmap.leds.items()):
                self.leds[value] = PWMLED(pin, pin_factory=pin_factory)
            if pinmap.status_led is not None:
                self.status_led = PWMLED(pinmap.status_led, pin_factory=pin_factory)
            for value, pin in sorted(pinmap.buttons.items()):
                button = Button(pin, pull_up=True, bounce_time=bounce_time_s, pin_factory=pin_factory)
                button.when_pressed = lambda _device, v=value: self._pressed(v)
                self.buttons[value] = button
            if pinmap.listen_button is not None:
                self.listen_button = Button(
                    pinmap.listen_button, pull_up=True, bounce_time=bounce_time_s, pin_factory=pin_factory
                )
                self.listen_button.when_pressed = lambda _device: self._listen()
        except BaseException:
            self.close()
            raise
        self.set_connected(False)

    # -- input ----------------------------------------------------------------

    def _pressed(self, value: int) -> None:
        if self._closed:
            return
        try:
            self._on_press(value)
        except Exception:
            _LOGGER.exception("press of smiley %s was not recorded", value)
            return
        self.confirm(value)

    def _listen(self) -> None:
        if self._on_listen is None or self._closed:
            return
        try:
            self._on_listen()
        except Exception:
            _LOGGER.exception("listen button handler failed")

    # -- lights ---------------------------------------------------------------

    def confirm(self, value: int) -> None:
        """Light one answer's LED for ``confirm_s`` (a new press restarts the time)."""
        led = self.leds.get(value)
        if led is None or self._closed:
            return
        with self._lock:
            old = self._timers.pop(value, None)
            if old is not None:
                old.cancel()
            led.on()
            timer = threading.Timer(self._confirm_s, self._dim, args=(value,))
            timer.daemon = True
            self._timers[value] = timer
            timer.start()

    def _dim(self, value: int) -> None:
        with self._lock:
            if self._closed:
                return
            self._timers.pop(value, None)
            self.leds[value].off()

    def set_connected(self, connected: bool) -> None:
        """Status LED: steady when the broker link is up, blinking when it is not."""
        if self.status_led is None or self._closed or connected == self._connected:
            return
        self._connected = connected
        if connected:
            self.status_led.on()
        else:
            self.status_led.blink(on_time=OFFLINE_BLINK_S, off_time=OFFLINE_BLINK_S, background=True)

    def identify(self, seconds: float = 5.0) -> None:
        """Blink every answer LED so IT can find this kiosk ("identify" command)."""
        if self._closed:
            return
        n = max(1, round(seconds / (2 * IDENTIFY_BLINK_S)))
        for led in self.leds.values():
            led.blink(on_time=IDENTIFY_BLINK_S, off_time=IDENTIFY_BLINK_S, n=n, background=True)

    # -- lifecycle ------------------------------------------------------------

    def close(self) -> None:
        """Release every pin; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()
        devices = [*self.buttons.values(), self.listen_button, *self.leds.values(), self.status_led]
        # Each gpiozero Button's hold thread takes up to ~0.25 s to notice it should
        # stop; closing the devices side by side keeps a shutdown (and a test) quick.
        closers = [
            threading.Thread(target=self._close_device, args=(d,), name="palaute-pin-close")
            for d in devices if d is not None
        ]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join()

    @staticmethod
    def _close_device(device) -> None:
        try:
            device.close()
        except Exception:  # closing must release the rest
            _LOGGER.exception("closing %r failed", device)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
