"""The web survey's QR code on the kiosk's thank-you and idle screens (kiosk.ui.widgets.SurveyCode).

A real Kivy window under Xvfb: the code is decoded from the screenshot (zxing-cpp) and its
modules are compared with segno's matrix for the link in the config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kiosk.config import UISection
from kiosk.ui.widgets import QUIET_ZONE, SurveyCode, qr_matrix
from palaute_wire.contract import StationConfig, Survey, SurveyLink
from palaute_wire.surveys import default_station_config

pytestmark = pytest.mark.ui

URL = ("https://palaute.example.fi/s/kalvia?t=eyJzIjoia2FsdmlhIiwiayI6ImthbHZpYS0xIn0.aw8TWg."
       "KkIn6ysU5fM_ijxrWppsWNmG_T0")
UI = UISection(staff_pin="2468", thanks_s=30, staff_hold_s=0.3, note_rotate_s=30)
LINE = {"fi": "Voit vastata myös kotona, omalla kielelläsi tai ruudunlukijan avulla.",
        "sv": "Du kan också svara hemma, på ditt eget språk eller med skärmläsare.",
        "en": "Answer at home, in your own language, or with your screen reader."}


def config(link: SurveyLink | None, **kw) -> StationConfig:
    base = default_station_config("kalvia", "Kälviän terveysasema")
    survey = Survey(question=base.survey.question)  # no follow-up: a face goes straight to thank-you
    return base.model_copy(update={"survey": survey, "idle_timeout_s": 60, "survey_link": link, **kw})


def link(days: float = 30) -> SurveyLink:
    return SurveyLink(url=URL, expires=datetime.now(UTC) + timedelta(days=days))


def code_on(screen) -> SurveyCode:
    codes = [w for w in screen.walk() if isinstance(w, SurveyCode)]
    assert len(codes) == 1
    return codes[0]


def decode(path) -> list[str]:
    import zxingcpp
    from PIL import Image

    with Image.open(path) as picture:
        return [r.text for r in zxingcpp.read_barcodes(picture.convert("L"))]


def modules_seen(path, code: SurveyCode, window_height: int) -> tuple[tuple[bool, ...], ...]:
    """The dark/light module grid read back from the screenshot at the centre of each module."""
    from PIL import Image

    n, px = int(code.modules), int(code.module_px)
    x0, y0 = code.to_window(int(code.center_x - n * px / 2), int(code.center_y - n * px / 2))
    with Image.open(path) as picture:
        grey = picture.convert("L")
        top = window_height - (y0 + n * px)  # PNG rows run from the top, Kivy's from the bottom
        return tuple(tuple(grey.getpixel((int(x0 + (c + 0.5) * px), int(top + (r + 0.5) * px))) < 128
                           for c in range(n)) for r in range(n))


def _visible(k, screen_name: str) -> None:
    k.wait_screen(screen_name)
    k.frames(4)
    code = code_on(k.screen())
    assert code.url == URL and code.modules == len(qr_matrix(URL)) and code.module_px >= 2
    assert code.parent.parent.opacity == 1, "the panel is shown"


@pytest.mark.parametrize("lang", ["fi", "sv", "en"])
def test_idle_and_thank_you_show_a_code_that_decodes_to_the_configured_link(make_kiosk, lang):
    k = make_kiosk(config(link()), ui=UI)
    k.app.set_lang(lang)
    k.tap(k.face(4))
    _visible(k, "thanks")
    shot = k.shot("thanks-code" if lang == "fi" else f"thanks-code-{lang}")
    assert decode(shot) == [URL]
    texts = [w.text for w in k.screen().walk() if hasattr(w, "text")]
    assert LINE[lang] in texts
    assert modules_seen(shot, code_on(k.screen()), 480) == qr_matrix(URL), "every module where segno puts it"

    k.app.go_idle()
    _visible(k, "idle")
    shot = k.shot("idle-code")  # idle is always in the station's default language
    assert decode(shot) == [URL]
    assert LINE["fi"] in [w.text for w in k.screen().walk() if hasattr(w, "text")]


def test_the_code_keeps_its_quiet_zone_and_modules_are_whole_pixels(make_kiosk):
    k = make_kiosk(config(link()), ui=UI)
    k.app.go_idle()
    _visible(k, "idle")
    matrix = qr_matrix(URL)
    assert not any(matrix[0]) and not any(row[0] for row in matrix), "the light border is part of the picture"
    assert all(len(row) == len(matrix) for row in matrix) and (len(matrix) - 2 * QUIET_ZONE - 21) % 4 == 0
    code = code_on(k.screen())
    assert code.module_px == int(code.module_px) and code.module_px * code.modules <= min(code.size)


def test_no_link_shows_no_code_and_leaves_the_screens_as_before(make_kiosk):
    k = make_kiosk(config(None), ui=UI)
    k.tap(k.face(3))
    k.wait_screen("thanks")
    k.frames(3)
    code = code_on(k.screen())
    assert (code.url, code.modules, code.module_px) == ("", 0, 0)
    assert code.parent.parent.opacity == 0 and code.parent.parent.width == 0
    assert decode(k.shot("thanks-no-code")) == []
    k.app.go_idle()
    k.frames(3)
    assert code_on(k.screen()).modules == 0 and decode(k.shot("idle-no-code")) == []


def test_an_expired_link_is_not_shown_and_a_new_config_brings_the_code(make_kiosk):
    k = make_kiosk(config(link(days=-1)), ui=UI)
    k.app.go_idle()
    k.frames(3)
    assert code_on(k.screen()).modules == 0, "past its expiry the page would only say 'scan again'"
    k.desk.set_config(config(link()))  # what the uplink does when the server sends a fresh link
    k.frames(3)
    assert code_on(k.screen()).url == URL
    assert decode(k.shot("idle-new-link")) == [URL]


def test_portrait_720x1280_shows_a_larger_code_that_decodes(make_kiosk):
    k = make_kiosk(config(link()), ui=UI, size=(720, 1280))
    k.wait_until(lambda: tuple(k.app.root.size) == (720, 1280), what="window resize")
    k.tap(k.face(4))
    _visible(k, "thanks")
    shot = k.shot("thanks-code-portrait")
    assert decode(shot) == [URL]
    assert code_on(k.screen()).module_px >= 4
    k.app.go_idle()
    _visible(k, "idle")
    assert decode(k.shot("idle-code-portrait")) == [URL]
