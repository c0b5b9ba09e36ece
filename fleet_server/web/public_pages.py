"""Results in public: a page per station and per group that anyone may read, with no sign-in.

A coordinator turns a station's or a group's page on (/public-pages, or ``palaute-server public``);
every page is off until then, and an unknown id and a page that is off answer the same 404. A page
shows the last 30 and 90 days and the last twelve months under the small-count rule through the
hierarchy (fleet_server.results.public), and the station's "you said, we did" notes under "What
changed because of your feedback", in Finnish, Swedish or English (``?lang=``, else the browser's
Accept-Language, else Finnish), with no cookie and no JavaScript.

Variants of each page:
- ``/public/stations/<id>``: the page; ``frame-ancestors 'none'`` like every dashboard page;
- ``/public/stations/<id>/embed``: a small card for an iframe on the county's own site; the sites
  allowed to frame it are ``PALAUTE_PUBLIC_FRAME_ANCESTORS`` (CSP ``frame-ancestors``; none by default);
- ``/public/stations/<id>/data.json``: open data, field names documented in docs/api.md;
and the same under ``/public/groups/<id>``; ``/public`` and ``/public/data.json`` list them all.

Speed: the figures of all public pages are one ``Snapshot`` and each answer's bytes are kept, both
in a small in-process cache (``PublicCache``) for ``PALAUTE_PUBLIC_CACHE_S`` seconds (60). When the
snapshot is older, a background thread rebuilds it while every reader keeps getting the old one
(a page older than its snapshot is rendered again by its next reader, a few milliseconds), so only
the first reader after a start (or after a coordinator's change) waits for the database. A change
made on /public-pages, and a "you said, we did" note written, edited, withdrawn or published again
(fleet_server.web.notes_pages), clears this process's cache at once (``forget_public_pages``); other
server processes of the same deployment show it when their entries expire (at most
``public_cache_s`` later), as they do new answers.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from babel.dates import format_date
from fastapi import APIRouter, FastAPI, Form, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from fleet_server.api.deps import CsrfChecked, PageCoordinator, SessionDep, SettingsDep
from fleet_server.auth.setup import CONTENT_SECURITY_POLICY
from fleet_server.core import i18n
from fleet_server.core.i18n import N_
from fleet_server.core.settings import Settings
from fleet_server.models import Station, StationGroup
from fleet_server.results import public
from fleet_server.results.groups import load_tree
from fleet_server.web.dashboard import page_context
from fleet_server.web.poster import PosterCache, poster_inputs
from fleet_server.web.templating import templates

router = APIRouter(include_in_schema=False)  # pages and files, like the dashboard; docs/api.md documents the JSON

SCHEMA = "palaute.public.v1"
"""The open-data JSON's ``schema``; a change that renames or removes a field gets a new one."""
KINDS = {"stations": "station", "groups": "group"}
PERIOD_LABELS = {"last_30_days": N_("Last 30 days"), "last_90_days": N_("Last 90 days")}
GROUP_KIND_NAMES = {"county": N_("Wellbeing services county"), "municipality": N_("Municipality"),
                    "area": N_("Service area")}
TEXTS = (N_("Patient feedback"), N_("What changed because of your feedback"), N_("Month by month"),
         N_("satisfied"), N_("responses"), N_("Too few responses to show"))
ANSWER_FIELDS = ("very_unhappy", "unhappy", "happy", "very_happy")
"""The four faces in the JSON, smiley 1..4."""
FALLBACK_LANG = "fi"
"""A browser naming none of fi, sv, en gets Finnish: the county's own first language."""


# --------------------------------------------------------------------- the cache


@dataclass
class _Entry:
    value: Any
    made: float
    generation: int


