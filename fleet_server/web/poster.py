"""The waiting-room poster of a station: an A4 PDF with the month's result, the latest "you said,
we did" notes and the QR code of the web survey, in the station's languages.

- The month is a whole calendar month, by default the last one; its figure follows the small-count
  rule through the hierarchy as the public pages do (fleet_server.results.public.month_figure).
- The languages are the station's own (its config's ``languages``, ``default_lang`` first), so a
  bilingual station prints both (Kokkola fi + sv, Kruunupyy sv first); each text is that
  language's catalogue text, a name the station's name in it.
- The QR code (segno, inline SVG) holds a signed web survey link (fleet_server.channels.links) that
  works ``web_link_days`` days (62): a poster is made again each month, and the poster says until
  when its code works.
- Made once per station and month in each server process (``PosterCache``), and again when what it
  shows changes (a note, the figure, a name, the languages) or when half its link's life is gone.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from babel.dates import format_date
from sqlalchemy.orm import Session

from fleet_server.channels.links import LinkSigner
from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
from fleet_server.core.i18n import N_
from fleet_server.fleet.remote_config import build_station_config
from fleet_server.models import Station
from fleet_server.results import figures, public
from fleet_server.web.pdf import render_pdf
from fleet_server.web.templating import STATIC_DIR, templates
from palaute_wire.contract import LANGUAGES

NOTES_ON_POSTER = 3
TEXTS = {
    "feedback": N_("Patient feedback"),
    "result": N_("%(month)s: %(share)s of respondents were satisfied"),
    "too_few": N_("%(month)s: too few responses to show a result"),
    "changed": N_("What changed because of your feedback"),
    "scan": N_("Give feedback on your phone: scan the code"),
    "anonymous": N_("No login, and nothing about you is asked or saved."),
    "valid": N_("This code works until %(day)s."),
    "rule": N_("A result is shown only when at least %(num)d people have answered."),
}


def languages_of(session: Session, station_id: str) -> list[str]:
    """The station's languages, its default first (all three when its config names none)."""
    try:
        config = build_station_config(session, station_id)
        own = [str(code) for code in config.languages] or list(LANGUAGES)
        first = str(config.default_lang)
    except Exception:  # noqa: BLE001 - a broken saved config still gets a poster, in every language
        own, first = list(LANGUAGES), "fi"
    ordered = [first] if first in own else []
    return ordered + [code for code in own if code not in ordered]


def _month_name(span: public.Span, lang: str) -> str:
    label = format_date(span.first, format="LLLL yyyy", locale=i18n.BABEL_LOCALES[lang])
    return label[:1].upper() + label[1:]


@dataclass(frozen=True)
class PosterInputs:
    """What a poster shows, apart from its link (whose signature changes every time)."""

    station_id: str
    month: public.Span
    languages: tuple[str, ...]
    names: dict[str, str]
    figure: public.Figure
    notes: tuple[public.PublicNote, ...]
    minimum: int

    def fingerprint(self) -> str:
        data = [self.station_id, self.month.key, self.languages, self.names, self.figure.total,
                self.figure.satisfaction, [(n.first.isoformat(), n.last and n.last.isoformat(), n.texts)
                                           for n in self.notes], self.minimum]
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def poster_inputs(session: Session, station: Station, month: public.Span, minimum: int) -> PosterInputs:
    notes = public.public_notes(session, [station.id], figures.today_local())[station.id][:NOTES_ON_POSTER]
    return PosterInputs(
        station_id=station.id, month=month, languages=tuple(languages_of(session, station.id)),
        names={code: station.name_in(code) for code in LANGUAGES},
        figure=public.month_figure(session, station.id, month, minimum), notes=tuple(notes), minimum=minimum)


def _section(inputs: PosterInputs, lang: str, valid_until: datetime) -> dict[str, Any]:
    """The poster's texts in one language."""
    t = i18n.translations(lang)
    month = _month_name(inputs.month, lang)
    fig = inputs.figure
    with i18n.using(lang):
        share = i18n.percent(fig.satisfaction) if fig.satisfaction is not None else ""
        responses = t.ngettext("%(num)d response", "%(num)d responses", fig.total or 0) % {"num": fig.total or 0}
        valid_day = i18n.day(valid_until.astimezone(i18n.LOCAL_TZ).date())
        notes = [{"when": (f"{i18n.day(n.first)} – {i18n.day(n.last)}" if n.last else
                           t.gettext("from %(day)s") % {"day": i18n.day(n.first)}),
                  "text": n.texts.get(lang), "lang": lang} for n in inputs.notes]
    return {
        "lang": lang, "name": inputs.names[lang], "feedback": t.gettext(TEXTS["feedback"]),
        "headline": (t.gettext(TEXTS["too_few"]) % {"month": month} if fig.hidden
                     else t.gettext(TEXTS["result"]) % {"month": month, "share": share}),
        "responses": None if fig.hidden else responses, "changed": t.gettext(TEXTS["changed"]),
        "notes": notes, "scan": t.gettext(TEXTS["scan"]), "anonymous": t.gettext(TEXTS["anonymous"]),
        "valid": t.gettext(TEXTS["valid"]) % {"day": valid_day},
        "rule": t.gettext(TEXTS["rule"]) % {"num": inputs.minimum},
    }


def poster_html(inputs: PosterInputs, survey_url: str, valid_until: datetime) -> str:
    import segno  # where the code is made, as in the web survey's QR route

    qr = segno.make(survey_url, error="m").svg_inline(scale=1, border=4, omitsize=True, dark="#000000")
    sections = [_section(inputs, code, valid_until) for code in inputs.languages]
    fallback = [{"text": n.text("fi"), "lang": "fi" if n.texts.get("fi") else next(iter(n.texts), "fi")}
                for n in inputs.notes]  # a note with none of the poster's languages still shows once
    for i, note in enumerate(fallback):
        if not any(s["notes"][i]["text"] for s in sections):
            sections[0]["notes"][i].update(note)
    return templates.env.get_template("poster.html").render(
        sections=sections, qr_svg=qr, survey_url=survey_url, lang_code=inputs.languages[0], notes=inputs.notes)


def render_poster(inputs: PosterInputs, survey_url: str, valid_until: datetime) -> bytes:
    return render_pdf(poster_html(inputs, survey_url, valid_until), base_url=STATIC_DIR.as_uri() + "/")


@dataclass
class _Made:
    fingerprint: str
    pdf: bytes
    made_at: datetime
    valid_until: datetime


class PosterCache:
    """Posters made this month, per station and month (at most ``size``, the oldest dropped first)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._made: OrderedDict[tuple[str, str], _Made] = OrderedDict()
        self.renders = 0

    def get(self, inputs: PosterInputs, signer: LinkSigner, base_url: str) -> bytes:
        key = (inputs.station_id, inputs.month.key)
        fingerprint = inputs.fingerprint()
        now = utcnow()
        with self._lock:
            made = self._made.get(key)
            if made is not None and made.fingerprint == fingerprint and now < made.valid_until - timedelta(
                    seconds=signer.max_age_s / 2):
                self._made.move_to_end(key)
                return made.pdf
        token, valid_until = signer.signed_now(inputs.station_id)
        pdf = render_poster(inputs, f"{base_url}/s/{inputs.station_id}?t={token}", valid_until)
        with self._lock:
            self.renders += 1
            self._made[key] = _Made(fingerprint, pdf, now, valid_until)
            while len(self._made) > self.size:
                self._made.popitem(last=False)
        return pdf
