"""The UI on the real kiosk runtime (kiosk.app.Kiosk): MockFactory buttons, a private Mosquitto."""

from __future__ import annotations

import pytest

from kiosk.app import Kiosk
from kiosk.config import UISection
from kiosk.ui.run import staff_info_source
from tests.support.kiosk_support import kiosk_config
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.ui, pytest.mark.broker]


def test_button_press_on_the_runtime_shows_followup_and_reaches_the_broker(make_kiosk, broker, mock_pins, tmp_path):
    config = kiosk_config(tmp_path, broker.url)
    with Kiosk(config) as kiosk:
        kiosk.start()
        k = make_kiosk(desk=kiosk.desk, ui=UISection(staff_pin="2468", thanks_s=0.3),
                       lights=kiosk.buttons, staff_info=staff_info_source(kiosk, kiosk.desk))
        pin = mock_pins.pin(kiosk.pinmap.buttons[4])
        pin.drive_low()
        pin.drive_high()
        k.wait_screen("followup")
        assert kiosk.buttons.leds[4].value == 1, "the pressed answer's light confirms it"
        k.app.skip_followup()
        k.wait_screen("thanks")
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0 and kiosk.uplink.snapshot().last_ack_at, 20,
                   "the press acknowledged by the broker")
        info = staff_info_source(kiosk, kiosk.desk)()
        assert info.connected and info.queue_depth == 0 and info.last_send is not None
        assert k.stored() == [], "acknowledged events are no longer pending"
