"""The monthly report of a station or a group: one month's figures, laid out by
fleet_server.web.report_render as a printable page and as a PDF, and mailed on the 1st
(fleet_server.fleet.report_mail).

Everything comes from the hourly rollups, under the small-count rule:
- the month's headline (counted answers, their distribution, satisfaction with its 95 %
  Wilson interval) is what the overview's cascade shows for the month over *every*
  station of the hierarchy (fleet_server.results.groups.cascade), so a station's report,
  its group's report and the overview can be laid side by side without one giving away
  what another hides;
- the trend (per local day or ISO week) and the hour x weekday heatmap publish their
  total, so their cells are suppressed against it (small_counts), and when the cascade
  hides the headline their total is hidden too and the cells may not give it away;
- follow-up reasons: per smiley, a column based on its follow-up answers, as on the
  station page; a group's are the sums over its stations; hidden whole with the headline;
- a group report lists its stations and sub-groups with the cascade's figures.
The month's "you said, we did" notes are those the kiosks showed in the month.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet_server.core import i18n
from fleet_server.core.clock import utcnow
from fleet_server.core.errors import BadPeriod
from fleet_server.models import FollowupHour, Station, StationHour, StationNote
from fleet_server.results import groups as grouping
from fleet_server.results.figures import Period, by_kind, followup_labels, period_buckets, station_totals
from fleet_server.results.small_counts import SMILEYS, Group, distributions, masked, suppress
from palaute_wire.opening_hours import LOCAL_TZ

GRANULARITIES = ("day", "week")


def month_period(month: date) -> Period:
    """The local calendar month holding ``month``, first to last day."""
    first = month.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return Period(first, following - timedelta(days=1))


def last_full_month(today: date) -> date:
    """The first day of the month before ``today``'s."""
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def parse_month(value: str | None, today: date) -> date:
    """``YYYY-MM`` (default: last month) as its first day; a month after this one is refused."""
    if not value:
        return last_full_month(today)
    try:
        year, month = (int(part) for part in value.split("-"))
        first = date(year, month, 1)
    except ValueError:
        raise BadPeriod(f"month {value!r} is not a month like 2026-11") from None
    if first > today.replace(day=1):
        raise BadPeriod(f"month {value} has not begun yet")
    return first


@dataclass
class Scope:
    """What a report covers: one station, or a group and every station under it."""

    kind: str  # station | group
    id: str
    name: str
    station_ids: list[str]
    parent: str = ""
    """The group it is part of, by name (empty at the top)."""
    level: str = "station"
    """station, or the group's kind: county | municipality | area."""


@dataclass
class MonthlyReport:
    scope: Scope
    month: date
    period: Period
    minimum: int
    granularity: str
    headline: dict
    """Counted answers: counts, total, shares, satisfaction (hidden whole below the rule)."""
    interval: tuple[float, float] | None
    previous: dict
    """Last month's headline, for the change in satisfaction."""
    trend: list[dict] = field(default_factory=list)
    trend_total: int | None = None
    heatmap: list[dict] = field(default_factory=list)
    heatmap_total: int | None = None
    heat_max: int = 0
    followups: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    members: list[dict] = field(default_factory=list)
    """Group reports: each sub-group and station with the cascade's figures."""
    made_at: datetime = field(default_factory=utcnow)

    @property
    def complete(self) -> bool:
        """False while the month is still going on (the report covers it so far)."""
        return self.made_at >= self.period.end

    @property
    def satisfaction_change(self) -> float | None:
        now, before = self.headline["satisfaction"], self.previous["satisfaction"]
        return None if now is None or before is None else now - before


def station_scope(session: Session, station_id: str) -> Scope | None:
    station = session.get(Station, station_id)
    if station is None:
        return None
    tree = grouping.load_tree(session)
    gid = tree.station_group.get(station_id)
    parent = tree.groups[gid].name_in(i18n.lang()) if gid in tree.groups else ""
    return Scope("station", station.id, station.name_in(i18n.lang()), [station.id], parent)


def group_scope(session: Session, group_id: str) -> Scope | None:
    tree = grouping.load_tree(session)
    group = tree.groups.get(group_id)
    if group is None:
        return None
    parent = tree.groups[group.parent_id].name_in(i18n.lang()) if group.parent_id in tree.groups else ""
    return Scope("group", group.id, group.name_in(i18n.lang()), tree.under(group_id), parent, group.kind)


# ----------------------------------------------------------------- reading the rollups


def _cascade(session: Session, period: Period, minimum: int) -> tuple[grouping.Tree, dict, dict, list]:
    """The overview's cascade for ``period`` over every station: (tree, raw counts, station dists, group rows)."""
    tree = grouping.load_tree(session)
    ids = list(session.scalars(select(Station.id)))
    totals = station_totals(session, ids, period.start, period.end)
    counts = {sid: by_kind(totals[sid], "c") for sid in ids}
    dists, group_rows = grouping.cascade(tree, counts, minimum)
    return tree, counts, dists, group_rows


