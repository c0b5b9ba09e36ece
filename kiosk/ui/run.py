"""Start the touch UI on a built :class:`kiosk.app.Kiosk` (``palaute-kiosk`` UI mode).

Why here and not in kiosk.app: Kivy must be configured (fullscreen, no argv
parsing, no console log flood) *before* it is first imported, and only the UI
mode may import it at all. This function is the one place that happens.

Threads: Kivy owns the main thread; the uplink runs on its own thread and
gpiozero calls button presses on its thread. Both reach the screen only
through AnswerDesk listeners, which hop onto Kivy's clock.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .staffinfo import StaffInfo

if TYPE_CHECKING:
    from ..answers import AnswerDesk

_LOGGER = logging.getLogger(__name__)


def configure_kivy(*, fullscreen: bool, size: tuple[int, int] | None = None, rotation: int = 0) -> None:
    """Kivy's process-wide settings; must run before anything imports kivy."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")  # the CLI already logs to stderr (journald): no duplicates
    from kivy.config import Config

    Config.set("kivy", "exit_on_escape", "0")
    Config.set("graphics", "fullscreen", "auto" if fullscreen else "0")
    Config.set("graphics", "show_cursor", "0" if fullscreen else "1")
    # Kivy turns the picture and maps touches with it, whatever the video driver (KMS/DRM too).
    Config.set("graphics", "rotation", str(rotation))
    if size is not None:
        Config.set("graphics", "width", str(size[0]))
        Config.set("graphics", "height", str(size[1]))


def staff_info_source(kiosk, desk: AnswerDesk):
    def info() -> StaffInfo:
        snap = kiosk.snapshot()
        last = snap.uplink.last_ack_at
        return StaffInfo(
            device_id=snap.device_id,
            station_id=snap.station_id,
            station_name=desk.config.station_name,
            broker=kiosk.config.broker.url,
            connected=snap.uplink.connected,
            queue_depth=snap.outbox.queue_depth,
            last_send=datetime.fromtimestamp(last, UTC) if last else None,
            version=snap.software_version or "",
            clock_synced=bool(snap.clock_synced),
            config_version=snap.uplink.config_version,
            config_error=snap.uplink.config_error,
            refused=snap.uplink.refused,
            next_retry_in_s=snap.uplink.next_retry_in_s,
            storage_error=snap.outbox.storage_error,
            held=snap.outbox.held,
        )

    return info


def run_ui(kiosk, options: dict) -> int:
    """Run the Kivy UI until it is closed or the kiosk is asked to stop; returns the exit code."""
    ui = kiosk.config.ui
    configure_kivy(fullscreen=ui.fullscreen and not options.get("windowed"), size=options.get("size"),
                   rotation=ui.rotation)
    from kivy.clock import Clock

    from .app import KioskApp

    desk = kiosk.desk
    speaker = None
    if ui.audio:
        from ..audio import Speaker, SpeechUnavailable

        try:
            speaker = Speaker()
        except SpeechUnavailable as exc:
            _LOGGER.error("%s; running without speech", exc)
    kiosk.start()
    app = KioskApp(
        desk, ui=ui, staff_info=staff_info_source(kiosk, desk), lights=kiosk.buttons, speaker=speaker
    )
    if speaker is not None:
        kiosk.listen_handler = app.listen

    def watch(_dt) -> None:
        kiosk.tick()
        if kiosk.stopping:
            app.stop()

    Clock.schedule_interval(watch, 1.0)
    try:
        app.run()
    finally:
        if speaker is not None:
            speaker.close()
    if not kiosk.stopping:
        kiosk.request_stop(0)
    return kiosk.exit_code
