"""The figures the public pages publish: last 30 and 90 days and the last twelve whole months of every
station and group that has turned its page on, under the small-count rule through the hierarchy.

What the public sees is one table per period: a figure for each public station and group, and the
hierarchy's sums (a group = its child groups + its own stations, every station counted whether its
page is public or not). A station whose page is off is an *unknown* to a reader, like a figure
hidden for having too few responses, so ``small_counts.suppress`` keeps both from being worked out
by subtraction: a municipality page next to one small (or unpublished) station hides a second
figure, as the dashboard's overview cascades (fleet_server.results.groups). A group whose page is
off is no figure at all: its parts stand in for it in the sums of the published groups above it. Every
public page, the open-data JSON and the poster read one ``Snapshot`` so they never disagree.

The periods are built so that no published figure is a sum of others: the rolling windows end
today (a day no whole month holds) and the months are whole calendar months, so a hidden month
cannot be had as "90 days minus the others". Periods are still separate tables, each suppressed on
its own (the residual limit stated in small_counts).

Which answers count: the dashboard's *counted* answers (smiley answers given in opening hours
without repeated presses), every channel together (kiosk, web, phone, sms).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from fleet_server.core.clock import utcnow
from fleet_server.core.i18n import N_
from fleet_server.core.i18n import gettext as _
from fleet_server.models import Station, StationGroup, StationHour, StationNote
from fleet_server.results import figures
from fleet_server.results.groups import Tree, load_tree
from fleet_server.results.small_counts import SATISFIED, SMILEYS, Group, suppress

MONTHS = 12
"""Whole calendar months in the trend (oldest first)."""
WINDOWS = (("last_30_days", 30), ("last_90_days", 90))
MAX_NOTES = 50
"""Notes in a page's history, newest first."""

Key = tuple[str, str]
"""("station" | "group", id)."""


@dataclass(frozen=True)
class Span:
    """A published period: local days ``first``..``last``; ``key`` is last_30_days, last_90_days or YYYY-MM."""

    key: str
    first: date
    last: date

    @property
    def period(self) -> figures.Period:
        return figures.Period(self.first, self.last)


@dataclass(frozen=True)
class Figure:
    """One published distribution; ``hidden``: too few responses (or it would give one away)."""

    total: int | None
    satisfaction: float | None
    counts: dict[str, int | None]
    hidden: bool


@dataclass(frozen=True)
class PublicNote:
    station_id: str
    first: date
    last: date | None
    texts: dict[str, str]

    def text(self, lang: str) -> str:
        return self.texts.get(lang) or self.texts.get("fi") or next(iter(self.texts.values()), "")


@dataclass
class Entity:
    """A public station or group and its names."""

    kind: str
    id: str
    names: dict[str, str]
    parent_id: str | None
    group_kind: str | None = None
    stations: list[str] = field(default_factory=list)
    """groups: the public stations anywhere under it; stations: empty."""
    groups: list[str] = field(default_factory=list)
    """groups: the public groups right under it."""

    def name(self, lang: str) -> str:
        return self.names.get(lang) or self.names["fi"]


@dataclass
class Snapshot:
    """Everything the public pages show, made at ``made_at`` (cached by fleet_server.web.public_pages)."""

    made_at: datetime
    today: date
    minimum: int
    windows: list[Span]
    months: list[Span]
    entities: dict[Key, Entity]
    figures: dict[Key, dict[str, Figure]]
    notes: dict[str, list[PublicNote]]
    serial: int = 0
    """Set by the cache that keeps it: pages made from an older snapshot are rebuilt."""

    def has(self, kind: str, entity_id: str) -> bool:
        return (kind, entity_id) in self.entities

    def notes_of(self, key: Key) -> list[PublicNote]:
        entity = self.entities[key]
        ids = [entity.id] if entity.kind == "station" else entity.stations
        found = [n for sid in ids for n in self.notes.get(sid, [])]
        found.sort(key=lambda n: (n.first, n.station_id), reverse=True)
        return found[:MAX_NOTES]


def spans(today: date) -> tuple[list[Span], list[Span]]:
    """(the rolling windows ending today, the last ``MONTHS`` whole months oldest first)."""
    windows = [Span(key, today - timedelta(days=days - 1), today) for key, days in WINDOWS]
    months: list[Span] = []
    last = today.replace(day=1) - timedelta(days=1)
    for _month in range(MONTHS):
        first = last.replace(day=1)
        months.append(Span(f"{first.year:04d}-{first.month:02d}", first, last))
        last = first - timedelta(days=1)
    months.reverse()
    return windows, months


