"""Dashboard pages of the web channel: the national questionnaire item by item, the open
comments (coordinators only), and a station's web-page choices (coordinators).

- /stations/<id>/questionnaire (and .csv / .xlsx): everyone who may see the station's results;
  figures under the small-count rule (fleet_server.results.questionnaire).
- /stations/<id>/comments: coordinators only (``Principal.may_read_comments``); the masked
  text, newest first. The file comes only from a POST whose form says the export is wanted on
  purpose (a checkbox, with the session's CSRF token): no link or GET can download comments.
- /stations/<id>/web: whether the station's web page asks the national questionnaire and
  offers a comment (both off by default), and the link to its QR code.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from markupsafe import Markup

from fleet_server.api.deps import (
    CsrfChecked,
    PageResultsReader,
    PageUser,
    SessionDep,
    SettingsDep,
    ensure_station_results,
)
from fleet_server.channels import comments as web_comments
from fleet_server.channels import web_settings
from fleet_server.channels.questionnaire import AGREE_SCALE, RECOMMEND_SCALE
from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
from fleet_server.core.errors import CommentsForbidden
from fleet_server.core.i18n import N_
from fleet_server.models import Station
from fleet_server.results import exports
from fleet_server.results import figures as results
from fleet_server.results import questionnaire as items
from fleet_server.web.dashboard import page_context
from fleet_server.web.templating import templates

router = APIRouter(include_in_schema=False)

MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}

COLUMN_LABELS = {
    "station_id": N_("Station id"), "station": N_("Station"), "first_day": N_("First day"), "last_day": N_("Last day"),
    "questionnaire": N_("Questionnaire"), "version": N_("Version"), "question_id": N_("Question"),
    "topic": N_("Topic"), "answers": N_("Answers"), "cannot_say": N_("Cannot say"), "mean": N_("Mean"),
    "recommendation_index": N_("Recommendation index"), "agree_share": N_("Share who agree"),
    "received_at": N_("Received"), "lang": N_("Language"), "masked": N_("Pieces masked"), "comment": N_("Comment"),
}
TOPICS = {"recommendation": N_("Recommendation"), "access": N_("Access to the service"),
          "treatment": N_("How you were met"), "safety": N_("Safety"), "information": N_("Information"),
          "usefulness": N_("Usefulness")}
MARKER_LABELS = {"[HETU]": N_("identity code removed"), "[PHONE]": N_("phone number removed"),
                 "[EMAIL]": N_("e-mail address removed")}


_MARKER_RE = re.compile("(" + "|".join(re.escape(m) for m in MARKER_LABELS) + ")")


def render_comment(text: str) -> Markup:
    """A stored comment for the page: escaped, its masking markers shown as labelled marks."""
    parts = []
    for piece in _MARKER_RE.split(text):
        if piece in MARKER_LABELS:
            parts.append(Markup('<mark class="masked">%s</mark>') % i18n.gettext(MARKER_LABELS[piece]))
        elif piece:
            parts.append(Markup("%s") % piece)
    return Markup("").join(parts)


def _header(columns: tuple[str, ...]) -> list[str]:
    if i18n.lang() == "en":
        return list(columns)
    return [i18n.gettext(COLUMN_LABELS[c]) if c in COLUMN_LABELS else c for c in columns]


def _station(session, station_id: str) -> Station:
    st = session.get(Station, station_id)
    if st is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("Not found"))
    return st


def _period(range_: str | None, from_: str | None, to: str | None) -> results.Period:
    try:
        return results.parse_period(range_ or "30d", from_ or None, to or None, results.today_local())
    except results.BadPeriod as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


RangeQ = Annotated[str | None, Query(alias="range")]
FromQ = Annotated[str | None, Query(alias="from")]
ToQ = Annotated[str | None, Query()]


@router.get("/stations/{station_id}/questionnaire", response_class=HTMLResponse)
def questionnaire_page(request: Request, session: SessionDep, settings: SettingsDep, principal: PageResultsReader,
                       station_id: str, range_: RangeQ = None, from_: FromQ = None, to: ToQ = None) -> Response:
    ensure_station_results(principal, station_id)
    st = _station(session, station_id)
    period = _period(range_, from_, to)
    res = items.results(session, [station_id], period.start, period.end, settings.min_responses)
    lang = i18n.lang()
    labels = {"recommend": RECOMMEND_SCALE.labels[lang], "agree": AGREE_SCALE.labels[lang]}
    return templates.TemplateResponse(request, "survey_results.html", page_context(
        request, principal, nav="overview", station=st, period=period, res=res, minimum=settings.min_responses,
        base_path=f"/stations/{station_id}/questionnaire", topics=TOPICS, scale_labels=labels,
        choices=web_settings.choices(session, station_id)))


@router.get("/stations/{station_id}/questionnaire.{fmt}")
def questionnaire_export(request: Request, session: SessionDep, settings: SettingsDep, principal: PageResultsReader,
                         station_id: str, fmt: str, range_: RangeQ = None, from_: FromQ = None,
                         to: ToQ = None) -> Response:
    ensure_station_results(principal, station_id)
    if fmt not in MEDIA:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("Not found"))
    st = _station(session, station_id)
    period = _period(range_, from_, to)
    stations = [(st.id, st.name_in(i18n.lang()))]
    minimum = settings.min_responses

    def rows(s):
        return items.export_rows(s, stations, period.first, period.last, period.start, period.end, minimum)

    factory = request.app.state.session_factory
    header = _header(items.EXPORT_COLUMNS)
    body = (exports.stream_csv(factory, header, rows, exports.default_dialect()) if fmt == "csv"
            else exports.stream_xlsx(factory, i18n.gettext("Questionnaire"), header, rows))
    name = f"palaute-questionnaire-{station_id}-{period.first}-{period.last}.{fmt}"
    return StreamingResponse(body, media_type=MEDIA[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def _coordinator(principal) -> None:
    if not principal.may_read_comments:
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext("Open comments are for coordinators only."))


def _comments_response(request: Request, session, settings, principal, st: Station, period: results.Period,
                       error: str | None = None, code: int = 200) -> Response:
    rows = web_comments.read_comments(session, principal, [st.id], period.start, period.end)
    total = web_comments.count_comments(session, principal, [st.id], period.start, period.end)
    return templates.TemplateResponse(request, "survey_comments.html", page_context(
        request, principal, nav="overview", station=st, period=period, comments=rows, total=total,
        base_path=f"/stations/{st.id}/comments", render_comment=render_comment, error=error,
        retention_days=settings.retention_comments_days, choices=web_settings.choices(session, st.id)),
        status_code=code)


@router.get("/stations/{station_id}/comments", response_class=HTMLResponse)
def comments_page(request: Request, session: SessionDep, settings: SettingsDep, principal: PageUser,
                  station_id: str, range_: RangeQ = None, from_: FromQ = None, to: ToQ = None) -> Response:
    _coordinator(principal)
    return _comments_response(request, session, settings, principal, _station(session, station_id),
                              _period(range_, from_, to))


@router.post("/stations/{station_id}/comments/export")
def comments_export(request: Request, session: SessionDep, settings: SettingsDep, principal: CsrfChecked,
                    station_id: str, confirm: Annotated[str, Form(max_length=8)] = "",
                    range_: Annotated[str | None, Form(alias="range", max_length=16)] = None,
                    from_: Annotated[str | None, Form(alias="from", max_length=10)] = None,
                    to: Annotated[str | None, Form(max_length=10)] = None) -> Response:
    _coordinator(principal)
    st = _station(session, station_id)
    period = _period(range_, from_, to)
    confirmed = confirm == "yes"
    if not confirmed:
        return _comments_response(request, session, settings, principal, st, period, code=status.HTTP_400_BAD_REQUEST,
                                  error=i18n.gettext("Tick the box to say you want the comments as a file."))
    try:  # checked here as well, so the refusal is a page and not a broken download
        next(iter(web_comments.export_rows(session, principal, [st.id], period.start, period.end, confirmed=True)),
             None)
    except CommentsForbidden:
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext("Open comments are for coordinators only.")) from None

    def rows(s):
        return web_comments.export_rows(s, principal, [st.id], period.start, period.end, confirmed=True)

    name = f"palaute-comments-{station_id}-{period.first}-{period.last}.csv"
    body = exports.stream_csv(request.app.state.session_factory, _header(web_comments.EXPORT_COLUMNS), rows,
                              exports.default_dialect())
    return StreamingResponse(body, media_type=MEDIA["csv"], headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def _web_response(request: Request, session, settings, principal, st: Station, saved: bool = False) -> Response:
    return templates.TemplateResponse(request, "survey_settings.html", page_context(
        request, principal, nav="overview", station=st, choices=web_settings.choices(session, st.id), saved=saved,
        max_chars=settings.web_comment_max_chars, retention_days=settings.retention_comments_days))


@router.get("/stations/{station_id}/web", response_class=HTMLResponse)
def web_page(request: Request, session: SessionDep, settings: SettingsDep, principal: PageUser,
             station_id: str, saved: int = 0) -> Response:
    if not principal.may_set_web_survey:
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext("Only coordinators set what the web page asks."))
    return _web_response(request, session, settings, principal, _station(session, station_id), saved=bool(saved))


@router.post("/stations/{station_id}/web")
def web_save(request: Request, session: SessionDep, principal: CsrfChecked, station_id: str,
             questionnaire: Annotated[str, Form(max_length=8)] = "",
             comments: Annotated[str, Form(max_length=8)] = "") -> Response:
    if not principal.may_set_web_survey:
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext("Only coordinators set what the web page asks."))
    _station(session, station_id)
    web_settings.set_choices(session, station_id, questionnaire=questionnaire == "on", comments=comments == "on",
                             by=principal.name, now=utcnow())
    session.commit()
    return RedirectResponse(f"/stations/{station_id}/web?saved=1", status.HTTP_303_SEE_OTHER)
