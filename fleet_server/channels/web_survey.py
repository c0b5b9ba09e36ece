"""The web survey behind a station's QR code: /s/<station>?t=<signed link>, no login, no cookies.

The page asks the station's own survey (its config: the four faces, the follow-up, its languages)
as plain HTML forms that work without JavaScript: every face is a submit button, every follow-up
option too. Answers carry ``channel = web`` and go through the ingest's store like a kiosk's
(fleet_server.channels.answers), so they land in the same tables, rollups and exports.

Abuse protection (docs/counting.md "Web answers"):
- the link is signed (fleet_server.channels.links: itsdangerous, salt ``palaute.web-survey.v1``, the server's session secret)
  and carries the station (and the kiosk whose screen showed it) and when it was made; it works
  ``web_link_days`` days. The server makes a fresh one every time a coordinator downloads the QR
  code (GET /stations/<id>/qr.svg|png), so rotating means printing the new code; no key is on a kiosk.
- each page carries a submission id (a UUIDv7 made with the page): the smiley's ``event_id`` is that
  id and the follow-up's is derived from it, so sending the same form twice stores one answer;
- per client address and per station at most ``web_answers_per_address_hour`` and
  ``web_answers_per_station_hour`` answers an hour, counted in the database (fleet_server.channels.web_limits).

Per station (fleet_server.channels.web_settings, both off by default) the page can instead ask
the national questionnaire in full (fleet_server.channels.questionnaire: one form, radio groups
in fieldsets, stored item by item under the page's submission id) and can offer an open comment
(fleet_server.channels.comments: masked before it is stored; after the smiley and its follow-up,
or at the end of the questionnaire). A comment after the smiley is taken only for a page whose
smiley answer is stored, so comments are bounded by the same limits as answers.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from typing import Annotated, Any

import uuid6
from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.auth.deps import DbSession, PageCoordinator
from fleet_server.auth.setup import session_secret
from fleet_server.channels import comments as web_comments
from fleet_server.channels import questionnaire, web_limits, web_settings
from fleet_server.channels.answers import WEB_TOPIC, store_answers
from fleet_server.channels.links import LinkSigner, link_signer, survey_path
from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
from fleet_server.core.errors import BadQuestionnaire
from fleet_server.core.i18n import N_
from fleet_server.core.settings import Settings
from fleet_server.fleet.remote_config import build_station_config
from fleet_server.ingest.store import REASON_CONFLICTING_DUPLICATE
from fleet_server.models import Device, FeedbackEvent, Station
from fleet_server.web.templating import templates
from palaute_wire import contract
from palaute_wire.contract import FollowupQuestion, StationConfig, text_in
from palaute_wire.surveys import default_survey

__all__ = ["LinkSigner", "install_web_survey", "survey_path"]

router = APIRouter(tags=["web survey"], include_in_schema=False)  # pages, like the dashboard

FACES = ((1, N_("Very unhappy")), (2, N_("Unhappy")), (3, N_("Happy")), (4, N_("Very happy")))
"""The four faces as the web page names them (the same order as the kiosk's)."""

TEXTS = (
    N_("This link has expired or is not valid. Scan the code at the health station again."),
    N_("Too many answers from here just now. Please try again later."),
    N_("Thank you for your feedback!"),
    N_("Your answer was already saved. Thank you!"),
    N_("Skip"),
    N_("Feedback"),
    N_("Language"),
    N_("No login, and nothing about you is asked or saved."),
    N_("Send"),
    N_("Anything else you would like to tell us? (optional)"),
    N_("Please do not write your name, identity code, phone number or e-mail address. Identity codes, phone "
       "numbers and e-mail addresses are removed before the comment is saved."),
    N_("At most %(num)d characters."),
    N_("Send the comment"),
    N_("No comment"),
    N_("Answer at least one question, or write a comment."),
    N_("Every question is optional."),
)


def install_web_survey(app: FastAPI, settings: Settings) -> None:
    app.state.web_links = link_signer(session_secret(settings), settings)
    app.state.web_address_secret = hashlib.sha256(b"palaute.web-addr\0" + session_secret(settings).encode()).hexdigest()
    app.include_router(router)
    from fleet_server.web.questionnaire_pages import router as pages_router  # the coordinators' side of it

    app.include_router(pages_router)


def followup_id(submission: uuid.UUID, question_id: str) -> uuid.UUID:
    """The follow-up's event id from its page's submission id: the same time prefix (UUIDv7), the rest a hash."""
    digest = int.from_bytes(hashlib.sha256(submission.bytes + question_id.encode()).digest()[:10], "big")
    value = (submission.int >> 80) << 80 | digest
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)


