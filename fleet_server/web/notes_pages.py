"""The "you said, we did" pages: list notes with when each was shown; write, edit, withdraw.

Coordinators write; staff see their own station's notes. Every change is
published at once to the station's kiosks (fleet_server.fleet.note_publishing.publish), and the
page says whether the broker took it.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fleet_server.api.deps import CsrfChecked, PageResultsReader, SessionDep, ensure_station_results, role_refused
from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
from fleet_server.core.i18n import N_
from fleet_server.fleet import note_publishing, notes
from fleet_server.models import Station, StationNote
from fleet_server.results import figures as results
from fleet_server.web.dashboard import page_context
from fleet_server.web.public_pages import forget_public_pages
from fleet_server.web.templating import templates

router = APIRouter(include_in_schema=False)


def publisher_for(request: Request):
    """The fleet-ops config publisher when the app runs one, else a publisher of our own."""
    publisher = getattr(request.app.state, "fleet_publisher", None)
    if publisher is None:
        publisher = getattr(request.app.state, "notes_publisher", None)
        if publisher is None:
            from fleet_server.fleet.publisher import Publisher

            publisher = request.app.state.notes_publisher = Publisher(request.app.state.settings)
    return publisher


def _coordinator(principal) -> None:
    if not principal.may_publish_notes:
        raise role_refused(principal, "publish notes")


def _parse_day(value: str, what: str, required: bool) -> date | None:
    if not value:
        if required:
            raise notes.NoteInvalid(f"give the {what}")
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise notes.NoteInvalid(f"the {what} {value!r} is not a date (YYYY-MM-DD)") from None


def _render(request, session, principal, *, error=None, message=None, form=None, editing=None, code=200):
    visible = [s for s in results.stations_visible(session) if principal.may_view_results(s.id)]
    rows = notes.list_notes(session, [s.id for s in visible])
    names = {s.id: s.name_in(i18n.lang()) for s in visible}
    return templates.TemplateResponse(
        request,
        "notes.html",
        page_context(
            request, principal, nav="notes", notes=rows, stations=visible, names=names, now=utcnow(),
            error=error, message=message, form=form or {}, editing=editing, today=results.today_local(),
        ),
        status_code=code,
    )


DONE = {
    "saved": N_("Note saved and published to {n} kiosk(s) (station config version {version})."),
    "updated": N_("Note updated and published to {n} kiosk(s) (station config version {version})."),
    "withdrawn": N_("Note withdrawn and published to {n} kiosk(s) (station config version {version})."),
    "published": N_("Note published to {n} kiosk(s) (station config version {version})."),
}
NOT_SENT = {
    "saved": N_("The note was saved, but the kiosks have not got it yet: {error}. "
                "Use “Publish again” when the broker is reachable."),
    "updated": N_("The note was updated, but the kiosks have not got it yet: {error}. "
                  "Use “Publish again” when the broker is reachable."),
    "withdrawn": N_("The note was withdrawn, but the kiosks have not got it yet: {error}. "
                    "Use “Publish again” when the broker is reachable."),
    "published": N_("The note was published, but the kiosks have not got it yet: {error}. "
                    "Use “Publish again” when the broker is reachable."),
}


def _outcome_message(outcome: note_publishing.PublishOutcome, action: str) -> tuple[str | None, str | None]:
    if outcome.error:
        return None, i18n.gettext(NOT_SENT[action]).format(error=outcome.error)
    return i18n.gettext(DONE[action]).format(n=len(outcome.devices), version=outcome.config_version), None


@router.get("/notes", response_class=HTMLResponse)
def notes_page(request: Request, session: SessionDep, principal: PageResultsReader,
               edit: int | None = None, done: str | None = None) -> Response:
    editing = None
    if edit is not None:
        _coordinator(principal)
        editing = session.get(StationNote, edit)
        if editing is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no note {id}").format(id=edit))
    return _render(request, session, principal, editing=editing, message=done)


def _note_or_404(session, note_id: int) -> StationNote:
    note = session.get(StationNote, note_id)
    if note is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no note {id}").format(id=note_id))
    return note


def _checked_note(text_fi: str, text_sv: str, text_en: str, starts: str, ends: str):
    """The note's (first, last) day; raises notes.NoteInvalid saying what is wrong."""
    first = _parse_day(starts, "first day", True)
    last = _parse_day(ends, "last day", False)
    assert first is not None  # required: _parse_day raised for an empty one
    notes.validate(text_fi, text_sv, text_en, first, last)
    return first, last


