"""An invalid kiosk.toml shows a service screen naming the field, not a black screen."""

from __future__ import annotations

import pytest

from kiosk.config import ConfigError, load_config
from tests.kiosk.ui.conftest import ARTIFACTS
from tests.support.kiosk_support import kiosk_raw, write_toml

pytestmark = pytest.mark.ui


def test_invalid_config_shows_the_field_on_screen_and_restarts_once_fixed(tmp_path, make_kiosk):
    from kivy.app import App
    from kivy.base import EventLoop
    from kivy.core.window import Window

    from kiosk.ui.service import RESTART_EXIT_CODE, ServiceApp

    path = write_toml(tmp_path / "kiosk.toml", kiosk_raw(tmp_path, "tcp://127.0.0.1:1883"))
    with pytest.raises(ConfigError) as bad:
        load_config(path)

    def still_wrong():
        try:
            load_config(path)
        except ConfigError as exc:
            return str(exc)
        return None

    ticks = []
    EventLoop.ensure_window()
    Window.size = (800, 480)
    app = ServiceApp(str(bad.value), still_wrong, tick=lambda: ticks.append(1))
    EventLoop.idle()
    app._run_prepare()
    try:
        for _ in range(3):
            EventLoop.idle()
        ids = app.root.ids
        assert "[broker] url: must start with mqtt:// or mqtts://" in ids.error.text
        assert ids.headline.text.splitlines() == [
            "Tämä palautelaite ei ole nyt käytössä.", "Den här responsenheten är inte i bruk just nu.",
            "This kiosk is out of order."]
        app.error = ids.error.text.replace(str(path), "/etc/palaute/kiosk.toml")  # the same picture every run
        EventLoop.idle()
        app.root.export_to_png(str(ARTIFACTS / "service.png"))
        assert app.recheck() is False and app.exit_code == 2 and ticks, "still wrong: stays, pings the watchdog"
        write_toml(path, kiosk_raw(tmp_path, "mqtt://127.0.0.1:1883"))
        assert app.recheck() is True and app.exit_code == RESTART_EXIT_CODE
    finally:
        app.dispatch("on_stop")
        for child in list(Window.children):
            Window.remove_widget(child)
        App._running_app = None


def test_the_kiosk_process_stays_on_the_service_screen_until_the_config_is_fixed(tmp_path):
    """`palaute-kiosk` (UI mode) with a bad kiosk.toml: no exit to a black screen; exit 75 (restart) once fixed."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    cli = str(Path(sys.executable).with_name("palaute-kiosk"))
    path = write_toml(tmp_path / "kiosk.toml", kiosk_raw(tmp_path, "tcp://127.0.0.1:1883"))
    with (tmp_path / "kiosk.log").open("wb") as log:
        proc = subprocess.Popen([cli, "--config", str(path), "--windowed"], stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while b"must start with mqtt://" not in (tmp_path / "kiosk.log").read_bytes():
                assert proc.poll() is None, (tmp_path / "kiosk.log").read_text()
                assert time.monotonic() < deadline, "no error message"
                time.sleep(0.2)
            time.sleep(1.5)  # the old CLI exited right after the message
            assert proc.poll() is None, "the process left the screen black"
            write_toml(path, kiosk_raw(tmp_path, "mqtt://127.0.0.1:1883"))
            assert proc.wait(timeout=30) == 75
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