def month_span(month: str) -> Span:
    """``YYYY-MM`` as a whole month (ValueError for anything else)."""
    first = date.fromisoformat(f"{month}-01")
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return Span(month, first, nxt - timedelta(days=1))


def _figure(counts: Mapping[int, int] | None) -> Figure:
    if counts is None:
        return Figure(None, None, {str(v): None for v in SMILEYS}, True)
    total = sum(counts[v] for v in SMILEYS)
    happy = sum(counts[v] for v in SATISFIED)
    return Figure(total, happy / total if total else None, {str(v): counts[v] for v in SMILEYS}, False)


def cascade(tree: Tree, counts: Mapping[str, Mapping[int, int]], public: set[Key], minimum: int) -> dict[Key, Figure]:
    """One period's figures of the public stations and groups (see the module's docstring).

    ``counts``: counted answers per smiley of *every* station; a group's figure is the sum of
    every station under it. Entities not in ``public`` enter the suppression as hidden cells.
    """
    group_counts: dict[str, dict[int, int]] = {}

    def total_of(gid: str, seen: frozenset[str] = frozenset()) -> dict[int, int]:
        if gid not in group_counts:
            acc = dict.fromkeys(SMILEYS, 0)
            for sid in tree.stations.get(gid, []):
                for v in SMILEYS:
                    acc[v] += counts.get(sid, {}).get(v, 0)
            for child in tree.children.get(gid, []):
                if child not in seen:  # a cycle in a broken hierarchy is cut, not followed for ever
                    for v, n in total_of(child, seen | {gid}).items():
                        acc[v] += n
            group_counts[gid] = acc
        return group_counts[gid]

    for gid in tree.groups:
        total_of(gid)
    values: dict[Key, int] = {}
    for sid in tree.station_group:
        values[("station", sid)] = sum(counts.get(sid, {}).get(v, 0) for v in SMILEYS)
    unpublished = [key for key in values if key not in public]  # unknown to a reader: hidden
    published = [gid for gid in tree.groups if ("group", gid) in public]
    for gid in published:
        values[("group", gid)] = sum(group_counts[gid].values())

    def parts_of(gid: str, seen: frozenset[str]) -> list[Key]:
        """What a published group's figure is the sum of, in published figures and stations: a group
        whose page is off is not a figure anyone sees, so its own parts stand in for it."""
        out: list[Key] = [("station", s) for s in tree.stations.get(gid, [])]
        for child in tree.children.get(gid, []):
            if child in seen or child not in tree.groups:
                continue
            out += [("group", child)] if ("group", child) in public else parts_of(child, seen | {child})
        return out

    equations = [Group(("group", gid), tuple(parts)) for gid in published if (parts := parts_of(gid, frozenset({gid})))]
    hidden = suppress(values, equations, minimum, unpublished)
    out: dict[Key, Figure] = {}
    for key in public:
        kind, entity_id = key
        raw = counts.get(entity_id, {}) if kind == "station" else group_counts.get(entity_id)
        shown = key in values and key not in hidden
        out[key] = _figure({v: int((raw or {}).get(v, 0)) for v in SMILEYS} if shown else None)
    return out


def counted(session: Session, station_ids: list[str], periods: list[Span]) -> dict[str, dict[str, dict[int, int]]]:
    """{period key: {station: {smiley: counted answers}}} for every station, in one scan of the rollups.

    The periods overlap (90 days holds 30), so the time line is cut at every period's edge into
    disjoint segments, the rollups are summed per station and segment (one CASE per row), and
    each period adds up its segments.
    """
    h = StationHour
    edges = sorted({p.period.start for p in periods} | {p.period.end for p in periods})
    segment = case(*((h.hour < edge, i) for i, edge in enumerate(edges[1:])), else_=len(edges) - 1).label("segment")
    query = (select(h.station_id, segment, *(func.sum(getattr(h, f"c{v}")) for v in SMILEYS))
             .where(h.hour >= edges[0], h.hour < edges[-1]).group_by(h.station_id, segment))
    per_segment: dict[str, dict[int, tuple[int, ...]]] = {sid: {} for sid in station_ids}
    for sid, seg, *values in session.execute(query):
        if sid in per_segment:
            per_segment[sid][int(seg)] = tuple(int(n or 0) for n in values)
    out: dict[str, dict[str, dict[int, int]]] = {}
    for p in periods:
        first, last = edges.index(p.period.start), edges.index(p.period.end)
        out[p.key] = {}
        for sid, segs in per_segment.items():
            acc = dict.fromkeys(SMILEYS, 0)
            for i in range(first, last):
                for v, n in zip(SMILEYS, segs.get(i, (0, 0, 0, 0)), strict=True):
                    acc[v] += n
            out[p.key][sid] = acc
    return out