def _config(session: Session, station_id: str) -> StationConfig:
    if session.get(Station, station_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("Not found"))
    try:
        return build_station_config(session, station_id)
    except Exception:  # noqa: BLE001 - a station whose saved config is broken still gets the default survey
        return StationConfig(config_version=1, station_id=station_id, survey=default_survey())


def _lang(request: Request, config: StationConfig, asked: str | None) -> str:
    languages = list(config.languages) or list(contract.LANGUAGES)
    if asked in languages:
        return asked
    guess = i18n.negotiate(request.headers.get("accept-language"))
    return guess if guess in languages else config.default_lang


def _page(request: Request, lang: str, template_context: dict[str, Any], code: int = 200) -> HTMLResponse:
    i18n.current_lang.set(lang)
    response = templates.TemplateResponse(request, "survey.html", {"principal": None, **template_context},
                                          status_code=code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = lang
    return response


def _base(config: StationConfig, station: Station | None, lang: str, token: str) -> dict[str, Any]:
    return {
        "lang_code": lang, "station_id": config.station_id, "token": token,
        "station_title": station.name_in(lang) if station else config.station_id,
        "languages": [(code, i18n.LANGUAGE_NAMES[code]) for code in (config.languages or contract.LANGUAGES)],
    }


def _followup(config: StationConfig, value: int) -> FollowupQuestion | None:
    return next((f for f in config.survey.followups if value in f.for_values), None)


def _text(texts: dict, lang: str) -> str:
    return text_in(texts, lang) or next(iter(texts.values()), "")


@router.get("/s/{station_id}", response_class=HTMLResponse, summary="The web survey of a station (no login)")
def survey_page(request: Request, db: DbSession, station_id: str,
                t: Annotated[str | None, Query(max_length=400)] = None,
                lang: Annotated[str | None, Query(max_length=5)] = None) -> HTMLResponse:
    config = _config(db, station_id)
    code = _lang(request, config, lang)
    base = _base(config, db.get(Station, station_id), code, t or "")
    if not request.app.state.web_links.check(t, station_id):
        return _page(request, code, {**base, "mode": "expired"}, status.HTTP_403_FORBIDDEN)
    chosen = web_settings.choices(db, station_id)
    if chosen.questionnaire:
        return _questionnaire_page(request, code, base, str(uuid6.uuid7()), chosen.comments)
    faces = [(v, i18n.translations(code).gettext(label)) for v, label in FACES]
    return _page(request, code, {**base, "mode": "smiley", "question": _text(config.survey.question, code),
                                 "faces": faces, "sid": str(uuid6.uuid7())})


def _questionnaire_page(request: Request, lang: str, base: dict[str, Any], sid: str, comments: bool,
                        error: str | None = None, code: int = 200) -> HTMLResponse:
    items = [{"id": item.id, "text": item.text_in(lang), "scale": item.scale.id,
              "points": list(zip(item.scale.points, item.scale.labels.get(lang) or item.scale.labels["fi"],
                                 strict=True)),
              "cannot_say": questionnaire.CANNOT_SAY_TEXT[lang] if item.scale.cannot_say else None}
             for item in questionnaire.ITEMS]
    return _page(request, lang, {
        **base, "mode": "questionnaire", "sid": sid, "items": items, "title": questionnaire.TITLE[lang],
        "intro": questionnaire.STATEMENTS_INTRO[lang], "cannot_say_value": questionnaire.CANNOT_SAY,
        "comments": comments, "max_chars": request.app.state.settings.web_comment_max_chars, "error": error,
    }, code)


def _comment_page(request: Request, lang: str, base: dict[str, Any], sid: str) -> HTMLResponse:
    return _page(request, lang, {**base, "mode": "comment", "sid": sid,
                                 "max_chars": request.app.state.settings.web_comment_max_chars})


def _limited(request: Request, db: Session, station_id: str) -> bool:
    """Count one form against the per-address and per-station limits (committed when hit)."""
    settings: Settings = request.app.state.settings
    address = request.client.host if request.client else "unknown"
    hit = web_limits.take(db, address_key_=web_limits.address_key(request.app.state.web_address_secret, address),
                          station_id=station_id, now=utcnow(), per_address=settings.web_answers_per_address_hour,
                          per_station=settings.web_answers_per_station_hour)
    if hit:
        db.commit()
    return hit is not None


def _store(request: Request, db: Session, station_id: str, items: list[dict[str, Any]]) -> str:
    """'stored' | 'duplicate' | 'limited' | 'refused' for the web answers of one form."""
    if _limited(request, db, station_id):
        return "limited"
    for item in items:  # a form sent again is the same answer: compare it by content, not by when it came
        stored_ts = db.scalar(select(FeedbackEvent.ts).where(FeedbackEvent.event_id == uuid.UUID(item["answer_id"])))
        if stored_ts is not None:
            item["ts"] = stored_ts.isoformat()
    results = store_answers(db, items, channels=("web",), topic=WEB_TOPIC)
    db.commit()
    result = results[0]
    if result.outcome == "refused":  # the same form sent again with another choice: the first one holds
        return "duplicate" if result.reason == REASON_CONFLICTING_DUPLICATE else "refused"
    return result.outcome


def _answer(config: StationConfig, sid: uuid.UUID, lang: str, **fields: Any) -> dict[str, Any]:
    return {"answer_id": str(sid), "station_id": config.station_id, "channel": "web", "lang": lang,
            "ts": utcnow().isoformat(), "survey_version": config.survey_version, **fields}


def _finish(request: Request, base: dict[str, Any], lang: str, outcome: str) -> HTMLResponse:
    if outcome == "limited":
        return _page(request, lang, {**base, "mode": "limited"}, status.HTTP_429_TOO_MANY_REQUESTS)
    if outcome == "refused":
        return _page(request, lang, {**base, "mode": "expired"}, status.HTTP_400_BAD_REQUEST)
    return _page(request, lang, {**base, "mode": "thanks", "already": outcome == "duplicate"})


@router.post("/s/{station_id}", response_class=HTMLResponse, summary="A web survey's smiley answer")
def answer_smiley(request: Request, db: DbSession, station_id: str,
                  t: Annotated[str, Form(max_length=400)], sid: Annotated[uuid.UUID, Form()],
                  value: Annotated[int, Form(ge=1, le=4)], lang: Annotated[str, Form(max_length=5)] = "fi") -> HTMLResponse:
    config = _config(db, station_id)
    code = _lang(request, config, lang)
    base = _base(config, db.get(Station, station_id), code, t)
    if not request.app.state.web_links.check(t, station_id):
        return _page(request, code, {**base, "mode": "expired"}, status.HTTP_403_FORBIDDEN)
    outcome = _store(request, db, station_id, [_answer(config, sid, code, kind="smiley", value=value,
                                                       question_id=config.survey.question_id)])
    question = _followup(config, value)
    if outcome == "stored" and question is None and web_settings.choices(db, station_id).comments:
        return _comment_page(request, code, base, str(sid))
    if outcome != "stored" or question is None:
        return _finish(request, base, code, outcome)
    options = [(o.id, _text(o.text, code)) for o in question.options]
    return _page(request, code, {**base, "mode": "followup", "sid": str(sid), "question_id": question.id,
                                 "question": _text(question.text, code), "options": options})


@router.post("/s/{station_id}/followup", response_class=HTMLResponse, summary="A web survey's follow-up answer")
def answer_followup(request: Request, db: DbSession, station_id: str,
                    t: Annotated[str, Form(max_length=400)], sid: Annotated[uuid.UUID, Form()],
                    question_id: Annotated[str, Form(max_length=64)],
                    option: Annotated[str, Form(max_length=64)], lang: Annotated[str, Form(max_length=5)] = "fi",
                    ) -> HTMLResponse:
    config = _config(db, station_id)
    code = _lang(request, config, lang)
    base = _base(config, db.get(Station, station_id), code, t)
    if not request.app.state.web_links.check(t, station_id):
        return _page(request, code, {**base, "mode": "expired"}, status.HTTP_403_FORBIDDEN)
    comments_on = web_settings.choices(db, station_id).comments
    if option == "skip":
        return _comment_page(request, code, base, str(sid)) if comments_on else _finish(request, base, code, "stored")
    question = next((f for f in config.survey.followups if f.id == question_id), None)
    if question is None or option not in {o.id for o in question.options}:
        return _finish(request, base, code, "refused")
    outcome = _store(request, db, station_id, [_answer(
        config, followup_id(sid, question_id), code, kind="followup", value=option, question_id=question_id,
        answer_to=str(sid))])
    if outcome == "stored" and comments_on:
        return _comment_page(request, code, base, str(sid))
    return _finish(request, base, code, outcome)


@router.post("/s/{station_id}/questionnaire", response_class=HTMLResponse,
             summary="A web survey's national questionnaire (stations that use it)")
async def answer_questionnaire(request: Request, station_id: str) -> HTMLResponse:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str) and len(v) <= web_comments.MAX_FORM_CHARS}
    return await run_in_threadpool(_answer_questionnaire, request, station_id, fields)


