"""Kivy under Xvfb for the UI tests, isolated from the rest of the suite.

Kivy reads its environment and config when first imported, so this file sets
them before anything imports kivy: no argument parsing (pytest's own), no
console log, a throw-away KIVY_HOME, and the 7" display's 800x480 window.
Without a DISPLAY Kivy would exit the whole pytest process (code 102), so the
UI tests are then not collected, with a loud header line saying why.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_HAS_DISPLAY = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))

os.environ["KIVY_NO_ARGS"] = "1"
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")
_OWN_KIVY_HOME = None if os.environ.get("KIVY_HOME") else tempfile.mkdtemp(prefix="palaute-kivy-home-")
if _OWN_KIVY_HOME is not None:
    os.environ["KIVY_HOME"] = _OWN_KIVY_HOME
elif os.environ.get("PYTEST_XDIST_WORKER"):
    # One KIVY_HOME per worker: Kivy makes its home on import with exists() then mkdir(), so two
    # workers importing it at once into a fresh one raced (FileExistsError, seen once in CI).
    os.environ["KIVY_HOME"] = os.path.join(os.environ["KIVY_HOME"], os.environ["PYTEST_XDIST_WORKER"])
    os.makedirs(os.environ["KIVY_HOME"], exist_ok=True)

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "artifacts" / "screenshots"
DOCS_SHOTS = REPO / "docs" / "screenshots"


def pytest_unconfigure(config):
    """The throw-away KIVY_HOME made above goes with the run (bash run.sh test names its own)."""
    if _OWN_KIVY_HOME is not None:
        shutil.rmtree(_OWN_KIVY_HOME, ignore_errors=True)


def pytest_report_header(config):
    if not _HAS_DISPLAY:
        return "tests/ui: no DISPLAY - the UI tests will fail; run under xvfb-run (bash run.sh test does)"
    return None


if _HAS_DISPLAY:
    from kivy.config import Config

    Config.set("graphics", "width", "800")
    Config.set("graphics", "height", "480")
    Config.set("graphics", "resizable", "1")
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")


class FrameClock:
    """Kivy's clock, advanced by the tests one frame (1/60 s) at a time instead of by the wall clock.

    The app's timers (the thank-you screen's 0.3 s, the staff corner's hold, the follow-up's
    timeout) then run in frames, so a test sees the same sequence on a quiet machine and on one
    whose frames take a second each (a loaded CI box, parallel workers): no screen is skipped
    between two frames, no tap becomes a long press. Kivy's frame-rate sleep is off (maxfps 0),
    so a frame never waits for time that does not pass.
    """

    FRAME_S = 1 / 60

    def __init__(self) -> None:
        self.now = 0.0
        self._saved = None

    def install(self) -> None:
        from kivy.clock import Clock

        if self._saved is None:
            self._saved = (Clock.time, Clock._max_fps)
            self.now = Clock.time()
            Clock.time = lambda: self.now
            Clock._max_fps = 0

    def uninstall(self) -> None:
        from kivy.clock import Clock

        if self._saved is not None:
            Clock.time, Clock._max_fps = self._saved
            self._saved = None

    def advance(self, seconds: float = FRAME_S) -> None:
        self.now += seconds


FRAME_CLOCK = FrameClock()


@dataclass
class Harness:
    """A started KioskApp plus a real outbox, driven frame by frame."""

    app: object
    outbox: object
    desk: object
    shots: list[Path] = field(default_factory=list)

    def frames(self, n: int = 2) -> None:
        """``n`` frames of 1/60 s each on Kivy's clock (see FrameClock), however long they take here."""
        from kivy.base import EventLoop

        for _ in range(n):
            FRAME_CLOCK.advance()
            EventLoop.idle()

    def wait_until(self, predicate, timeout: float = 3.0, what: str = "condition") -> None:
        """Frames until ``predicate()``; ``timeout`` is in the app's (Kivy clock) seconds."""
        deadline = FRAME_CLOCK.now + timeout
        while not predicate():
            if FRAME_CLOCK.now > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what} (screen {self.app.screen})")
            self.frames(1)

    def wait_screen(self, name: str, timeout: float = 3.0) -> None:
        self.wait_until(lambda: self.app.screen == name, timeout, f"screen {name!r}")

    def tap(self, widget) -> None:
        """A real touch at the widget's centre, through Kivy's input dispatch."""
        from kivy.tests.common import UnitTestTouch

        self.frames(1)
        touch = UnitTestTouch(*widget.to_window(*widget.center))
        touch.touch_down()
        self.frames(1)
        touch.touch_up()
        self.frames(1)

    def hold(self, widget, seconds: float) -> None:
        from kivy.tests.common import UnitTestTouch

        touch = UnitTestTouch(*widget.to_window(*widget.center))
        touch.touch_down()
        deadline = FRAME_CLOCK.now + seconds
        while FRAME_CLOCK.now < deadline:
            self.frames(1)
        touch.touch_up()
        self.frames(1)

    def screen(self, name: str | None = None):
        return self.app.root.get_screen(name or self.app.screen)

    def face(self, value: int):
        return self.screen("home").ids[f"s{value}"].children[-1]

    def stored(self) -> list[dict]:
        import json

        return [json.loads(p.payload) for p in self.outbox.pending(10_000)]

    def shot(self, name: str) -> Path:
        """Save the current screen to artifacts/screenshots/<name>.png (and remember it)."""
        from kivy.lang import Builder

        Builder.sync()
        self.frames(3)
        path = self.app.screenshot(ARTIFACTS / f"{name}.png")
        self.shots.append(path)
        return path


