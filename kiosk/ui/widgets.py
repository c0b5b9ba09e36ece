"""Drawn widgets of the kiosk: smiley faces, big rounded buttons, the hidden staff corner, the QR code.

Why shapes and not emoji or images: Kivy's default font has no emoji, and drawn
faces scale crisply from the 7" 800x480 display to 1280x720. Each face differs
in *shape* as well as colour (brows and a deep frown; a slight frown; a smile;
closed happy eyes and an open laugh), so a colour-blind patient can tell the
four apart; the colours also step in lightness, not only in hue.
"""

from __future__ import annotations

import logging
import math

from kivy.clock import Clock
from kivy.graphics import Color, Ellipse, Line, Mesh, Rectangle
from kivy.graphics.texture import Texture
from kivy.properties import BooleanProperty, ColorProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from . import theme

_LOGGER = logging.getLogger(__name__)


def _quad(p0, p1, p2, steps: int = 24) -> list[float]:
    """Points of a quadratic Bezier curve, flattened for Line(points=...)."""
    out: list[float] = []
    for i in range(steps + 1):
        t = i / steps
        a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t * t
        out += [a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]]
    return out


class SmileyFace(ButtonBehavior, Widget):
    """One answer, 1 (very unhappy) .. 4 (very happy), drawn to fill its square."""

    value = NumericProperty(1)
    ring = NumericProperty(0)
    """Extra white ring width while pressed or highlighted (staff button test)."""
    lit = BooleanProperty(False)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bind(pos=self._redraw, size=self._redraw, value=self._redraw, state=self._redraw, lit=self._redraw)
        Clock.schedule_once(self._redraw, 0)

    def _redraw(self, *_args) -> None:
        self.canvas.clear()
        r = min(self.width, self.height) / 2.0
        if r <= 1:
            return
        pressed = self.state == "down" or self.lit
        if pressed:
            r *= 0.94
        cx, cy = self.center
        dark = theme.FEATURE
        with self.canvas:
            Color(*theme.SMILEY_COLOURS[int(self.value)])
            Ellipse(pos=(cx - r, cy - r), size=(2 * r, 2 * r), segments=96)
            Color(*theme.WHITE)
            Line(circle=(cx, cy, r), width=max(1.5, r * (0.09 if pressed else 0.035)))
            Color(*dark)
            self._draw_eyes(cx, cy, r)
            self._draw_mouth(cx, cy, r)

    def _draw_eyes(self, cx: float, cy: float, r: float) -> None:
        ex, ey = 0.34 * r, 0.22 * r
        if self.value == 4:  # closed, laughing eyes: upward arcs
            for sx in (-1, 1):
                x = cx + sx * ex
                Line(points=_quad((x - 0.14 * r, cy + ey), (x, cy + ey + 0.24 * r), (x + 0.14 * r, cy + ey)),
                     width=r * 0.055, cap="round", joint="round")
            return
        w, h = 0.18 * r, 0.25 * r
        for sx in (-1, 1):
            Ellipse(pos=(cx + sx * ex - w / 2, cy + ey - h / 2), size=(w, h))
        if self.value == 1:  # worried brows: inner ends raised
            for sx in (-1, 1):
                Line(points=[cx + sx * 0.52 * r, cy + 0.45 * r, cx + sx * 0.16 * r, cy + 0.60 * r],
                     width=r * 0.055, cap="round")

    def _draw_mouth(self, cx: float, cy: float, r: float) -> None:
        width = r * 0.06
        if self.value == 1:  # deep frown
            pts = _quad((cx - 0.42 * r, cy - 0.55 * r), (cx, cy - 0.12 * r), (cx + 0.42 * r, cy - 0.55 * r))
        elif self.value == 2:  # slight frown
            pts = _quad((cx - 0.36 * r, cy - 0.47 * r), (cx, cy - 0.33 * r), (cx + 0.36 * r, cy - 0.47 * r))
        elif self.value == 3:  # smile
            pts = _quad((cx - 0.42 * r, cy - 0.28 * r), (cx, cy - 0.68 * r), (cx + 0.42 * r, cy - 0.28 * r))
        else:  # open laugh: a filled half-moon
            top = cy - 0.18 * r
            rim = [(cx + 0.5 * r * math.cos(a), top - 0.48 * r * math.sin(a))
                   for a in (math.pi * i / 32 for i in range(33))]
            vertices: list[float] = [cx, top - 0.2 * r, 0, 0]
            for x, y in rim:
                vertices += [x, y, 0, 0]
            Mesh(vertices=vertices, indices=list(range(len(vertices) // 4)), mode="triangle_fan")
            return
        Line(points=pts, width=width, cap="round", joint="round")


class PillButton(ButtonBehavior, Label):
    """A big rounded button with high-contrast colours; text wraps inside it."""

    bg = ColorProperty(theme.BUTTON)
    fg = ColorProperty(theme.WHITE)
    border = ColorProperty(theme.WHITE)
    radius = NumericProperty(18)
    selected = BooleanProperty(False)


class StaffRow(BoxLayout):
    """One row of the staff status table: a state mark, the label, the value (wrapped, never cut)."""

    mark = StringProperty("")
    label = StringProperty("")
    value = StringProperty("")
    colour = ColorProperty(theme.WHITE)


class CornerHold(Widget):
    """An invisible patch that fires ``on_long_press`` when held for ``hold_s`` seconds.

    Why a long press: staff can open the status screen without a visible
    button that patients would try; a PIN then guards it.
    """

    hold_s = NumericProperty(3.0)

    __events__ = ("on_long_press",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._event = None

    def on_touch_down(self, touch):
        if not self.collide_point(*touch.pos):
            return False
        touch.grab(self)
        self._cancel()
        self._event = Clock.schedule_once(lambda _dt: self.dispatch("on_long_press"), self.hold_s)
        return True

    def on_touch_up(self, touch):
        if touch.grab_current is self:
            touch.ungrab(self)
            self._cancel()
            return True
        return False

    def _cancel(self) -> None:
        if self._event is not None:
            self._event.cancel()
            self._event = None

    def on_long_press(self) -> None:
        _LOGGER.info("staff corner held for %.1f s", self.hold_s)


class SpeakerIcon(Widget):
    """A loudspeaker with sound waves, for the "listen" button (no emoji font needed)."""

    colour = ColorProperty(theme.WHITE)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bind(pos=self._redraw, size=self._redraw)

    def _redraw(self, *_args) -> None:
        self.canvas.clear()
        s = min(self.width, self.height)
        x0, y0 = self.center_x - s / 2, self.center_y - s / 2
        with self.canvas:
            Color(*self.colour)
            body = [0.10, 0.38, 0.30, 0.38, 0.55, 0.15, 0.55, 0.85, 0.30, 0.62, 0.10, 0.62]
            pts = [(x0 + body[i] * s, y0 + body[i + 1] * s) for i in range(0, len(body), 2)]
            vertices: list[float] = []
            for x, y in pts:
                vertices += [x, y, 0, 0]
            Mesh(vertices=vertices, indices=list(range(len(pts))), mode="triangle_fan")
            for k in (0.18, 0.32):
                Line(circle=(x0 + 0.55 * s, y0 + 0.5 * s, k * s * 1.2, 55, 125), width=max(1.5, s * 0.05))


QUIET_ZONE = 4
"""Light modules around a QR code (ISO/IEC 18004 asks for four): part of the drawn picture."""


def qr_matrix(url: str) -> tuple[tuple[bool, ...], ...]:
    """The QR code of ``url`` as rows of modules (True = dark), quiet zone included, top row first.

    segno is pure Python and works offline: the code is drawn from the link in the config,
    never fetched. Error correction M (15 %), as the coordinators' downloads
    (fleet_server.channels.web_survey), so a smudged screen still scans."""
    import segno  # here, not at import: a kiosk venv from before the QR code still starts its UI

    code = segno.make(url, error="m")
    return tuple(tuple(bool(m) for m in row) for row in code.matrix_iter(scale=1, border=QUIET_ZONE))


class SurveyCode(Widget):
    """The web survey's QR code (``url`` from the station config), dark modules on white.

    Drawn as a texture of one pixel per module, magnified with nearest-neighbour filtering to a
    whole number of screen pixels per module, so every module edge is sharp. Empty ``url``:
    nothing is drawn (and the screens hide the panel)."""

    url = StringProperty("")
    modules = NumericProperty(0)
    """Modules per side, quiet zone included (0: no code)."""
    module_px = NumericProperty(0)
    """Screen pixels per module as drawn."""

    def __init__(self, **kwargs):
        self.matrix: tuple[tuple[bool, ...], ...] = ()
        self._texture: Texture | None = None
        super().__init__(**kwargs)
        self.bind(pos=self._redraw, size=self._redraw)
        self._make()

    def on_url(self, *_args) -> None:
        self._make()

    def _make(self) -> None:
        self.matrix, self._texture = (), None
        if self.url:
            try:
                self.matrix = qr_matrix(self.url)
            except Exception:  # a code that cannot be made leaves the screen as it was without one
                _LOGGER.exception("could not make the QR code of the survey link")
        if self.matrix:
            n = len(self.matrix)
            rows = reversed(self.matrix)  # a Kivy texture's first row is the bottom one
            pixels = bytes(v for row in rows for dark in row for v in ((0, 0, 0, 255) if dark else (255,) * 4))
            texture = Texture.create(size=(n, n), colorfmt="rgba")
            texture.blit_buffer(pixels, colorfmt="rgba", bufferfmt="ubyte")
            texture.mag_filter = texture.min_filter = "nearest"
            self._texture = texture
        self.modules = len(self.matrix)
        self._redraw()

    def _redraw(self, *_args) -> None:
        self.canvas.clear()
        if self._texture is None:
            self.module_px = 0
            return
        n = self.modules
        px = max(1, int(min(self.width, self.height) // n))
        side = px * n
        x, y = int(self.center_x - side / 2), int(self.center_y - side / 2)
        with self.canvas:
            Color(1, 1, 1, 1)
            Rectangle(texture=self._texture, pos=(x, y), size=(side, side))
        self.module_px = px
