"""Station groups and fair comparison: totals per wellbeing county and municipality, the
small-count rule cascading through the hierarchy, satisfaction with its 95 % interval.

The hierarchy (``station_groups``): a county holds municipalities or service areas, which
hold stations (``stations.group_id``). A group's figures are the sum of what is under it,
so each group is a published sum (``small_counts.Group``) of its child groups and its own
stations, and ``small_counts.suppress`` hides figures until no hidden station can be
worked out by subtraction: a municipality with one small station hides a second one; a
county whose municipality is hidden hides another; a group left with nothing shown
hides its total (as the NHS Friends and Family Test cascades ICB, trust, site, ward).

Fairness: satisfaction is shown with its 95 % Wilson score interval, and a station is
marked lower (or higher) than the rest of its county only when a two-proportion z-test
at the 5 % level says the difference is larger than chance; stations with too few
responses are marked "not compared", never ranked.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.core import i18n
from fleet_server.models import Station, StationGroup
from fleet_server.models.base import Named
from fleet_server.results.small_counts import SMILEYS, Group, share, suppress

Z95 = 1.959964
"""The normal quantile for a two-sided 95 % interval and a 5 % test."""


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of the share k/n (None when n is 0)."""
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def compare(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> str:
    """"lower" / "higher" when share 1 differs from share 2 beyond chance (pooled z-test), else "similar"."""
    if n1 <= 0 or n2 <= 0:
        return "similar"
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return "similar"
    score = (k1 / n1 - k2 / n2) / se
    if score <= -z:
        return "lower"
    if score >= z:
        return "higher"
    return "similar"


@dataclass(frozen=True, slots=True)
class StationName(Named):
    """What the overview shows of a station: its id and names (``Named.name_in``)."""

    id: str
    name: str
    name_fi: str | None = None
    name_sv: str | None = None
    name_en: str | None = None


@dataclass
class Tree:
    groups: dict[str, StationGroup]
    children: dict[str | None, list[str]] = field(default_factory=lambda: defaultdict(list))
    stations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    """group id -> the stations directly in it."""
    station_group: dict[str, str | None] = field(default_factory=dict)
    """Every station's group, the stations by name."""
    names: dict[str, StationName] = field(default_factory=dict)

    def named(self, station_ids: Sequence[str]) -> list[StationName]:
        """The stations of ``station_ids`` with their names, by name (``stations_visible``'s order)."""
        keep = set(station_ids)
        return [n for sid, n in self.names.items() if sid in keep]

    def under(self, group_id: str) -> list[str]:
        """Every station in ``group_id`` and the groups below it."""
        out, todo = [], [group_id]
        while todo:
            g = todo.pop()
            out += self.stations.get(g, [])
            todo += self.children.get(g, [])
        return out

    def ancestors(self, group_id: str | None) -> list[str]:
        out = []
        while group_id is not None and group_id in self.groups and group_id not in out:
            out.append(group_id)
            group_id = self.groups[group_id].parent_id
        return out

    def depth(self, group_id: str) -> int:
        return len(self.ancestors(group_id)) - 1


def load_tree(session: Session) -> Tree:
    groups = {g.id: g for g in session.scalars(select(StationGroup).order_by(StationGroup.name))}
    tree = Tree(groups)
    for g in groups.values():
        tree.children[g.parent_id if g.parent_id in groups else None].append(g.id)
    t = Station.__table__.c
    for sid, gid, *names in session.execute(select(t.id, t.group_id, t.name, t.name_fi, t.name_sv, t.name_en)
                                            .order_by(t.name, t.id)).all():
        tree.station_group[sid] = gid
        tree.names[sid] = StationName(sid, *names)
        if gid in groups:
            tree.stations[gid].append(sid)
    return tree


def stations_under(session: Session, group_id: str) -> list[str]:
    return load_tree(session).under(group_id)


@dataclass
class GroupRow:
    group_id: str
    name: str
    kind: str
    depth: int
    stations: int
    dist: dict
    interval: tuple[float, float] | None


def _dist(counts: dict[int, int] | None, minimum: int) -> dict:
    if counts is None:
        return {"counts": {str(v): None for v in SMILEYS}, "total": None, "satisfaction": None, "hidden": True,
                "shares": {str(v): None for v in SMILEYS}}
    n1, n2, n3, n4 = (counts[v] for v in SMILEYS)  # written out: the overview makes one a station
    total = n1 + n2 + n3 + n4
    based = share(total, total, minimum) is not None  # the base passes the rule (share's own test)
    return {"counts": {"1": n1, "2": n2, "3": n3, "4": n4}, "total": total, "hidden": False,
            "shares": ({"1": n1 / total, "2": n2 / total, "3": n3 / total, "4": n4 / total} if based
                       else {"1": None, "2": None, "3": None, "4": None}),
            "satisfaction": (n3 + n4) / total if based else None}


def cascade(tree: Tree, station_counts: dict[str, dict[int, int]], minimum: int,
            within: str | None = None, hidden_stations: Sequence[str] = (),
            hidden_groups: Sequence[str] = ()) -> tuple[dict[str, dict], list[GroupRow]]:
    """Station and group distributions with the small-count rule applied through the hierarchy.

    ``station_counts``: counted answers per smiley of every station shown. ``within``: only
    this group and what is below it (the group filter). ``hidden_stations``: hidden whatever their
    count (one channel's figure that the split by channel hides); ``hidden_groups`` the same for
    groups. Returns (station dists, group rows
    from the top down).
    """
    shown_stations = set(station_counts)
    group_ids: list[str] = []
    seen_groups: dict[str | None, None] = {}
    for sid in station_counts:
        gid_of = tree.station_group.get(sid)
        if gid_of in seen_groups:  # its ancestors are in already
            continue
        seen_groups[gid_of] = None
        for gid in tree.ancestors(gid_of):
            if gid not in group_ids:
                group_ids.append(gid)
    if within is not None:
        group_ids = [g for g in group_ids if within in tree.ancestors(g)]
    group_counts: dict[str, dict[int, int]] = {}

    def total_of(gid: str) -> dict[int, int]:
        if gid not in group_counts:
            acc = dict.fromkeys(SMILEYS, 0)
            for sid in tree.stations.get(gid, []):
                if sid in shown_stations:
                    for v in SMILEYS:
                        acc[v] += station_counts[sid][v]
            for child in tree.children.get(gid, []):
                if child in group_ids:
                    for v, n in total_of(child).items():
                        acc[v] += n
            group_counts[gid] = acc
        return group_counts[gid]

    for gid in group_ids:
        total_of(gid)
    values: dict = {("s", sid): sum(c.values()) for sid, c in station_counts.items()}
    values.update({("g", gid): sum(group_counts[gid].values()) for gid in group_ids})
    equations = []
    for gid in group_ids:
        parts = tuple([("g", c) for c in tree.children.get(gid, []) if c in group_ids]
                      + [("s", s) for s in tree.stations.get(gid, []) if s in shown_stations])
        if parts:
            equations.append(Group(("g", gid), parts))
    hidden = suppress(values, equations, minimum, [*(("s", sid) for sid in hidden_stations),
                                                   *(("g", gid) for gid in hidden_groups if gid in group_counts)])
    station_dists = {sid: _dist(None if ("s", sid) in hidden else c, minimum) for sid, c in station_counts.items()}
    lang = i18n.lang()
    rows = []
    for gid in sorted(group_ids, key=lambda g: (tree.depth(g), i18n.sort_key(tree.groups[g].name_in(lang)), g)):
        counts = group_counts[gid]
        d = _dist(None if ("g", gid) in hidden else counts, minimum)
        k, n = counts[3] + counts[4], sum(counts.values())
        rows.append(GroupRow(gid, tree.groups[gid].name_in(lang), tree.groups[gid].kind, tree.depth(gid),
                             sum(1 for s in tree.under(gid) if s in shown_stations), d,
                             None if d["hidden"] else wilson(k, n)))
    _order_tree(rows, tree)
    return station_dists, rows


def _order_tree(rows: list[GroupRow], tree: Tree) -> None:
    """Each group right under its parent (depth-first), siblings by name."""
    by_id = {r.group_id: r for r in rows}
    ordered: list[GroupRow] = []

    def walk(gid: str) -> None:
        ordered.append(by_id[gid])
        for child in sorted((c for c in tree.children.get(gid, []) if c in by_id),
                            key=lambda c: (i18n.sort_key(by_id[c].name), c)):
            walk(child)

    for r in sorted(rows, key=lambda r: (r.depth, i18n.sort_key(r.name), r.group_id)):
        if r.group_id not in {o.group_id for o in ordered} and (
                tree.groups[r.group_id].parent_id not in by_id):
            walk(r.group_id)
    rows[:] = ordered


def versus_rest(station_counts: dict[str, dict[int, int]], station_dists: dict[str, dict]) -> dict[str, str]:
    """Per shown station: "lower" / "higher" / "similar" than all other shown stations pooled;
    "not compared" when its figures are hidden."""
    out = {}
    shown = {sid: c for sid, c in station_counts.items() if not station_dists[sid]["hidden"]}
    k_all = sum(c[3] + c[4] for c in shown.values())
    n_all = sum(sum(c.values()) for c in shown.values())
    for sid in station_counts:
        if sid not in shown:
            out[sid] = "not compared"
            continue
        c = shown[sid]
        k, n = c[3] + c[4], sum(c.values())
        out[sid] = compare(k, n, k_all - k, n_all - n) if n_all - n > 0 else "similar"
    return out


def group_choices(tree: Tree, visible: Sequence[str]) -> list[tuple[str, str, int]]:
    """(id, name, depth) of every group holding a visible station, for the filter."""
    ids = []
    for sid in visible:
        for gid in tree.ancestors(tree.station_group.get(sid)):
            if gid not in ids:
                ids.append(gid)
    lang = i18n.lang()
    rows = [GroupRow(g, tree.groups[g].name_in(lang), tree.groups[g].kind, tree.depth(g), 0, {}, None) for g in ids]
    _order_tree(rows, tree)
    return [(r.group_id, r.name, r.depth) for r in rows]


def apply_to_overview(rows: list, tree: Tree, minimum: int, within: str | None = None,
                      hidden_groups: Sequence[str] = ()) -> list[GroupRow]:
    """Cascade the rule over the overview's station rows (hiding more where a group total would
    give one away), add each shown station's interval and comparison; return the group rows."""
    counts = {r.station_id: r.counted_raw for r in rows}
    dists, group_rows = cascade(tree, counts, minimum, within, [r.station_id for r in rows if r.dist["hidden"]],
                                hidden_groups)
    for r in rows:
        if dists[r.station_id]["hidden"] and not r.dist["hidden"]:  # secondary: hidden for the group's sake
            r.dist = dists[r.station_id]
            r.presses = r.per_hour = r.satisfaction_change = r.total_change = None
        if not r.dist["hidden"]:
            c = r.counted_raw
            r.interval = wilson(c[3] + c[4], sum(c.values()))
    verdict = versus_rest(counts, {r.station_id: r.dist for r in rows})
    for r in rows:
        r.versus = verdict[r.station_id]
    return group_rows