class PublicCache:
    """A small time-to-live cache whose stale entries are served while one thread rebuilds them.

    Bounded: the keys are the public pages (a 404 is decided from the snapshot, never stored).
    """

    MAX_ENTRIES = 4096

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Any, _Entry] = {}
        self._building: dict[Any, threading.Event] = {}
        self._generation = 0
        self.builds = 0
        """How many times a value was built (tests and the benchmark read it)."""

    def peek(self, key: Any, valid: Callable[[Any], bool] | None = None) -> Any:
        """The value of ``key`` if it is fresh (and ``valid``), else None; never builds."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and self._clock() - entry.made < self.ttl_s and (valid is None or valid(entry.value)):
                return entry.value
            return None

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1

    def get(self, key: Any, build: Callable[[], Any], valid: Callable[[Any], bool] | None = None,
            background: bool = False) -> Any:
        """The value of ``key``, built by ``build`` when missing, older than the TTL or not ``valid``.

        A stale value is returned while one thread rebuilds it; with ``background`` that thread is a
        new one, so no reader waits (only the very first build of a key is waited for).
        """
        while True:
            with self._lock:
                entry = self._entries.get(key)
                fresh = entry is not None and self._clock() - entry.made < self.ttl_s and (
                    valid is None or valid(entry.value))
                if entry is not None and (fresh or key in self._building):
                    return entry.value  # fresh, or stale while another thread rebuilds it
                waiting = self._building.get(key)
                if waiting is None:
                    self._building[key] = done = threading.Event()
                    generation = self._generation
                    break
            waiting.wait(30)  # the first build of this key is under way: take its result
        if entry is not None and background and self.ttl_s > 0:
            threading.Thread(target=self._build, args=(key, build, done, generation), daemon=True,
                             name="public-cache").start()
            return entry.value
        return self._build(key, build, done, generation)

    def _build(self, key: Any, build: Callable[[], Any], done: threading.Event, generation: int) -> Any:
        try:
            value = build()
            with self._lock:
                self.builds += 1
                if generation == self._generation:  # not cleared meanwhile (else the next reader rebuilds)
                    if len(self._entries) >= self.MAX_ENTRIES:
                        self._entries.clear()
                    self._entries[key] = _Entry(value, self._clock(), generation)
            return value
        finally:
            with self._lock:
                self._building.pop(key, None)
            done.set()


def install_public_pages(app: FastAPI, settings: Settings) -> None:
    app.state.public_cache = PublicCache(settings.public_cache_s)
    app.state.poster_cache = PosterCache()
    app.include_router(router)


def _cache(request: Request) -> PublicCache:
    return request.app.state.public_cache


def forget_public_pages(app: FastAPI) -> None:
    """After a change the public pages show (a page turned on or off, a note): this process builds
    them again for their next reader. Every page is made from the one snapshot, so a station's
    pages and its groups' go with it; other server processes keep theirs until they expire."""
    cache: PublicCache | None = getattr(app.state, "public_cache", None)
    if cache is not None:
        cache.clear()


_SERIALS = itertools.count(1)


def snapshot(request: Request) -> public.Snapshot:
    settings: Settings = request.app.state.settings

    def build() -> public.Snapshot:
        with request.app.state.session_factory() as session:
            snap = public.build_snapshot(session, settings.min_responses)
        snap.serial = next(_SERIALS)
        return snap

    return _cache(request).get("snapshot", build, background=True)


def _cached(request: Request, key: Any, snap: public.Snapshot, build: Callable[[], bytes]) -> bytes:
    """A page's bytes, rebuilt when the snapshot they were made from has been replaced."""
    _serial, body = _cache(request).get(key, lambda: (snap.serial, build()), valid=lambda v: v[0] == snap.serial)
    return body


# --------------------------------------------------------------------- what a page holds


def _lang(request: Request, asked: str | None) -> str:
    if asked in i18n.LANGUAGES:
        return asked
    # Finnish last, so a browser naming none of ours reads the county's first language.
    return i18n.negotiate((request.headers.get("accept-language") or "") + f",{FALLBACK_LANG};q=0.001")


def _month_label(span: public.Span) -> str:
    return format_date(span.first, format="LLLL yyyy", locale=i18n.babel_locale())


def _base_url(request: Request) -> str:
    settings: Settings = request.app.state.settings
    return (settings.web_public_url or str(request.base_url)).rstrip("/")


def _entity_or_404(snap: public.Snapshot, kind: str, entity_id: str) -> public.Entity:
    """The public station or group; the same 404 for one that does not exist and one that is off."""
    entity = snap.entities.get((kind, entity_id))
    if entity is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("Not found"))
    return entity


def _path(entity: public.Entity) -> str:
    return f"/public/{entity.kind}s/{entity.id}"


