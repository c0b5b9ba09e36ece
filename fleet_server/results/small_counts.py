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
   hide none or at least two of its entries; a group with exactly one hidden
   entry hides its smallest visible part as well (the total only when no part
   is left) - repeated until nothing changes, because hiding a figure can break
   another group that shares it;
3. an exact audit: the visible figures and the group equations are solved
   over the rationals, and any hidden figure they still pin down (possible when
   groups overlap, e.g. the rows and columns of a table with margins) causes
   one more figure of one of its groups to be hidden; repeat until it passes.

Residual limits (stated, not solved): the audit is linear, so a hidden figure
that non-negativity forces to 0 (total 7, visible part 7) is known to be 0,
which singles nobody out; two hidden rows of a distribution table reveal their
*combined* distribution; and separate tables of the same data (a daily trend
and an hour-of-day heatmap) are suppressed each on its own, as in the
published statistics this follows.

Figures are plain ``int``/``float``; a hidden one is ``None`` and the
templates and exports render ``None`` as ``TOO_FEW``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
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
             forced: Iterable[Hashable] = ()) -> frozenset[K]:
    """The keys of ``values`` to hide, primary and secondary; deterministic.

    ``values`` holds every published count (parts and totals alike); each
    group's keys must be in it. Ties between equally small cells are broken by
    the order of ``values``, so the same table always hides the same cells.
    ``forced``: keys hidden whatever their size, because another table already hides
    them (a station's month total hidden by its group's cascade hides its trend's total too; a
    channel's count that the split by channel hides stays hidden on that channel's own page).
    """
    groups = [g for g in groups if g.parts]
    order = {key: i for i, key in enumerate(values)}
    for g in groups:
        for key in (g.total, *g.parts):
            if key not in values:
                raise KeyError(f"group names {key!r}, which is not in the table")
    hidden: set[K] = {key for key, n in values.items() if n < minimum} | {k for k in forced if k in values}  # type: ignore[misc]
    if not hidden:
        return frozenset()

    def rank(key: K) -> tuple[int, int]:
        return (values[key], order[key])

    while True:
        _close_groups(values, groups, hidden, rank)
        exposed = _recoverable(groups, hidden, order)
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
                if any(k in hidden for k in (g.total, *g.parts))
                for key in (*g.parts, g.total)
                if key not in hidden
            ]
        hidden.add(min(candidates, key=rank))


def _close_groups(values, groups, hidden: set, rank) -> None:
    changed = True
    while changed:
        changed = False
        for g in groups:
            entries = (g.total, *g.parts)
            if sum(1 for key in entries if key in hidden) != 1:
                continue
            parts = [key for key in g.parts if key not in hidden]
            pick = min(parts, key=rank) if parts else g.total
            hidden.add(pick)
            changed = True


def _recoverable(groups, hidden: set, order: Mapping) -> list:
    """Hidden keys whose value follows from the visible figures and the group equations.

    Each group gives ``total - sum(parts) = 0``; moving the visible figures to
    the right-hand side leaves a linear system in the hidden ones. A hidden
    cell is determined exactly when its unit vector lies in the row space of
    that system: in reduced row-echelon form, when it is a pivot column whose
    row has no other non-zero entry.
    """
    columns = sorted(hidden, key=order.__getitem__)
    index = {key: i for i, key in enumerate(columns)}
    rows: list[list[Fraction]] = []
    for g in groups:
        coeffs: dict[int, Fraction] = {}
        for key, sign in ((g.total, 1), *((p, -1) for p in g.parts)):
            if key in index:
                coeffs[index[key]] = coeffs.get(index[key], Fraction(0)) + sign
        row = [Fraction(0)] * len(columns)
        for i, c in coeffs.items():
            row[i] = c
        if any(row):
            rows.append(row)
    pivots = _rref(rows, len(columns))
    exposed = []
    for col, r in pivots.items():
        row = rows[r]
        if all(v == 0 for j, v in enumerate(row) if j != col):
            exposed.append(columns[col])
    return exposed


def _rref(rows: list[list[Fraction]], width: int) -> dict[int, int]:
    """Reduce ``rows`` in place; return {pivot column: row index}."""
    pivots: dict[int, int] = {}
    r = 0
    for col in range(width):
        pivot = next((i for i in range(r, len(rows)) if rows[i][col] != 0), None)
        if pivot is None:
            continue
        rows[r], rows[pivot] = rows[pivot], rows[r]
        lead = rows[r][col]
        rows[r] = [v / lead for v in rows[r]]
        for i in range(len(rows)):
            if i != r and rows[i][col] != 0:
                factor = rows[i][col]
                rows[i] = [a - factor * b for a, b in zip(rows[i], rows[r], strict=True)]
        pivots[col] = r
        r += 1
        if r == len(rows):
            break
    return pivots


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


def split_hides(counts_by_part: Mapping[K, int], part: K, minimum: int) -> bool:
    """Does the split of a published figure into parts (channels) hide ``part``'s count?

    The all-channel figure is published, so a split by channel hides one more channel where a
    single one would be hidden (secondary suppression, as the group cascade does). A page that
    shows one channel alone must hide what the split hides, or that channel's count could be
    taken from the all-channel figure minus the others. Parts with no answers are not in the split.
    """
    used: dict[Hashable, int] = {key: int(n) for key, n in counts_by_part.items() if n}
    if not used.get(part):
        return False
    values: dict[Hashable, int] = {**used, ("all",): sum(used.values())}
    return part in suppress(values, [Group(("all",), tuple(used))], minimum)
