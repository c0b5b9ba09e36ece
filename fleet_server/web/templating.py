"""The dashboard's Jinja2 environment: gettext (Jinja's i18n extension) and the filters that print figures.

Texts come from the catalogues in fleet_server/locale (fleet_server.core.i18n); the
language is the request's (``current_lang``). Hidden figures (small-count rule,
``None``) print as "too few responses" here and nowhere else decides how they look;
numbers, shares and dates print in the reader's language's one format.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from fleet_server.core import i18n
from fleet_server.core.i18n import LOCAL_TZ, N_  # noqa: F401 - LOCAL_TZ re-exported for the pages
from fleet_server.results.small_counts import TOO_FEW

ROLE_NAMES = (N_("coordinator"), N_("staff"), N_("it"), N_("admin"), N_("import"))
"""Role names as the pages print them (``_(principal.role.value)``)."""
_TOO_FEW_TEXT = N_("too few responses")  # TOO_FEW, translated where printed
STATE_NAMES = (N_("provisioned"), N_("active"), N_("retired"), N_("acknowledged"), N_("asked"), N_("waiting"))
"""Device registry and sequence-gap states as the device page prints them (``_(d.state)``)."""

WEB_DIR = Path(__file__).parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"


def _too_few() -> Markup:
    return Markup(f'<span class="too-few" title="{escape(i18n.gettext("fewer responses than the minimum"))}">'
                  f'{escape(i18n.gettext(TOO_FEW))}</span>')


# The figure filters build their markup with f-strings and escape() (numbers need none):
# a 500-station overview prints thousands of figures, and Markup's % formatting was most
# of the page's time.


def fig(value: float | None) -> Markup:
    if value is None:
        return _too_few()
    if isinstance(value, float):
        return Markup(escape(i18n.number(value, 1)))
    return Markup(escape(i18n.number(value)))


def pct(value: float | None) -> Markup:
    if value is None:
        return _too_few()
    return Markup(escape(i18n.percent(value)))


SMILEY_NAMES = (N_("very unhappy"), N_("unhappy"), N_("happy"), N_("very happy"))


def smiley_bar(dist: dict) -> Markup:
    """The four-count bar (labelled, patterned segments); built here, not in a macro, because the
    overview draws one per station and group (500 stations: a macro cost half a second)."""
    if dist.get("hidden"):
        return fig(dist.get("total"))
    counts = dist["counts"]
    names = [str(escape(i18n.gettext(n))) for n in SMILEY_NAMES]
    ns = [int(counts[v]) for v in "1234"]
    label = ", ".join(f"{names[i]} {n}" for i, n in enumerate(ns))
    parts = "".join(f'<span class="v{i + 1}" style="flex: {n}" title="{names[i]}: {n}">{n}</span>'
                    for i, n in enumerate(ns) if n)
    return Markup(f'<div class="sbar" role="img" aria-label="{label}">{parts}</div>')


_ROW_TEXTS = (N_("%(n)s presses in all"), N_("over %(h)s h"), N_("responses %(change)s %%"),
              N_("no open, online hours"), N_("lower than the others"), N_("higher than the others"),
              N_("no clear difference"), N_("not compared: too few responses"))


def station_rows(rows: list, period_query: str, channel_names: dict[str, str]) -> Markup:
    """The overview's station rows (``<tr>`` a station, newline-separated), built here for the
    reason ``smiley_bar`` is: the same markup from a Jinja loop cost the 500-station overview
    a quarter of its time (100 rows a page, a dozen filters, lookups and texts in each)."""
    # As Jinja's gettext gives them: the translation trusted as markup, the values escaped into it.
    presses_text, hours_text, change_text, *plain = (Markup(i18n.gettext(m)) for m in _ROW_TEXTS)
    no_hours, lower, higher, similar, not_compared = (text % {} for text in plain)
    names = {c: str(escape(n)) for c, n in channel_names.items()}
    versus = {"lower": f'<span class="chg down">▼ {lower}</span>', "higher": f'<span class="chg up">▲ {higher}</span>',
              "similar": f'<span class="muted">{similar}</span>'}
    pq = escape(period_query)
    out = []
    for r in rows:
        sid, dist = escape(r.station_id), r.dist
        total = dist["total"]
        channels = (f'<br><small class="muted" data-channels="{escape(" ".join(r.channels))}">'
                    f'{", ".join(names[c] for c in r.channels)}</small>') if r.channels else ""
        presses = (f'<br><small class="muted">{presses_text % {"n": fig(r.presses)}}</small>'
                   if r.presses is not None and total is not None and r.presses != total else "")
        if r.per_hour is not None:
            per_hour = (f'{escape(i18n.number(r.per_hour, 1))}<br><small class="muted">'
                        f'{hours_text % {"h": r.open_online_hours}}</small>')
        elif total is None:
            per_hour = fig(None)
        else:
            per_hour = f'<span class="muted">{no_hours}</span>'
        interval = f"{pct(r.interval[0])} – {pct(r.interval[1])}" if r.interval else "—"
        compared = versus.get(r.versus, f'<span class="muted">{not_compared}</span>')
        change = change_pp(r.satisfaction_change)
        if r.total_change is not None:
            sign = "+" if r.total_change > 0 else ""
            amount = escape(sign + i18n.number(r.total_change * 100, 0))
            change += Markup(f'<br><small class="muted">{change_text % {"change": amount}}</small>')
        out.append(
            f'<tr data-station="{sid}">\n'
            f'  <td><a href="/stations/{sid}?{pq}">{escape(r.name)}</a>{channels}</td>\n'
            f'  <td class="num">{fig(total)}{presses}</td>\n'
            f'  <td class="num">{per_hour}</td>\n'
            f'  <td class="num">{pct(dist["satisfaction"])}</td>\n'
            f'  <td class="num">{interval}</td>\n'
            f'  <td data-versus="{escape(r.versus)}">{compared}</td>\n'
            f'  <td class="num">{change}</td>\n'
            f'  <td>{smiley_bar(dist)}</td>\n'
            f'</tr>')
    return Markup("\n\n".join(out))


def change_pp(value: float | None) -> Markup:
    """A change of a share, in percentage points, with an arrow and words (not colour alone)."""
    if value is None:
        return Markup('<span class="muted">%s</span>') % i18n.gettext("no comparison")
    points = value * 100
    if abs(points) < 0.5:
        return Markup('<span class="chg flat">= %s</span>') % i18n.gettext("no change")
    if points > 0:
        arrow, cls, text = "▲", "up", i18n.gettext("up {points} pp")
    else:
        arrow, cls, text = "▼", "down", i18n.gettext("down {points} pp")
    return Markup('<span class="chg %s">%s %s</span>') % (cls, arrow, text.format(points=i18n.number(abs(points), 0)))


def local_time(value: datetime | None, fmt: str | None = None) -> str:
    """A local date and time in the reader's format (``fmt`` is kept for old callers and ignored)."""
    return i18n.moment(value)