def _page_context(request: Request, snap: public.Snapshot, entity: public.Entity, lang: str) -> dict[str, Any]:
    key = (entity.kind, entity.id)
    figs = snap.figures[key]
    windows = [(i18n.gettext(PERIOD_LABELS[w.key]), w, figs[w.key]) for w in snap.windows]
    months = [(_month_label(m), m, figs[m.key]) for m in snap.months]
    parent = snap.entities.get(("group", entity.parent_id)) if entity.parent_id else None
    members = [(snap.entities[("station", sid)], snap.figures[("station", sid)][snap.windows[0].key])
               for sid in entity.stations]
    subgroups = [(snap.entities[("group", gid)], snap.figures[("group", gid)][snap.windows[0].key])
                 for gid in entity.groups]
    notes = snap.notes_of(key)
    return {
        "principal": None, "lang_code": lang, "entity": entity, "name": entity.name(lang), "windows": windows,
        "months": months, "notes": notes, "note_names": {sid: snap.entities[("station", sid)].name(lang)
                                                         for sid in {n.station_id for n in notes}},
        "parent": parent, "members": members, "subgroups": subgroups, "minimum": snap.minimum,
        "made_at": snap.made_at, "path": _path(entity), "full_url": _base_url(request) + _path(entity),
        "kind_name": i18n.gettext(GROUP_KIND_NAMES[entity.group_kind]) if entity.group_kind else None,
        "languages": [(code, i18n.LANGUAGE_NAMES[code]) for code in i18n.LANGUAGES],
    }


def _html(request: Request, template: str, context: Callable[[], dict[str, Any]], lang: str) -> bytes:
    """The page in ``lang``: its context is built in that language too (labels, month names)."""
    i18n.current_lang.set(lang)
    return templates.get_template(template).render({"request": request, **context()}).encode()


def _frame_policy(settings: Settings) -> str:
    ancestors = settings.public_frame_ancestors.split() or ["'none'"]
    return CONTENT_SECURITY_POLICY.replace("frame-ancestors 'none'", "frame-ancestors " + " ".join(ancestors))


def _respond(request: Request, body: bytes, media: str, lang: str | None, *, embed: bool = False) -> Response:
    settings: Settings = request.app.state.settings
    headers = {"Cache-Control": f"public, max-age={int(settings.public_cache_s)}"}
    if lang:
        headers["Content-Language"] = lang
    if embed:
        headers["Content-Security-Policy"] = _frame_policy(settings)
    if media == "application/json":
        headers["Access-Control-Allow-Origin"] = "*"  # open data: any site's script may read it
    return Response(body, media_type=media, headers=headers)


# --------------------------------------------------------------------- open data


def _figure_json(span: public.Span, fig: public.Figure) -> dict[str, Any]:
    return {
        "period": span.key, "first_day": span.first.isoformat(), "last_day": span.last.isoformat(),
        "suppressed": fig.hidden, "responses": fig.total,
        "satisfied_share": None if fig.satisfaction is None else round(fig.satisfaction, 4),
        "answers": None if fig.hidden else {name: fig.counts[str(v)] for v, name in enumerate(ANSWER_FIELDS, 1)},
    }


def _entity_json(request: Request, snap: public.Snapshot, entity: public.Entity) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    key = (entity.kind, entity.id)
    base = _base_url(request)
    out: dict[str, Any] = {
        "schema": SCHEMA, "kind": entity.kind, "id": entity.id, "name": entity.names,
        "group_kind": entity.group_kind, "parent_group": entity.parent_id if ("group", entity.parent_id) in snap.entities
        else None,
        "page": base + _path(entity), "updated_at": snap.made_at.isoformat(timespec="seconds"),
        "min_responses": snap.minimum,
        "counting": "smiley answers given in opening hours, repeated presses left out, all channels together "
                    "(kiosk, web, phone, sms); satisfied_share = (happy + very happy) / responses",
        "periods": [_figure_json(w, snap.figures[key][w.key]) for w in snap.windows],
        "months": [_figure_json(m, snap.figures[key][m.key]) for m in snap.months],
        "notes": [{"station": n.station_id, "first_day": n.first.isoformat(),
                   "last_day": n.last.isoformat() if n.last else None, "text": n.texts} for n in snap.notes_of(key)],
        "licence": settings.public_data_licence,
        "licence_note": f"Open data under {settings.public_data_licence}: name the source "
                        f"({entity.names['fi']}, {base + _path(entity)}) when you reuse it.",
    }
    if entity.kind == "group":
        out["stations"] = [{"id": sid, "data": f"{base}/public/stations/{sid}/data.json"} for sid in entity.stations]
        out["groups"] = [{"id": gid, "data": f"{base}/public/groups/{gid}/data.json"} for gid in entity.groups]
    return out