def _answer_questionnaire(request: Request, station_id: str, fields: dict[str, str]) -> HTMLResponse:
    with request.app.state.session_factory() as db:
        config = _config(db, station_id)
        code = _lang(request, config, fields.get("lang"))
        token = fields.get("t", "")[:400]
        base = _base(config, db.get(Station, station_id), code, token)
        chosen = web_settings.choices(db, station_id)
        try:
            sid = uuid.UUID(fields.get("sid", ""))
        except ValueError:
            sid = None
        if not request.app.state.web_links.check(token, station_id) or sid is None or not chosen.questionnaire:
            return _page(request, code, {**base, "mode": "expired"}, status.HTTP_403_FORBIDDEN)
        try:
            answers = questionnaire.parse_answers(fields)
        except BadQuestionnaire:
            return _page(request, code, {**base, "mode": "expired"}, status.HTTP_400_BAD_REQUEST)
        comment = (fields.get("comment") or "") if chosen.comments else ""
        if not answers and not comment.strip():
            return _questionnaire_page(request, code, base, str(sid), chosen.comments, error=i18n.translations(
                code).gettext("Answer at least one question, or write a comment."), code=status.HTTP_400_BAD_REQUEST)
        if _limited(request, db, station_id):
            return _finish(request, base, code, "limited")
        now = utcnow()
        outcome = questionnaire.store_response(db, station_id=station_id, submission_id=sid, lang=code,
                                               answers=answers, now=now) if answers else "stored"
        if comment.strip() and outcome == "stored":
            comment_outcome = web_comments.store_comment(
                db, station_id=station_id, submission_id=sid, lang=code, raw=comment,
                max_chars=request.app.state.settings.web_comment_max_chars, now=now)
            if not answers:
                outcome = "duplicate" if comment_outcome == "duplicate" else "stored"
        db.commit()
        return _finish(request, base, code, outcome)