def local_day(value: date | None) -> str:
    return i18n.day(value)


def iso_date(value: date | None) -> str:
    return value.isoformat() if value else ""


def station_name(station) -> str:
    """A station's name in the reader's language (its own name when none is given)."""
    own = getattr(station, f"name_{i18n.lang()}", None)
    return own or station.name


def alert_text(alert) -> str:
    """An alert's message in the reader's language (fleet_server.fleet.alerts.alert_text)."""
    from fleet_server.fleet.alerts import alert_text as text

    return text(alert)


def rule_name(rule: str) -> str:
    from fleet_server.fleet.alerts import rule_name as name

    return name(rule)


templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.add_extension("jinja2.ext.i18n")
templates.env.install_gettext_callables(  # type: ignore[attr-defined]  # added by jinja2.ext.i18n
    i18n.gettext, i18n.ngettext, newstyle=True)
templates.env.filters.update(fig=fig, pct=pct, change_pp=change_pp, local_time=local_time, local_day=local_day,
                             iso_date=iso_date, number=i18n.number, station_name=station_name,
                             smiley_bar=smiley_bar, alert_text=alert_text, rule_name=rule_name,
                             station_rows=station_rows)
templates.env.globals.update(
    TOO_FEW=TOO_FEW, lang=i18n.lang, LANGUAGES=i18n.LANGUAGES, LANGUAGE_NAMES=i18n.LANGUAGE_NAMES,
)