def _dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=1).encode()


# --------------------------------------------------------------------- routes


@router.get("/public", response_class=HTMLResponse)
def public_index(request: Request, lang: Annotated[str | None, Query(max_length=5)] = None) -> Response:
    code = _lang(request, lang)
    snap = snapshot(request)

    def build() -> bytes:
        entities = sorted(snap.entities.values(), key=lambda e: (e.kind != "group", i18n.sort_key(e.name(code))))
        fig30 = {k: snap.figures[k][snap.windows[0].key] for k in snap.entities}
        return _html(request, "public/index.html", lambda: {
            "principal": None, "lang_code": code, "entities": entities, "fig30": fig30, "path": "/public",
            "languages": [(c, i18n.LANGUAGE_NAMES[c]) for c in i18n.LANGUAGES], "made_at": snap.made_at,
            "minimum": snap.minimum}, code)

    return _respond(request, _cached(request, ("index", code), snap, build), "text/html; charset=utf-8", code)


@router.get("/public/data.json")
def public_index_json(request: Request) -> Response:
    snap = snapshot(request)
    settings: Settings = request.app.state.settings
    base = _base_url(request)

    def build() -> bytes:
        return _dumps({
            "schema": SCHEMA, "updated_at": snap.made_at.isoformat(timespec="seconds"),
            "licence": settings.public_data_licence,
            "stations": [{"id": e.id, "name": e.names, "data": f"{base}{_path(e)}/data.json"}
                         for e in snap.entities.values() if e.kind == "station"],
            "groups": [{"id": e.id, "name": e.names, "data": f"{base}{_path(e)}/data.json"}
                       for e in snap.entities.values() if e.kind == "group"],
        })

    return _respond(request, _cached(request, ("index.json",), snap, build), "application/json", None)


@dataclass(frozen=True)
class _Parts:
    """What one public page is: its cache key, how to build it, how to send it."""

    key: tuple
    build: Callable[[], bytes]
    media: str
    lang: str | None
    embed: bool


def _parts(request: Request, kinds: str, entity_id: str, lang: str | None, variant: str,
           snap: public.Snapshot) -> _Parts:
    kind = KINDS.get(kinds)
    if kind is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("Not found"))
    entity = _entity_or_404(snap, kind, entity_id)
    if variant == "json":
        return _Parts(("json", kind, entity_id), lambda: _dumps(_entity_json(request, snap, entity)),
                      "application/json", None, False)
    code = _lang(request, lang)
    template = "public/embed.html" if variant == "embed" else "public/page.html"
    return _Parts((variant, kind, entity_id, code),
                  lambda: _html(request, template, lambda: _page_context(request, snap, entity, code), code),
                  "text/html; charset=utf-8", code, variant == "embed")


def _page(request: Request, kinds: str, entity_id: str, lang: str | None, variant: str) -> Response:
    snap = snapshot(request)
    parts = _parts(request, kinds, entity_id, lang, variant, snap)
    return _respond(request, _cached(request, parts.key, snap, parts.build), parts.media, parts.lang,
                    embed=parts.embed)


async def _serve(request: Request, kinds: str, entity_id: str, lang: str | None, variant: str) -> Response:
    """A page from the cache on the event loop (no thread hop); a build goes to the thread pool."""
    cache = _cache(request)
    snap = cache.peek("snapshot")  # only a fresh one: anything else may wait, so it goes to a thread
    if snap is not None:
        parts = _parts(request, kinds, entity_id, lang, variant, snap)
        kept = cache.peek(parts.key, valid=lambda v: v[0] == snap.serial)
        if kept is not None:
            return _respond(request, kept[1], parts.media, parts.lang, embed=parts.embed)
    return await run_in_threadpool(_page, request, kinds, entity_id, lang, variant)