def _after_publish(request: Request, session, principal, outcome, verb: str) -> Response:
    """Back to the list with what happened, or the page with why the kiosks did not get it (502).
    Either way the note is saved, so the public pages show it from now on."""
    forget_public_pages(request.app)
    message, error = _outcome_message(outcome, verb)
    if error:
        return _render(request, session, principal, error=error, code=502)
    return RedirectResponse("/notes?" + urlencode({"done": message or ""}), status_code=303)


@router.post("/notes", response_class=HTMLResponse)
def create_note(
    request: Request,
    session: SessionDep,
    principal: CsrfChecked,
    station_id: Annotated[str, Form()],
    text_fi: Annotated[str, Form()] = "",
    text_sv: Annotated[str, Form()] = "",
    text_en: Annotated[str, Form()] = "",
    starts: Annotated[str, Form()] = "",
    ends: Annotated[str, Form()] = "",
) -> Response:
    _coordinator(principal)
    form = {"station_id": station_id, "text_fi": text_fi, "text_sv": text_sv, "text_en": text_en,
            "starts": starts, "ends": ends}
    if session.get(Station, station_id) is None:
        return _render(request, session, principal, error=f"no station {station_id!r}", form=form, code=400)
    try:
        first, last = _checked_note(text_fi, text_sv, text_en, starts, ends)
    except notes.NoteInvalid as exc:
        return _render(request, session, principal, error=str(exc), form=form, code=400)
    note = StationNote(
        station_id=station_id, text_fi=text_fi.strip(), text_sv=text_sv.strip(), text_en=text_en.strip(),
        starts=first, ends=last, created_by=principal.name, updated_by=principal.name,
    )
    session.add(note)
    session.flush()
    outcome = note_publishing.publish(session, publisher_for(request), note, principal.name, "written")
    return _after_publish(request, session, principal, outcome, "saved")


@router.post("/notes/{note_id}", response_class=HTMLResponse)
def update_note(
    request: Request,
    session: SessionDep,
    principal: CsrfChecked,
    note_id: int,
    text_fi: Annotated[str, Form()] = "",
    text_sv: Annotated[str, Form()] = "",
    text_en: Annotated[str, Form()] = "",
    starts: Annotated[str, Form()] = "",
    ends: Annotated[str, Form()] = "",
) -> Response:
    _coordinator(principal)
    note = _note_or_404(session, note_id)
    if note.withdrawn_at is not None:
        return _render(request, session, principal, error=i18n.gettext("a withdrawn note cannot be edited; write a new one"), code=409)
    try:
        first, last = _checked_note(text_fi, text_sv, text_en, starts, ends)
    except notes.NoteInvalid as exc:
        return _render(request, session, principal, error=str(exc), editing=note, code=400)
    note.text_fi, note.text_sv, note.text_en = text_fi.strip(), text_sv.strip(), text_en.strip()
    note.starts, note.ends = first, last
    note.revision += 1
    note.updated_by, note.updated_at = principal.name, utcnow()
    outcome = note_publishing.publish(session, publisher_for(request), note, principal.name, "edited")
    return _after_publish(request, session, principal, outcome, "updated")


@router.post("/notes/{note_id}/withdraw", response_class=HTMLResponse)
def withdraw_note(request: Request, session: SessionDep, principal: CsrfChecked, note_id: int) -> Response:
    _coordinator(principal)
    note = _note_or_404(session, note_id)
    if note.withdrawn_at is None:
        note.withdrawn_at, note.withdrawn_by = utcnow(), principal.name
    outcome = note_publishing.publish(session, publisher_for(request), note, principal.name, "withdrawn")
    return _after_publish(request, session, principal, outcome, "withdrawn")


@router.post("/notes/{note_id}/publish", response_class=HTMLResponse)
def republish_note(request: Request, session: SessionDep, principal: CsrfChecked, note_id: int) -> Response:
    _coordinator(principal)
    note = _note_or_404(session, note_id)
    ensure_station_results(principal, note.station_id)
    outcome = note_publishing.republish(session, publisher_for(request), note)
    return _after_publish(request, session, principal, outcome, "published")
