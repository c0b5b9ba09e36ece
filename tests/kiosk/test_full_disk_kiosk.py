"""The whole kiosk runtime on a full 512 KiB disk: presses are kept, status says so, recovery is automatic."""

from __future__ import annotations

import pytest

from kiosk.app import Kiosk
from tests.support.kiosk_support import Subscriber, kiosk_config
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker


def test_button_presses_on_a_full_disk_reach_the_broker_once_space_returns(broker, mock_pins, small_disk, tmp_path):
    config = kiosk_config(tmp_path, broker.url, outbox={"path": str(small_disk.path / "outbox.db")})
    with Subscriber(broker.port) as sub, Kiosk(config, clock_synced_override=True) as kiosk:
        kiosk.start()
        button = mock_pins.pin(kiosk.pinmap.buttons[3])

        def press() -> None:
            button.drive_low()
            button.drive_high()

        press()
        wait_until(lambda: len(sub.event_ids()) == 1, 20, "the first press at the broker")
        small_disk.fill()
        for _ in range(200):  # the WAL may still take a few; then the disk refuses
            press()
            if kiosk.outbox.stats().held:
                break
        press()
        status = wait_until(lambda: (s := sub.last_status()) and s.get("storage_error") and s, 20,
                            "storage_error in the retained status")
        assert status["storage_error"].startswith("disk_full:")
        last = kiosk.outbox.stats().last_seq
        small_disk.free()
        wait_until(lambda: len(sub.event_ids()) == last, 30, "every press delivered after space returned")
        wait_until(lambda: not (sub.last_status() or {}).get("storage_error"), 20, "storage_error cleared")
        assert kiosk.outbox.stats().shed_count == 0
