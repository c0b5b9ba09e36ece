"""The dashboard's Jinja2 environment and the filters that print figures.

Hidden figures (small-count rule, ``None``) print as "too few responses" here
and nowhere else decides how they look.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from fleet_server.results.small_counts import TOO_FEW

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
LOCAL_TZ = ZoneInfo("Europe/Helsinki")


def fig(value: float | None) -> Markup:
    if value is None:
        return Markup('<span class="too-few" title="fewer responses than the minimum">%s</span>') % TOO_FEW
    if isinstance(value, float):
        return Markup("%s") % f"{value:,.1f}".replace(",", "\u202f")
    return Markup("%s") % f"{value:,}".replace(",", "\u202f")


def pct(value: float | None) -> Markup:
    if value is None:
        return Markup('<span class="too-few" title="fewer responses than the minimum">%s</span>') % TOO_FEW
    return Markup("%s") % f"{value * 100:.0f}\u00a0%"


def change_pp(value: float | None) -> Markup:
    """A change of a share, in percentage points, with an arrow and words (not colour alone)."""
    if value is None:
        return Markup('<span class="muted">no comparison</span>')
    points = value * 100
    if abs(points) < 0.5:
        return Markup('<span class="chg flat">= no change</span>')
    arrow, cls, word = ("▲", "up", "up") if points > 0 else ("▼", "down", "down")
    return Markup('<span class="chg %s">%s %s %.0f pp</span>') % (cls, arrow, word, abs(points))


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return "—"
    return value.astimezone(LOCAL_TZ).strftime(fmt)


def iso_date(value: date | None) -> str:
    return value.isoformat() if value else ""


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.filters.update(fig=fig, pct=pct, change_pp=change_pp, local_time=local_time, iso_date=iso_date)
templates.env.globals["TOO_FEW"] = TOO_FEW