@pytest.fixture
def make_kiosk(tmp_path):
    """Factory: start a KioskApp on a real outbox with the given station config / [ui] section."""
    if not _HAS_DISPLAY:  # Kivy would kill the whole run (exit 102) without a display
        pytest.fail("the UI tests need a display: run them under xvfb-run (bash run.sh test does)", pytrace=False)
    from kivy.app import App
    from kivy.base import EventLoop
    from kivy.core.window import Window

    from kiosk.answers import AnswerDesk
    from kiosk.config import UISection
    from kiosk.feedback import Recorder
    from kiosk.outbox import Outbox
    from kiosk.ui.app import KioskApp
    from palaute_wire.surveys import default_station_config

    started: list[Harness] = []

    def start(config=None, ui=None, size=(800, 480), now=None, desk=None, **app_kwargs) -> Harness:
        """A new app; with ``desk`` (e.g. a runtime Kiosk's) the test owns that desk's outbox."""
        if desk is None:
            config = config or default_station_config("kalvia", "Kälviän terveysasema")
            outbox = Outbox(tmp_path / f"outbox-{len(started)}.db")
            recorder = Recorder(outbox, config.station_id, "kiosk-1")
            desk_kwargs = {"now": now} if now else {}
            desk = AnswerDesk(recorder, config, **desk_kwargs)
        outbox = desk.recorder.outbox
        EventLoop.ensure_window()
        FRAME_CLOCK.install()
        Window.size = size
        app = KioskApp(desk, ui=ui or UISection(staff_pin="2468"), **app_kwargs)
        EventLoop.idle()  # Kivy times new events from the last tick: make it now, not the last test's
        app._run_prepare()
        harness = Harness(app, outbox, desk)
        started.append(harness)
        harness.frames(3)
        return harness

    yield start
    for harness in started:
        app = harness.app
        app.dispatch("on_stop")
        for child in list(Window.children):
            Window.remove_widget(child)
        App._running_app = None
        harness.outbox.close()
    FRAME_CLOCK.uninstall()


DOC_SCREENSHOTS = ("home-fi", "home-sv", "home-en", "followup", "thanks", "idle", "closed", "staff",
                   "home-fi-portrait", "followup-portrait", "staff-portrait", "staff-problems", "staff-disk-full",
                   "idle-280", "service", "thanks-sad", "idle-code", "thanks-code")
"""The screens docs/ and the README show; refreshed from a passing UI test run when
PALAUTE_UPDATE_DOC_SCREENSHOTS=1 (so an ordinary run never dirties the work tree)."""

_SESSION_START = time.time()


def pytest_sessionfinish(session, exitstatus):
    """Copy this run's screenshots to docs/screenshots/ when asked and the UI tests passed.

    The renders are deterministic under Xvfb (same bytes run to run), so an
    unchanged UI leaves the committed PNGs untouched.
    """
    if exitstatus != 0 or not _HAS_DISPLAY or os.environ.get("PALAUTE_UPDATE_DOC_SCREENSHOTS") != "1":
        return
    fresh = [n for n in DOC_SCREENSHOTS
             if (ARTIFACTS / f"{n}.png").exists() and (ARTIFACTS / f"{n}.png").stat().st_mtime >= _SESSION_START]
    if not fresh:
        return
    DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
    for name in fresh:
        shutil.copyfile(ARTIFACTS / f"{name}.png", DOCS_SHOTS / f"{name}.png")
