"""CPU share of the kiosk UI on each screen, under software rendering (Mesa llvmpipe on Xvfb).

    xvfb-run -a -s "-screen 0 800x480x24" .venv/bin/python bench/bench_kiosk_cpu.py [--seconds 10]
    xvfb-run -a -s "-screen 0 720x1280x24" .venv/bin/python bench/bench_kiosk_cpu.py --size 720x1280

The real KioskApp on a real outbox runs Kivy's own loop (``EventLoop.idle()``,
which is what ``App.run()`` repeats) for ``--seconds`` on each screen: home,
idle ("you said, we did", rotating notes), the follow-up question with its
countdown running, the thank-you, the closed note and the staff status screen
(refreshed every second). Figures are the CPU time of the whole kiosk process
(all threads: llvmpipe renders in-process) and of the Xvfb server, as a share
of one core over the wall time on that screen.

Goal (issue 10): under 5 % of a core on home and idle, under 25 % on the follow-up.
``--animate`` runs the follow-up's bar as the old 60 fps Animation, for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")
os.environ.setdefault("KIVY_HOME", tempfile.mkdtemp(prefix="bench-kivy-"))

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def xvfb_pid() -> int | None:
    """The Xvfb serving our DISPLAY, if it runs on this machine."""
    display = os.environ.get("DISPLAY", "")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"Xvfb") and display.encode() in args:
            return int(proc.name)
    return None


def cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per screen")
    parser.add_argument("--size", default="800x480", help="window size, e.g. 720x1280 (Touch Display 2)")
    parser.add_argument("--animate", action="store_true", help="the old 60 fps countdown bar, for comparison")
    args = parser.parse_args()
    if not os.environ.get("DISPLAY"):
        print("needs a display: run under xvfb-run (see the docstring)", file=sys.stderr)
        return 2
    width, height = (int(v) for v in args.size.split("x"))

    from kivy.config import Config

    Config.set("graphics", "width", str(width))
    Config.set("graphics", "height", str(height))
    from kivy.animation import Animation
    from kivy.base import EventLoop
    from kivy.core.window import Window

    from kiosk.answers import AnswerDesk
    from kiosk.config import UISection
    from kiosk.feedback import Recorder
    from kiosk.outbox import Outbox
    from kiosk.ui.app import KioskApp
    from kiosk.ui.staffinfo import StaffInfo
    from palaute_wire.contract import Note, OpeningHours
    from palaute_wire.surveys import default_station_config

    tmp = Path(tempfile.mkdtemp(prefix="bench-cpu-"))
    outbox = Outbox(tmp / "outbox.db")
    long = min(3600.0, args.seconds * 10)  # no screen times out while it is measured
    notes = tuple(Note(id=f"n{i}", text={"fi": f"Muutos {i}: lisäsimme tuoleja odotustilaan.",
                                          "sv": "Fler stolar.", "en": "More chairs."}) for i in range(3))
    config = default_station_config("bench", "Kälviän terveysasema").model_copy(
        update={"followup_timeout_s": long, "idle_timeout_s": long, "notes": notes})
    desk = AnswerDesk(Recorder(outbox, "bench", "bench-1"), config)
    info = StaffInfo(device_id="bench-1", station_id="bench", station_name="Kälviän terveysasema",
                     connected=True, clock_synced=True, config_version=1)
    EventLoop.ensure_window()
    Window.size = (width, height)
    app = KioskApp(desk, ui=UISection(staff_pin="2468", thanks_s=30, note_rotate_s=8.0), staff_info=lambda: info)
    EventLoop.idle()
    app._run_prepare()
    for _ in range(10):
        EventLoop.idle()

    def to_home():
        app.go_home()

    def to_idle():
        app.go_idle()

    def to_followup():
        app.go_home()
        app.press_smiley(2)
        if args.animate:
            screen = app.root.get_screen("followup")
            screen.stop()
            Animation(remaining=0.0, d=long).start(screen)

    def to_thanks():
        app.show_thanks(4)

    def to_closed():
        closed = OpeningHours(days={})  # closed every day
        desk.set_config(desk.config.model_copy(update={"opening_hours": closed}))
        for _ in range(3):
            EventLoop.idle()
        app.go_home()

    def to_staff():
        app.open_staff()

    xvfb = xvfb_pid()
    results = []
    for name, enter in (("home", to_home), ("idle", to_idle), ("follow-up", to_followup),
                        ("thank-you", to_thanks), ("closed", to_closed), ("staff", to_staff)):
        enter()
        if name == "thank-you" and args.seconds > 28:
            print("--seconds above 28 would let the thank-you time out", file=sys.stderr)
            return 2
        warm = time.monotonic() + 1.0
        while time.monotonic() < warm:
            EventLoop.idle()
        expected = {"follow-up": "followup", "thank-you": "thanks"}.get(name, name)
        if app.root.current != expected:
            print(f"{name}: the app shows {app.root.current!r}")
            return 1
        wall0, own0, x0 = time.monotonic(), time.process_time(), cpu_s(xvfb)
        frames = 0
        while time.monotonic() - wall0 < args.seconds:
            EventLoop.idle()
            frames += 1
        wall = time.monotonic() - wall0
        results.append((name, 100 * (time.process_time() - own0) / wall, 100 * (cpu_s(xvfb) - x0) / wall,
                        frames / wall))
    from kivy.graphics.opengl import GL_RENDERER, glGetString

    renderer = glGetString(GL_RENDERER).decode()
    print(f"kiosk CPU benchmark: window {width}x{height}, {args.seconds:.0f} s per screen, GL {renderer}"
          + (", follow-up bar animated at 60 fps (the old way)" if args.animate else ""))
    print(f"{'screen':10} {'kiosk % of a core':>18} {'Xvfb %':>8} {'loop ticks/s':>13}")
    for name, own, x, ticks in results:
        print(f"{name:10} {own:18.1f} {x:8.1f} {ticks:13.0f}")
    if xvfb is None:
        print("(Xvfb not found on this machine: its column is 0)")
    app.dispatch("on_stop")
    outbox.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:  # noqa: BLE001 -- Kivy logs exceptions to its silenced logger only: print it
        import traceback

        traceback.print_exc()
        sys.exit(1)
