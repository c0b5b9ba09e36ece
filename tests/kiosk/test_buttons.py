"""A physical press becomes exactly one stored event and lights its LED."""

import subprocess
import sys

import pytest

from kiosk.buttons import ButtonPanel
from kiosk.feedback import Recorder
from kiosk.outbox import Outbox
from kiosk.pinmap import load_pinmap
from tests.support.waiting import wait_until


@pytest.fixture
def outbox(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        yield box


def _panel(outbox, **kw):
    rec = Recorder(outbox, station_id="kalvia", device_id="kalvia-1")
    pinmap = load_pinmap()
    panel = ButtonPanel(pinmap, lambda v: rec.record("smiley", v, question_id="visit", lang="fi"), **kw)
    return panel, pinmap


def test_press_becomes_exactly_one_stored_event_and_lights_its_led(mock_pins, outbox):
    panel, pinmap = _panel(outbox, confirm_s=30)
    with panel:
        pin = mock_pins.pin(pinmap.buttons[3])
        pin.drive_low()
        pin.drive_high()
        assert [p.seq for p in outbox.pending(10)] == [1]
        assert b'"value":3' in outbox.pending(10)[0].payload
        assert panel.leds[3].value == 1
        assert all(panel.leds[v].value == 0 for v in (1, 2, 4))


def test_confirmation_light_goes_out_after_confirm_time(mock_pins, outbox):
    panel, pinmap = _panel(outbox, confirm_s=0.05)
    with panel:
        mock_pins.pin(pinmap.buttons[1]).drive_low()
        mock_pins.pin(pinmap.buttons[1]).drive_high()
        wait_until(lambda: panel.leds[1].value == 0, 5, "LED 1 to go out")
        assert any(state.state == 1 for state in mock_pins.pin(pinmap.leds[1]).states)


def test_failed_recording_leaves_the_led_dark(mock_pins):
    pinmap = load_pinmap()

    def broken(value):
        raise OSError("disk full")

    with ButtonPanel(pinmap, broken) as panel:
        mock_pins.pin(pinmap.buttons[4]).drive_low()
        mock_pins.pin(pinmap.buttons[4]).drive_high()
        assert panel.leds[4].value == 0


def test_status_led_is_steady_when_connected_and_blinks_when_offline(mock_pins):
    pinmap = load_pinmap()
    with ButtonPanel(pinmap, lambda v: None) as panel:
        status_pin = mock_pins.pin(pinmap.status_led)
        wait_until(lambda: {s.state for s in status_pin.states} >= {0, 1}, 5, "status LED to blink")
        panel.set_connected(True)
        assert panel.status_led.value == 1 and panel.status_led.is_lit


def test_close_is_idempotent_and_releases_the_pins(mock_pins, outbox):
    panel, _pinmap = _panel(outbox)
    panel.close()
    panel.close()
    again, _ = _panel(outbox)  # the same pins can be claimed again
    again.close()


def test_listen_button_calls_its_handler(mock_pins):
    pinmap = load_pinmap()
    heard = []
    with ButtonPanel(pinmap, lambda v: None, on_listen=lambda: heard.append(1)):
        mock_pins.pin(pinmap.listen_button).drive_low()
        mock_pins.pin(pinmap.listen_button).drive_high()
    assert heard == [1]


def test_importing_kiosk_modules_touches_no_hardware():
    code = (
        "import kiosk.app, kiosk.buttons, kiosk.uplink, kiosk.simulate, kiosk.cli, kiosk.health\n"
        "from gpiozero import Device\n"
        "assert Device.pin_factory is None, Device.pin_factory\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