def _headline(scope: Scope, period: Period, minimum: int, session: Session) -> tuple[dict, tuple | None, dict]:
    tree, counts, dists, group_rows = _cascade(session, period, minimum)
    if scope.kind == "station":
        dist = dists.get(scope.id) or distributions({"x": dict.fromkeys(SMILEYS, 0)}, minimum)["x"]
        raw = counts.get(scope.id, dict.fromkeys(SMILEYS, 0))
        interval = None if dist["hidden"] else grouping.wilson(raw[3] + raw[4], sum(raw.values()))
        return dist, interval, {"tree": tree, "counts": counts, "dists": dists, "groups": group_rows}
    row = next((g for g in group_rows if g.group_id == scope.id), None)
    if row is None:  # a group without stations
        dist = distributions({"x": dict.fromkeys(SMILEYS, 0)}, minimum)["x"]
        return dist, None, {"tree": tree, "counts": counts, "dists": dists, "groups": group_rows}
    return row.dist, row.interval, {"tree": tree, "counts": counts, "dists": dists, "groups": group_rows}


def _hours(session: Session, station_ids: Sequence[str], period: Period) -> dict[datetime, dict[int, int]]:
    """Counted answers per UTC hour, summed over ``station_ids``."""
    h = StationHour
    q = (select(h.hour, *(func.sum(getattr(h, f"c{v}")) for v in SMILEYS))
         .where(h.station_id.in_(list(station_ids)), h.hour >= period.start, h.hour < period.end)
         .group_by(h.hour))
    return {hour: {v: int(n or 0) for v, n in zip(SMILEYS, values, strict=True)}
            for hour, *values in session.execute(q)}


def _trend(hours: dict[datetime, dict[int, int]], period: Period, granularity: str, minimum: int,
           hide_total: bool) -> tuple[list[dict], int | None]:
    buckets = period_buckets(period, granularity)
    index = {}
    for i, (a, b) in enumerate(buckets):
        d = a
        while d <= b:
            index[d] = i
            d += timedelta(days=1)
    per: list[dict[int, int]] = [dict.fromkeys(SMILEYS, 0) for _ in buckets]
    for hour, counts in hours.items():
        at = index.get(hour.astimezone(LOCAL_TZ).date())
        if at is not None:
            for v in SMILEYS:
                per[at][v] += counts[v]
    shown, total = _series([sum(c.values()) for c in per], minimum, hide_total)
    dists = [_bucket_dist(c, n is None, minimum) for c, n in zip(per, shown, strict=True)]
    trend = []
    for i, (a, b) in enumerate(buckets):
        if granularity == "day":
            label, short = i18n.day_month(a), str(a.day)
        else:
            label = i18n.gettext("wk {week} ({day})").format(week=a.isocalendar().week, day=i18n.day_month(a))
            short = i18n.gettext("wk {week}").format(week=a.isocalendar().week)
        trend.append({"first": a, "last": b, "label": label, "short": short, "dist": dists[i],
                      "weekend": granularity == "day" and a.weekday() >= 5})
    return trend, total


def _series(counts: Sequence[int], minimum: int, hide_total: bool) -> tuple[list[int | None], int | None]:
    """Counts adding up to a published total, suppressed together (small_counts.suppress); a 0 is
    shown (nobody answered: it singles nobody out), though it may still be hidden to protect another."""
    values: dict[Any, int] = {i: (n if n else minimum) for i, n in enumerate(counts)}
    values["total"] = sum(counts)
    hidden = suppress(values, [Group("total", tuple(range(len(counts))))], minimum,
                      ["total"] if hide_total else [])
    return [None if i in hidden else n for i, n in enumerate(counts)], None if "total" in hidden else sum(counts)


def _bucket_dist(counts: dict[int, int], hidden: bool, minimum: int) -> dict:
    if hidden or not sum(counts.values()):
        return {"counts": {str(v): None if hidden else 0 for v in SMILEYS}, "total": None if hidden else 0,
                "shares": {str(v): None for v in SMILEYS}, "satisfaction": None, "hidden": hidden}
    return distributions({"x": counts}, minimum)["x"]  # shown: at least ``minimum`` answers


def _heatmap(hours: dict[datetime, dict[int, int]], minimum: int, hide_total: bool) -> tuple[list[dict], int | None, int]:
    grid: dict[tuple[int, int], int] = defaultdict(int)
    for hour, counts in hours.items():
        local = hour.astimezone(LOCAL_TZ)
        grid[(local.weekday(), local.hour)] += sum(counts.values())
    keys = [(d, h) for d in range(7) for h in range(24)]
    shown, total = _series([grid.get(k, 0) for k in keys], minimum, hide_total)
    names = i18n.weekday_names()
    rows = [{"day": names[d], "cells": [{"hour": h, "n": shown[d * 24 + h]} for h in range(24)]} for d in range(7)]
    heat_max = max([n for n in shown if n is not None] or [0])
    return rows, total, heat_max