@router.post("/s/{station_id}/comment", response_class=HTMLResponse, summary="A web survey's open comment")
def answer_comment(request: Request, db: DbSession, station_id: str,
                   t: Annotated[str, Form(max_length=400)], sid: Annotated[uuid.UUID, Form()],
                   lang: Annotated[str, Form(max_length=5)] = "fi",
                   comment: Annotated[str, Form(max_length=web_comments.MAX_FORM_CHARS)] = "",
                   action: Annotated[str, Form(max_length=16)] = "send") -> HTMLResponse:
    config = _config(db, station_id)
    code = _lang(request, config, lang)
    base = _base(config, db.get(Station, station_id), code, t)
    if not request.app.state.web_links.check(t, station_id) or not web_settings.choices(db, station_id).comments:
        return _page(request, code, {**base, "mode": "expired"}, status.HTTP_403_FORBIDDEN)
    answered = db.scalar(select(FeedbackEvent.id).where(
        FeedbackEvent.event_id == sid, FeedbackEvent.station_id == station_id, FeedbackEvent.channel == "web"))
    if answered is None:  # a comment belongs to a page whose smiley answer was stored
        return _page(request, code, {**base, "mode": "expired"}, status.HTTP_400_BAD_REQUEST)
    if action != "send" or not comment.strip():
        return _finish(request, base, code, "stored")
    outcome = web_comments.store_comment(db, station_id=station_id, submission_id=sid, lang=code, raw=comment,
                                         max_chars=request.app.state.settings.web_comment_max_chars, now=utcnow())
    db.commit()
    return _finish(request, base, code, "duplicate" if outcome == "duplicate" else "stored")


@router.get("/stations/{station_id}/qr.{fmt}", summary="The QR code of a station's web survey (coordinators)")
def station_qr(request: Request, db: DbSession, _who: PageCoordinator, station_id: str, fmt: str,
               kiosk: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    if fmt not in ("svg", "png") or db.get(Station, station_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("Not found"))
    if kiosk is not None:
        device = db.get(Device, kiosk)
        if device is None or device.station_id != station_id:
            raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("Not found"))
    import segno  # here, not at import: a server without the QR dependency still serves everything else

    url = str(request.base_url).rstrip("/") + survey_path(request.app.state.web_links, station_id, kiosk)
    qr = segno.make(url, error="m")
    out = io.BytesIO()
    if fmt == "svg":
        qr.save(out, kind="svg", scale=8, border=4, title=url)
        media = "image/svg+xml"
    else:
        qr.save(out, kind="png", scale=8, border=4)
        media = "image/png"
    return Response(out.getvalue(), media_type=media, headers={
        "Cache-Control": "no-store", "X-Survey-Link": url,
        "Content-Disposition": f'inline; filename="palaute-{station_id}{"-" + kiosk if kiosk else ""}.{fmt}"'})
