"""Press -> durable and press -> thank-you-drawn latencies of the kiosk UI, and its memory.

    xvfb-run -a -s "-screen 0 800x480x24" .venv/bin/python bench/bench_kiosk_press.py [--presses 200]

What is measured, per press (half by simulated touch, half by a MockFactory
button, both through the real AnswerDesk -> Recorder -> SQLite outbox with
synchronous=FULL in a temporary directory):
- durable: from the touch-down / pin edge to the answer listener, which the
  desk calls only after the outbox COMMIT returned;
- drawn: from the same start to the end of the first frame flipped to the
  screen with the thank-you screen current (Window.on_flip).
The survey has no follow-up here, so a press goes straight to thank-you.
Resident memory is the process's VmRSS at the end (and its peak, VmHWM): the
whole kiosk UI process with Kivy, SDL and the GL stack (llvmpipe under Xvfb;
the Pi's GPU driver differs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")
os.environ.setdefault("KIVY_HOME", tempfile.mkdtemp(prefix="bench-kivy-"))


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=200)
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        print("needs a display: run under xvfb-run (see the docstring)", file=sys.stderr)
        return 2

    from kivy.config import Config

    Config.set("graphics", "width", "800")
    Config.set("graphics", "height", "480")
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory, MockPWMPin
    from kivy.base import EventLoop
    from kivy.core.window import Window
    from kivy.tests.common import UnitTestTouch

    from kiosk.answers import AnswerDesk
    from kiosk.buttons import ButtonPanel
    from kiosk.config import UISection
    from kiosk.feedback import Recorder
    from kiosk.outbox import Outbox
    from kiosk.pinmap import load_pinmap
    from kiosk.ui.app import KioskApp
    from palaute_wire.contract import BurstRule, StationConfig, Survey
    from palaute_wire.surveys import VISIT_QUESTION

    Device.pin_factory = MockFactory(pin_class=MockPWMPin)
    tmp = Path(tempfile.mkdtemp(prefix="bench-press-"))
    outbox = Outbox(tmp / "outbox.db")
    config = StationConfig(config_version=1, station_id="bench", survey=Survey(question=VISIT_QUESTION),
                           burst=BurstRule(max_presses=10_000, window_s=1))
    desk = AnswerDesk(Recorder(outbox, "bench", "bench-1"), config)
    panel = ButtonPanel(load_pinmap(), lambda v: desk.smiley(v, source="button"), bounce_time_s=None)
    EventLoop.ensure_window()
    app = KioskApp(desk, ui=UISection(thanks_s=30), lights=panel)
    EventLoop.idle()
    app._run_prepare()
    for _ in range(5):
        EventLoop.idle()

    marks: dict[str, float] = {}
    desk.listeners.append(lambda _answer: marks.setdefault("durable", time.perf_counter()))

    def flipped(*_args):
        if app.root.current == "thanks" and "drawn" not in marks:
            marks["drawn"] = time.perf_counter()

    Window.bind(on_flip=flipped)
    durable: dict[str, list[float]] = {"touch": [], "button": []}
    drawn: dict[str, list[float]] = {"touch": [], "button": []}
    home = app.root.get_screen("home")
    for i in range(args.presses):
        source = "touch" if i % 2 == 0 else "button"
        value = 1 + i % 4
        marks.clear()
        if source == "touch":
            face = home.ids[f"s{value}"].children[-1]
            touch = UnitTestTouch(*face.to_window(*face.center))
            start = time.perf_counter()
            touch.touch_down()
            touch.touch_up()
        else:
            pin = Device.pin_factory.pin(panel.pinmap.buttons[value])
            start = time.perf_counter()
            pin.drive_low()
            pin.drive_high()
        deadline = start + 5
        while "drawn" not in marks and time.perf_counter() < deadline:
            EventLoop.idle()
        if "drawn" not in marks or "durable" not in marks:
            print(f"press {i} ({source}) never reached the thank-you screen", file=sys.stderr)
            return 1
        durable[source].append((marks["durable"] - start) * 1000)
        drawn[source].append((marks["drawn"] - start) * 1000)
        app.go_home()
        EventLoop.idle()

    stored = outbox.stats().last_seq
    print(f"kiosk press benchmark: {args.presses} presses ({stored} events stored durably), "
          f"window {Window.size[0]}x{Window.size[1]}, outbox synchronous=FULL in {tmp}")
    print(f"{'source':8} {'press->durable p50':>19} {'p99':>8} {'press->thank-you drawn p50':>27} {'p99':>8}")
    for source in ("touch", "button"):
        d, w = durable[source], drawn[source]
        print(f"{source:8} {statistics.median(d):16.2f} ms {percentile(d, 0.99):5.2f} ms "
              f"{statistics.median(w):24.2f} ms {percentile(w, 0.99):5.2f} ms")
    print(f"resident memory: VmRSS {rss_kib('VmRSS') / 1024:.1f} MiB, peak VmHWM {rss_kib('VmHWM') / 1024:.1f} MiB")
    print("(drawn includes waiting for the next frame: Kivy draws at most 60 frames/s, so up to ~17 ms)")
    panel.close()
    outbox.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