def _followups(session: Session, station_ids: Sequence[str], period: Period, minimum: int,
               hide_all: bool) -> list[dict]:
    """Reasons by the smiley they follow, summed over the stations (see figures.followup_tables)."""
    f = FollowupHour
    q = (select(f.question_id, f.smiley, f.option_id, func.sum(f.n))
         .where(f.station_id.in_(list(station_ids)), f.hour >= period.start, f.hour < period.end)
         .group_by(f.question_id, f.smiley, f.option_id))
    data: dict[str, dict[int, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for question_id, smiley, option_id, n in session.execute(q):
        data[question_id][smiley][option_id] = int(n)
    if not data:
        return []
    labels: dict[str, str] = {}
    for sid in reversed(list(station_ids)[:20]):  # the stations' own wordings (the first wins)
        labels.update(followup_labels(session, sid, i18n.lang()))
    tables = []
    for question_id in sorted(data):
        columns = data[question_id]
        smileys = sorted(columns)
        bases: dict[Any, int] = {v: sum(columns[v].values()) for v in smileys}
        bases["total"] = sum(bases.values())
        hidden = suppress(bases, [Group("total", tuple(smileys))], minimum, list(bases) if hide_all else [])
        shown = masked(bases, hidden)
        options = sorted({o for v in smileys for o in columns[v]})
        tables.append({
            "question_id": question_id,
            "question": labels.get(question_id, question_id),
            "labels": {o: labels.get(f"{question_id}/{o}", o) for o in options},
            "smileys": smileys,
            "options": options,
            "bases": shown,
            "cells": {(o, v): (None if v in hidden else columns[v].get(o, 0)) for o in options for v in smileys},
        })
    return tables


def month_notes(session: Session, station_ids: Sequence[str], period: Period, now: datetime | None = None) -> list[dict]:
    """The notes the stations' kiosks showed at some time in ``period``, oldest first, in the reader's language."""
    now = now or utcnow()
    names = {s.id: s.name_in(i18n.lang()) for s in
             session.scalars(select(Station).where(Station.id.in_(list(station_ids))))}
    rows = session.scalars(
        select(StationNote).where(StationNote.station_id.in_(list(station_ids)),
                                  StationNote.starts <= period.last)
        .order_by(StationNote.starts, StationNote.id))
    out = []
    for note in rows:
        span = note.shown_span(now)
        if span is None:
            continue
        start, end = span
        if start >= period.end or (end is not None and end <= period.start):
            continue
        until = min(end if end is not None else now, period.end)
        out.append({
            "station": names.get(note.station_id, note.station_id),
            "text": {str(k): v for k, v in note.texts.items()}.get(i18n.lang()) or note.text_fi,
            "first": max(start, period.start).astimezone(LOCAL_TZ).date(),
            "last": (until - timedelta(microseconds=1)).astimezone(LOCAL_TZ).date(),
        })
    return out


def _members(scope: Scope, context: dict) -> list[dict]:
    """A group's sub-groups and stations, each with the cascade's figures, in the tree's order."""
    tree: grouping.Tree = context["tree"]
    counts, dists = context["counts"], context["dists"]
    rows = []
    lang = i18n.lang()
    for g in context["groups"]:
        if g.group_id != scope.id and scope.id in tree.ancestors(g.group_id):
            rows.append({"kind": "group", "id": g.group_id, "name": g.name, "depth": tree.depth(g.group_id)
                         - tree.depth(scope.id), "dist": g.dist, "interval": g.interval})
    names = {s.id: s.name_in(lang) for s in context.get("stations", [])}
    for sid in scope.station_ids:
        d = dists.get(sid)
        if d is None:
            continue
        raw = counts[sid]
        rows.append({"kind": "station", "id": sid, "name": names.get(sid, sid), "depth": 0, "dist": d,
                     "interval": None if d["hidden"] else grouping.wilson(raw[3] + raw[4], sum(raw.values()))})
    return rows


def build(session: Session, scope: Scope, month: date, minimum: int, granularity: str = "day",
          now: datetime | None = None) -> MonthlyReport:
    """The report of ``scope`` for the month holding ``month``, in the current language (i18n)."""
    if granularity not in GRANULARITIES:
        raise BadPeriod(f"granularity {granularity!r} is not day or week")
    period = month_period(month)
    headline, interval, context = _headline(scope, period, minimum, session)
    previous, _interval, _context = _headline(scope, month_period(month - timedelta(days=1)), minimum, session)
    hidden = bool(headline["hidden"])
    hours = _hours(session, scope.station_ids, period) if scope.station_ids else {}
    trend, trend_total = _trend(hours, period, granularity, minimum, hidden)
    heatmap, heat_total, heat_max = _heatmap(hours, minimum, hidden)
    report = MonthlyReport(
        scope=scope, month=period.first, period=period, minimum=minimum, granularity=granularity,
        headline=headline, interval=interval, previous=previous, trend=trend, trend_total=trend_total,
        heatmap=heatmap, heatmap_total=heat_total, heat_max=heat_max,
        followups=_followups(session, scope.station_ids, period, minimum, hidden) if scope.station_ids else [],
        notes=month_notes(session, scope.station_ids, period, now) if scope.station_ids else [],
        made_at=now or utcnow(),
    )
    if scope.kind == "group":
        context["stations"] = list(session.scalars(select(Station).where(Station.id.in_(scope.station_ids))))
        report.members = _members(scope, context)
    return report
