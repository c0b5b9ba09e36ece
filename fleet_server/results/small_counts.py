"""Small-count suppression: the one rule every page and export applies.

A figure based on fewer than ``minimum`` responses (default 5, setting
``PALAUTE_MIN_RESPONSES``) is not shown; pages and exports print
``TOO_FEW`` ("too few responses") instead, so a patient at a small station
cannot be singled out by a count of 1 or a 100 % that is one person.

What a figure is "based on": a count stands for its own responses (a heatmap
cell of 3 is based on 3); a smiley distribution - its four counts, shares and
satisfaction score - is based on its total, so a distribution is shown or
hidden whole (``distributions``), as the NHS Friends and Family Test publishes
an organisation's breakdown only from 5 responses up.

Primary suppression alone is not enough: when a table publishes a total and
all but one of its parts, the hidden part is the total minus the others. So,
as in the FFT publications, a *secondary* suppression step hides further
figures until no hidden one can be worked out:

1. every figure below ``minimum`` is hidden (primary);
2. every published sum (a ``Group``: a total and the parts it adds up) must
   hide none or at least two of its entries that have answers; a group with
   exactly one hides its smallest visible part as well (the total only when no
   part is left) - repeated until nothing changes, because hiding a figure can
   break another group that shares it;
3. an exact audit: the visible figures and the group equations are solved
   over the rationals, and any hidden figure they still pin down (possible when
   groups overlap, e.g. the rows and columns of a table with margins) causes
   one more figure of one of its groups to be hidden; repeat until it passes.

A 0 is hidden as "too few" like any small count, but it counts as known: it
singles nobody out, and a day the station was closed is known to be 0 anyway.
So a hidden 0 never covers another figure (Saturday 0, Sunday 0 and Monday 3
hidden beside a published week would give Monday as the week minus the rest),
and nothing is hidden to protect a 0.

A table split by channel (the station's page for all channels and for each
one) is suppressed as one table (``split_suppress``), so no channel's page
gives away what another's hides.

Residual limits (stated, not solved): the audit is linear, so a hidden figure
that non-negativity bounds (two hidden days that add up to 3) is known to be
small, not which; two hidden rows of a distribution table reveal their
*combined* distribution; and separate tables of the same data (a daily trend
and an hour-of-day heatmap) are suppressed each on its own, as in the
published statistics this follows.

Figures are plain ``int``/``float``; a hidden one is ``None`` and the
templates and exports render ``None`` as ``TOO_FEW``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from math import gcd
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

DEFAULT_MIN_RESPONSES = 5
TOO_FEW = "too few responses"


@dataclass(frozen=True)
class Group:
    """A published sum: ``total`` equals the sum of ``parts`` (all keys of the table)."""

    total: Hashable
    parts: tuple[Hashable, ...]


def suppress(values: Mapping[K, int], groups: Iterable[Group], minimum: int,
             forced: Iterable[Hashable] = (), prefer: Iterable[Hashable] = ()) -> frozenset[K]:
    """The keys of ``values`` to hide, primary and secondary; deterministic.

    ``values`` holds every published count (parts and totals alike); each
    group's keys must be in it. Ties between equally small cells are broken by
    the order of ``values``, so the same table always hides the same cells.
    ``forced``: keys hidden whatever their size, because another table already hides
    them (a station's month total hidden by its group's cascade hides its trend's total too; a
    channel's count that the split by channel hides stays hidden on that channel's own page).
    ``prefer``: keys hidden first where a group needs one more hidden figure (all presses before
    the counted answers they include: the counted answers are the page's headline).
    """
    groups = [g for g in groups if g.parts]
    preferred = frozenset(prefer)
    order = {key: i for i, key in enumerate(values)}
    for g in groups:
        for key in (g.total, *g.parts):
            if key not in values:
                raise KeyError(f"group names {key!r}, which is not in the table")
    hidden: set[K] = {key for key, n in values.items() if n < minimum} | {k for k in forced if k in values}  # type: ignore[misc]
    if not hidden:
        return frozenset()

    def rank(key: K) -> tuple[bool, int, int]:
        return (key not in preferred, values[key], order[key])

    while True:
        _close_groups(values, groups, hidden, rank)
        exposed = _recoverable(groups, {key for key in hidden if values[key]}, order)
        if not exposed:
            return frozenset(hidden)
        # Hide one more visible entry of a group that involves an exposed cell.
        candidates: list = []
        for target in sorted(exposed, key=rank):
            candidates = [
                key
                for g in groups
                if target == g.total or target in g.parts
                for key in (*g.parts, g.total)
                if key not in hidden
            ]
            if candidates:
                break
        if not candidates:  # the equations reach it only through other hidden cells
            candidates = [
                key
                for g in groups
                if any(k in hidden and values[k] for k in (g.total, *g.parts))
                for key in (*g.parts, g.total)
                if key not in hidden
            ]
        hidden.add(min(candidates, key=rank))


def _close_groups(values, groups, hidden: set, rank) -> None:
    """Until none is left: a group with exactly one hidden figure that has answers (a hidden 0 is
    known, so it covers nothing) hides its smallest visible part too, or its total when no part is
    left; a preferred entry (``rank``'s first field) goes before either."""
    changed = True
    while changed:
        changed = False
        for g in groups:
            entries = (g.total, *g.parts)
            if sum(1 for key in entries if key in hidden and values[key]) != 1:
                continue
            visible = [key for key in (*g.parts, g.total) if key not in hidden]
            if visible:  # (preferred last, the total, size, position); positions differ, so keys are never compared
                hidden.add(min(((rank(k)[0], k == g.total, *rank(k)[1:]), k) for k in visible)[1])
                changed = True


def _recoverable(groups, hidden: set, order: Mapping) -> list:
    """Hidden keys whose value follows from the visible figures and the group equations.

    Each group gives ``total - sum(parts) = 0``; moving the visible figures to
    the right-hand side leaves a linear system in the hidden ones. A hidden
    cell is determined exactly when its unit vector lies in the row space of
    that system: in reduced row-echelon form, when it is a pivot column whose
    row has no other non-zero entry.

    Before the elimination, an equation with two or more unknowns that no other
    equation has is set aside (repeatedly): no combination that uses it can be a
    single unknown, as those two stay. A table split by channel has hundreds of
    such (the hours nobody answered by phone); the elimination keeps its rows sparse.
    """
    equations: list[dict] = []
    for g in groups:
        coeffs: dict = {}
        for key, sign in ((g.total, 1), *((p, -1) for p in g.parts)):
            if key in hidden:
                coeffs[key] = coeffs.get(key, 0) + sign
        coeffs = {key: c for key, c in coeffs.items() if c}
        if coeffs:
            equations.append(coeffs)
    while True:
        seen = Counter(key for eq in equations for key in eq)
        kept = [eq for eq in equations if sum(1 for key in eq if seen[key] == 1) < 2]
        if len(kept) == len(equations):
            break
        equations = kept
    rank = order.__getitem__
    pivots: dict = {}
    """{pivot key: its row}, in reduced row-echelon form: a pivot is in no other row. Rows keep
    integer coefficients (each step scales by a non-zero integer and divides by the gcd), which
    spans the same space as rational elimination, several times faster than Fraction."""
    for eq in equations:
        row = dict(eq)
        for key in [k for k in row if k in pivots]:
            row = _eliminate(row, pivots[key], key)
        if not row:
            continue
        lead = min(row, key=rank)
        for key, other in list(pivots.items()):
            if lead in other:
                pivots[key] = _eliminate(other, row, lead)
        pivots[lead] = row
    return sorted((key for key, row in pivots.items() if len(row) == 1), key=rank)


def _eliminate(row: dict, pivot: dict, key: Hashable) -> dict:
    """``row`` with ``key`` eliminated by ``pivot`` (which has it): integer coefficients, no zeros,
    divided by their gcd."""
    a, b = row[key], pivot[key]
    out = {k: v * b for k, v in row.items()}
    for k, v in pivot.items():
        out[k] = out.get(k, 0) - a * v
    out = {k: v for k, v in out.items() if v}
    g = gcd(*out.values()) if out else 1
    return {k: v // g for k, v in out.items()} if g > 1 else out


def masked(values: Mapping[K, int], hidden: frozenset[K] | set[K]) -> dict[K, int | None]:
    """``values`` with the hidden ones replaced by None."""
    return {key: (None if key in hidden else n) for key, n in values.items()}


def share(part: int | None, base: int | None, minimum: int) -> float | None:
    """``part / base``, or None when either is hidden or the base is below ``minimum``."""
    if part is None or base is None or base < minimum or base <= 0:
        return None
    return part / base


# --------------------------------------------------------------------- shapes used by pages


SMILEYS = (1, 2, 3, 4)
SATISFIED = (3, 4)
"""The two happy faces: satisfaction is their share of the counted answers."""


def satisfaction(counts: Mapping[int, int], minimum: int = 1) -> float | None:
    """The one satisfaction figure: (3 + 4) / all four, None below ``minimum`` answers (or with none)."""
    total = sum(int(counts.get(v, 0)) for v in SMILEYS)
    return share(sum(int(counts.get(v, 0)) for v in SATISFIED), total, minimum)


def distributions(
    rows: Mapping[K, Mapping[int, int]],
    minimum: int,
    all_key: K | None = None,
    forced: Iterable[Hashable] = (),
) -> dict[K, dict]:
    """Smiley distributions (one per row) with their totals, shares and satisfaction.

    A distribution's figures - its four counts, shares and satisfaction - are
    all *based on* its total, so the rule works on the totals: a row whose
    total is below ``minimum`` is hidden whole. When ``all_key`` names a row
    that is the sum of the others (e.g. "all presses" = counted + repeated +
    out of hours, or a period = its days), the totals form a published sum
    and secondary suppression hides a second row where one would be exposed.

    Returns {row: {"counts": {"1": n|None, ...}, "total": n|None,
    "shares": {"1": f|None, ...}, "satisfaction": f|None, "hidden": bool}}.
    """
    # Written out for the four faces (an overview builds 1,000 of these a page); the same figures as
    # share() and satisfaction() give: None below the minimum.
    counted = {key: (int(c.get(1, 0)), int(c.get(2, 0)), int(c.get(3, 0)), int(c.get(4, 0))) for key, c in rows.items()}
    totals: dict[Hashable, int] = {key: n1 + n2 + n3 + n4 for key, (n1, n2, n3, n4) in counted.items()}
    groups = []
    if all_key is not None:
        groups.append(Group(all_key, tuple(k for k in rows if k != all_key)))
    hidden = suppress(totals, groups, minimum, forced)
    out: dict[K, dict] = {}
    for key, (n1, n2, n3, n4) in counted.items():
        if key in hidden:
            out[key] = {
                "counts": {"1": None, "2": None, "3": None, "4": None},
                "total": None,
                "shares": {"1": None, "2": None, "3": None, "4": None},
                "satisfaction": None,
                "hidden": True,
            }
            continue
        total = totals[key]
        based = total >= minimum and total > 0
        out[key] = {
            "counts": {"1": n1, "2": n2, "3": n3, "4": n4},
            "total": total,
            "shares": ({"1": n1 / total, "2": n2 / total, "3": n3 / total, "4": n4 / total} if based
                       else {"1": None, "2": None, "3": None, "4": None}),
            "satisfaction": (n3 + n4) / total if based else None,
            "hidden": False,
        }
    return out


def distribution(counts: Mapping[int, int], minimum: int) -> dict:
    """One smiley distribution on its own (see ``distributions``)."""
    return distributions({"only": counts}, minimum)["only"]


def series_table(counts: Sequence[int], minimum: int,
                 hide_total: bool = False, forced: Iterable[Hashable] = ()) -> tuple[list[int | None], int | None]:
    """Counts that add up to a published total (heatmap cells, responses per day), suppressed together;
    ``hide_total``: the total is hidden elsewhere, so the cells must not give it away either;
    ``forced``: cell positions (or "total") hidden whatever their value."""
    values: dict[Hashable, int] = {i: int(n) for i, n in enumerate(counts)}
    values["total"] = sum(values.values())
    hidden = suppress(values, [Group("total", tuple(range(len(counts))))], minimum,
                      [*(["total"] if hide_total else []), *forced])
    shown = masked(values, hidden)
    return [shown[i] for i in range(len(counts))], shown["total"]


def grid_table(
    grid: Mapping[tuple[Hashable, Hashable], int],
    rows: Sequence[Hashable],
    cols: Sequence[Hashable],
    minimum: int,
) -> tuple[dict, dict, dict, int | None]:
    """A two-way table with row totals, column totals and a grand total, suppressed together.

    Returns (cells, row_totals, col_totals, grand_total) with None for hidden figures.
    """
    values: dict[Hashable, int] = {}
    for r in rows:
        for c in cols:
            values[("cell", r, c)] = int(grid.get((r, c), 0))
    for r in rows:
        values[("row", r)] = sum(values[("cell", r, c)] for c in cols)
    for c in cols:
        values[("col", c)] = sum(values[("cell", r, c)] for r in rows)
    values["grand"] = sum(values[("row", r)] for r in rows)
    groups = [Group(("row", r), tuple(("cell", r, c) for c in cols)) for r in rows]
    groups += [Group(("col", c), tuple(("cell", r, c) for r in rows)) for c in cols]
    groups.append(Group("grand", tuple(("row", r) for r in rows)))
    groups.append(Group("grand", tuple(("col", c) for c in cols)))
    shown = masked(values, suppress(values, groups, minimum))
    cells = {(r, c): shown[("cell", r, c)] for r in rows for c in cols}
    return (
        cells,
        {r: shown[("row", r)] for r in rows},
        {c: shown[("col", c)] for c in cols},
        shown["grand"],
    )


def render(value: float | None, fmt: str = "{}") -> str:
    """How a possibly hidden figure is printed in pages and exports."""
    return TOO_FEW if value is None else fmt.format(value)


R = TypeVar("R", bound=Hashable)
C = TypeVar("C", bound=Hashable)


def split_suppress(rows: Mapping[R, Mapping[C, int]], all_row: R, minimum: int,
                   sums: Iterable[tuple[C, Sequence[C]]] = (), prefer: Iterable[C] = ()) -> dict[R, frozenset[C]]:
    """One table and its split into parts (channels), suppressed as one: the columns to hide in each row.

    ``rows[all_row]`` holds the all-channel figures, every other row one part's figures in the
    same columns; each column of ``all_row`` is the sum of the parts (a part with none in a column
    is 0 there, which singles nobody out, so it is not in that sum). ``sums``: columns that are the
    sum of others within every row (a period and its days; all presses and its kinds). ``prefer``:
    columns hidden first where one more figure must go (``suppress``).

    Each row is published on a page of its own (the station's page for all channels, for the
    kiosk alone, for the web alone), so suppressing each page by itself is not enough: the kiosk's
    trend hiding a day that the split of that day does not would leave it as the all-channel day
    minus the web's. One ``suppress`` over every row and column at once leaves no hidden figure
    of any row that the figures shown on all of them give away.
    """
    values: dict[Hashable, int] = {}
    for r, cols in rows.items():
        for c, n in cols.items():
            values[(r, c)] = int(n)
    columns = list(rows[all_row])
    parts = [r for r in rows if r != all_row]
    groups = [Group((r, total), tuple((r, c) for c in within)) for total, within in sums for r in rows]
    groups += [Group((all_row, c), tuple((r, c) for r in parts if values.get((r, c)))) for c in columns]
    hidden = suppress(values, groups, minimum, prefer=[(r, c) for c in prefer for r in rows])
    out: dict[R, set[C]] = {r: set() for r in rows}
    for r, c in hidden:  # type: ignore[misc]
        out[r].add(c)
    return {r: frozenset(cs) for r, cs in out.items()}


def split_hides(counts_by_part: Mapping[K, int], part: K, minimum: int) -> bool:
    """Does the split of a published figure into parts (channels) hide ``part``'s count?

    The all-channel figure is published, so a split by channel hides one more channel where a
    single one would be hidden (secondary suppression, as the group cascade does). A page that
    shows one channel alone must hide what the split hides, or that channel's count could be
    taken from the all-channel figure minus the others. Parts with no answers are not in the split.
    A table of several figures split by channel is ``split_suppress``.
    """
    if not counts_by_part.get(part):
        return False
    rows: dict[Hashable, dict[str, int]] = {("all",): {"n": sum(int(n) for n in counts_by_part.values())}}
    rows.update({key: {"n": int(n)} for key, n in counts_by_part.items() if n})
    return "n" in split_suppress(rows, ("all",), minimum)[part]