def public_notes(session: Session, station_ids: Iterable[str], today: date) -> dict[str, list[PublicNote]]:
    """The "you said, we did" notes a reader may see: not withdrawn, first day reached; newest first."""
    ids = list(station_ids)
    out: dict[str, list[PublicNote]] = {sid: [] for sid in ids}
    if not ids:
        return out
    rows = session.scalars(
        select(StationNote)
        .where(StationNote.station_id.in_(ids), StationNote.withdrawn_at.is_(None), StationNote.starts <= today)
        .order_by(StationNote.starts.desc(), StationNote.id.desc())
    )
    for note in rows:
        if len(out[note.station_id]) < MAX_NOTES:
            out[note.station_id].append(PublicNote(note.station_id, note.starts, note.ends, {str(k): v for k, v in note.texts.items()}))
    return out


def _names(row: Station | StationGroup) -> dict[str, str]:
    return {lang: row.name_in(lang) for lang in ("fi", "sv", "en")}


def build_snapshot(session: Session, minimum: int, *, today: date | None = None) -> Snapshot:
    """The public figures now."""
    today = today or figures.today_local()
    windows, months = spans(today)
    tree = load_tree(session)
    stations = {s.id: s for s in session.scalars(select(Station))}
    group_rows = {g.id: g for g in session.scalars(select(StationGroup))}
    entities: dict[Key, Entity] = {}
    for s in stations.values():
        if s.public_page:
            entities[("station", s.id)] = Entity("station", s.id, _names(s), s.group_id)
    for g in group_rows.values():
        if g.public_page:
            entities[("group", g.id)] = Entity(
                "group", g.id, _names(g), g.parent_id, group_kind=g.kind,
                stations=sorted((sid for sid in tree.under(g.id) if ("station", sid) in entities),
                                key=lambda sid: stations[sid].name),
                groups=sorted((c for c in tree.children.get(g.id, []) if group_rows.get(c) and group_rows[c].public_page),
                              key=lambda c: group_rows[c].name))
    public = set(entities)
    out: dict[Key, dict[str, Figure]] = {key: {} for key in public}
    if public:
        periods = [*windows, *months]
        answers = counted(session, list(stations), periods)
        for span in periods:
            for key, fig in cascade(tree, answers[span.key], public, minimum).items():
                out[key][span.key] = fig
    return Snapshot(
        made_at=utcnow(), today=today, minimum=minimum, windows=windows, months=months,
        entities=entities, figures=out,
        notes=public_notes(session, [k[1] for k in public if k[0] == "station"], today),
    )


_NO_SUCH = {"station": N_("no station {id}"), "group": N_("no group {id}")}
_SWITCHED = {("station", True): N_("station {id}: page on"), ("station", False): N_("station {id}: page off"),
             ("group", True): N_("group {id}: page on"), ("group", False): N_("group {id}: page off")}


def set_public(session: Session, *, stations: dict[str, bool] | None = None, groups: dict[str, bool] | None = None) -> list[str]:
    """Turn pages on or off; returns what changed ("station kalvia on", ...). Unknown ids raise KeyError."""
    changed = []
    for kind, wanted in (("station", stations or {}), ("group", groups or {})):
        for entity_id, on in wanted.items():
            row: Station | StationGroup | None = (
                session.get(Station, entity_id) if kind == "station" else session.get(StationGroup, entity_id))
            if row is None:
                raise KeyError(_(_NO_SUCH[kind]).format(id=repr(entity_id)))
            if row.public_page != on:
                row.public_page = on
                changed.append(_(_SWITCHED[kind, on]).format(id=entity_id))
    return changed


def month_figure(session: Session, station_id: str, month: Span, minimum: int) -> Figure:
    """A station's figure for one whole month as its waiting-room poster prints it.

    The poster publishes the station's figure whether or not its page is public, so the cascade
    runs with the station counted as published beside every public page: what the poster shows
    together with the public group pages still gives no hidden figure away.
    """
    tree = load_tree(session)
    public: set[Key] = {("station", sid) for sid in session.scalars(select(Station.id).where(Station.public_page))}
    public |= {("group", gid) for gid in session.scalars(select(StationGroup.id).where(StationGroup.public_page))}
    public.add(("station", station_id))
    counts = counted(session, list(tree.station_group), [month])[month.key]
    return cascade(tree, counts, public, minimum)[("station", station_id)]
