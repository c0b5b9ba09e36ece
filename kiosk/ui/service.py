"""The service screen: what the display shows when kiosk.toml is invalid, instead of black.

Why a screen and not only the exit message: the message goes to the journal,
which nobody at the health station reads; a black kiosk looks switched off.
The screen says, in Finnish, Swedish and English, that the kiosk is out of
order and names the file and field that are wrong (kiosk.config's message).
It checks the file again every ``RECHECK_S``; once it is valid the process
exits with the restart status (75), and systemd starts the kiosk normally.
It pings the systemd watchdog meanwhile, so it is not killed as hung.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import BooleanProperty, NumericProperty, StringProperty

from ..i18n import LANGUAGES, Translator, default_translator
from .texts import N_

_LOGGER = logging.getLogger(__name__)

RECHECK_S = 5.0
RESTART_EXIT_CODE = 75
"""The same status as kiosk.app's restart command: systemd's RestartForceExitStatus."""

OUT_OF_ORDER = N_("This kiosk is out of order.")
FOR_STAFF = N_("Staff: the settings file has an error. Tell IT support.")

KV = """
#:import theme kiosk.ui.theme
<ServiceRoot@BoxLayout>:
    orientation: "vertical"
    padding: 30 * app.u, 24 * app.u
    spacing: 10 * app.u
    canvas.before:
        Color:
            rgba: theme.BACKGROUND
        Rectangle:
            pos: self.pos
            size: self.size
    Label:
        id: headline
        text: app.headline
        font_size: 30 * app.u
        bold: True
        color: theme.WARNING
        halign: "center"
        text_size: self.width, None
        size_hint_y: None
        height: self.texture_size[1]
    Label:
        id: staff
        text: app.staff_text
        font_size: 20 * app.u
        color: theme.WHITE
        halign: "center"
        text_size: self.width, None
        size_hint_y: None
        height: self.texture_size[1]
    Label:
        id: error
        text: app.error
        font_name: "DejaVuSans"
        font_size: 18 * app.u
        color: theme.MUTED
        halign: "left"
        valign: "top"
        text_size: self.width, None
        size_hint_y: None
        height: self.texture_size[1]
    Widget:
ServiceRoot:
"""


class ServiceApp(App):
    """Shows ``error`` until ``still_wrong()`` returns None (the file was fixed)."""

    u = NumericProperty(1.0)
    portrait = BooleanProperty(False)
    survey_url = StringProperty("")
    """No QR code here; the kiosk screens' shared kv rules read it (as they read ``u``)."""
    error = StringProperty("")
    headline = StringProperty("")
    staff_text = StringProperty("")

    def __init__(self, error: str, still_wrong: Callable[[], str | None], *, tick: Callable[[], None] = lambda: None,
                 translator: Translator | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.title = "Palaute"
        self.error = error
        self.still_wrong = still_wrong
        self.tick = tick
        self.exit_code = 2
        tr = translator or default_translator()
        self.headline = "\n".join(tr.gettext(OUT_OF_ORDER, lang) for lang in LANGUAGES)
        self.staff_text = "\n".join(tr.gettext(FOR_STAFF, lang) for lang in LANGUAGES)

    def build(self):
        return Builder.load_string(KV)

    def on_start(self) -> None:
        Window.bind(size=self._rescale)
        self._rescale(Window, Window.size)
        self._check = Clock.schedule_interval(lambda _dt: self.recheck(), RECHECK_S)

    def on_stop(self) -> None:
        self._check.cancel()
        Window.unbind(size=self._rescale)

    def _rescale(self, _window, size) -> None:
        self.portrait = size[1] > size[0]
        ref = (480, 800) if self.portrait else (800, 480)
        self.u = max(0.5, min(size[0] / ref[0], size[1] / ref[1]))

    def recheck(self) -> bool:
        """True (and the app stops with the restart status) once the config is valid."""
        self.tick()
        problem = self.still_wrong()
        if problem is None:
            _LOGGER.info("the kiosk config is valid now; restarting")
            self.exit_code = RESTART_EXIT_CODE
            self.stop()
            return True
        self.error = problem
        return False


def run_service_screen(path: Path, error: str, *, fullscreen: bool = True) -> int:
    """Show the service screen for the invalid config at ``path``; returns the exit status."""
    import os

    from ..config import ConfigError, load_config
    from ..watchdog import SystemdNotifier
    from .run import configure_kivy

    configure_kivy(fullscreen=fullscreen)
    notifier = SystemdNotifier.from_environ(os.environ)

    def still_wrong() -> str | None:
        try:
            load_config(path)
        except ConfigError as exc:
            return str(exc)
        return None

    app = ServiceApp(error, still_wrong, tick=notifier.tick)
    notifier.tick()
    app.run()
    notifier.stopping()
    return app.exit_code