LangQ = Annotated[str | None, Query(max_length=5, description="fi | sv | en")]


@router.get("/public/{kinds}/{entity_id}", response_class=HTMLResponse)
async def public_page(request: Request, kinds: str, entity_id: str, lang: LangQ = None) -> Response:
    return await _serve(request, kinds, entity_id, lang, "page")


@router.get("/public/{kinds}/{entity_id}/embed", response_class=HTMLResponse)
async def public_embed(request: Request, kinds: str, entity_id: str, lang: LangQ = None) -> Response:
    return await _serve(request, kinds, entity_id, lang, "embed")


@router.get("/public/{kinds}/{entity_id}/data.json")
async def public_json(request: Request, kinds: str, entity_id: str) -> Response:
    return await _serve(request, kinds, entity_id, None, "json")


# --------------------------------------------------------------------- the coordinators' settings


def _settings_page(request: Request, session, principal, message: str | None = None) -> Response:
    tree = load_tree(session)
    stations = i18n.by_name(session.scalars(select(Station)))
    group_rows = []
    for gid in _tree_order(tree):
        group_rows.append((tree.groups[gid], tree.depth(gid)))
    settings: Settings = request.app.state.settings
    return templates.TemplateResponse(request, "public/settings.html", page_context(
        request, principal, nav="public", stations=stations, group_rows=group_rows, message=message,
        base_url=_base_url(request), frame_ancestors=settings.public_frame_ancestors,
        cache_s=settings.public_cache_s))


def _tree_order(tree) -> list[str]:
    out: list[str] = []

    def walk(gid: str) -> None:
        if gid in out:
            return
        out.append(gid)
        for child in i18n.by_name(tree.groups[c] for c in tree.children.get(gid, [])):
            walk(child.id)

    for top in i18n.by_name(tree.groups[g] for g in tree.children.get(None, [])):
        walk(top.id)
    out += [g for g in tree.groups if g not in out]
    return out


@router.get("/public-pages", response_class=HTMLResponse)
def public_settings(request: Request, session: SessionDep, principal: PageCoordinator,
                    done: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    return _settings_page(request, session, principal, done)


@router.post("/public-pages", response_class=HTMLResponse)
def save_public_settings(request: Request, session: SessionDep, principal: CsrfChecked,
                         station: Annotated[list[str] | None, Form()] = None,
                         group: Annotated[list[str] | None, Form()] = None) -> Response:
    if not principal.may_publish_notes:
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext("Not allowed"))
    on_s, on_g = set(station or []), set(group or [])
    all_s = list(session.scalars(select(Station.id)))
    all_g = list(session.scalars(select(StationGroup.id)))
    changed = public.set_public(session, stations={s: s in on_s for s in all_s}, groups={g: g in on_g for g in all_g})
    session.commit()
    forget_public_pages(request.app)
    message = i18n.gettext("Saved.") if changed else i18n.gettext("Nothing changed.")
    return RedirectResponse("/public-pages?done=" + message.replace(" ", "+"), status_code=303)


# --------------------------------------------------------------------- the waiting-room poster


@router.get("/stations/{station_id}/poster.pdf")
def station_poster(request: Request, session: SessionDep, settings: SettingsDep, _who: PageCoordinator,
                   station_id: str, month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None) -> Response:
    """The station's A4 poster for a whole month (by default the last one); coordinators print it."""
    station = session.get(Station, station_id)
    if station is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("Not found"))
    last_month = public.spans(public.figures.today_local())[1][-1]
    try:
        span = public.month_span(month) if month else last_month
    except ValueError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, i18n.gettext("{month} is not a month (YYYY-MM)").format(
            month=repr(month))) from None
    if span.first > last_month.first:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, i18n.gettext("{month} is not over yet: the last whole month is "
                                                                     "{last}").format(month=span.key, last=last_month.key))
    inputs = poster_inputs(session, station, span, settings.min_responses)
    pdf = request.app.state.poster_cache.get(inputs, request.app.state.web_links, _base_url(request))
    return Response(pdf, media_type="application/pdf", headers={
        "Cache-Control": "no-store",
        "Content-Disposition": f'inline; filename="palaute-poster-{station_id}-{span.key}.pdf"'})
