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
"""

from __future__ import annotations

import hashlib
import io
import uuid
from typing import Annotated, Any

import uuid6
from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.auth.deps import DbSession, PageCoordinator
from fleet_server.auth.setup import session_secret
from fleet_server.channels import web_limits
from fleet_server.channels.answers import WEB_TOPIC, store_answers
from fleet_server.channels.links import LinkSigner, link_signer, survey_path
from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
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
)


def install_web_survey(app: FastAPI, settings: Settings) -> None:
    app.state.web_links = link_signer(session_secret(settings), settings)
    app.state.web_address_secret = hashlib.sha256(b"palaute.web-addr\0" + session_secret(settings).encode()).hexdigest()
    app.include_router(router)


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
    faces = [(v, i18n.translations(code).gettext(label)) for v, label in FACES]
    return _page(request, code, {**base, "mode": "smiley", "question": _text(config.survey.question, code),
                                 "faces": faces, "sid": str(uuid6.uuid7())})


def _store(request: Request, db: Session, station_id: str, items: list[dict[str, Any]]) -> str:
    """'stored' | 'duplicate' | 'limited' | 'refused' for the web answers of one form."""
    settings: Settings = request.app.state.settings
    address = request.client.host if request.client else "unknown"
    hit = web_limits.take(db, address_key_=web_limits.address_key(request.app.state.web_address_secret, address),
                          station_id=station_id, now=utcnow(), per_address=settings.web_answers_per_address_hour,
                          per_station=settings.web_answers_per_station_hour)
    if hit:
        db.commit()
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
    if option == "skip":
        return _finish(request, base, code, "stored")
    question = next((f for f in config.survey.followups if f.id == question_id), None)
    if question is None or option not in {o.id for o in question.options}:
        return _finish(request, base, code, "refused")
    outcome = _store(request, db, station_id, [_answer(
        config, followup_id(sid, question_id), code, kind="followup", value=option, question_id=question_id,
        answer_to=str(sid))])
    return _finish(request, base, code, outcome)


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
