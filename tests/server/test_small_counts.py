"""The small-count rule: nothing below the minimum is shown, and nothing hidden can be worked out."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_server.results import queries
from fleet_server.results.small_counts import (
    TOO_FEW,
    Group,
    distribution,
    distributions,
    grid_table,
    render,
    satisfaction,
    series_table,
    split_suppress,
    suppress,
)

counts = st.integers(min_value=0, max_value=40)


def _rank(rows: list[list[Fraction]]) -> int:
    rows = [r[:] for r in rows]
    rank, width = 0, len(rows[0]) if rows else 0
    for col in range(width):
        pivot = next((i for i in range(rank, len(rows)) if rows[i][col] != 0), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        for i in range(rank + 1, len(rows)):
            f = rows[i][col] / rows[rank][col]
            rows[i] = [a - f * b for a, b in zip(rows[i], rows[rank], strict=True)]
        rank += 1
    return rank


def determined_hidden(values, groups, hidden) -> set:
    """Independent check by rank: x is determined iff adding e_x does not raise the rank. A hidden 0
    is taken as known (it singles nobody out; a closed day is known to be 0): it covers nothing."""
    cols = sorted((key for key in hidden if values[key]), key=repr)
    idx = {k: i for i, k in enumerate(cols)}
    rows = []
    for g in groups:
        row = [Fraction(0)] * len(cols)
        for key, sign in ((g.total, 1), *((p, -1) for p in g.parts)):
            if key in idx:
                row[idx[key]] += sign
        rows.append(row)
    if not cols:
        return set()
    base = _rank(rows) if rows else 0
    found = set()
    for k in cols:
        unit = [Fraction(int(i == idx[k])) for i in range(len(cols))]
        if _rank(rows + [unit]) == base:
            found.add(k)
    return found


@settings(max_examples=300, deadline=None)
@given(st.lists(counts, min_size=1, max_size=8), st.integers(min_value=1, max_value=10))
def test_series_hides_every_small_count_and_none_is_recoverable(series, minimum):
    values = {i: n for i, n in enumerate(series)}
    values["total"] = sum(series)
    groups = [Group("total", tuple(range(len(series))))]
    hidden = suppress(values, groups, minimum)
    assert {k for k, n in values.items() if n < minimum} <= hidden
    entries = ["total", *range(len(series))]
    assert sum(1 for k in entries if k in hidden and values[k]) != 1
    assert not determined_hidden(values, groups, hidden)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=1, max_value=6),
    st.data(),
    st.integers(min_value=2, max_value=8),
)
def test_grid_with_margins_leaks_no_hidden_cell(n_rows, n_cols, data, minimum):
    grid = {
        (r, c): data.draw(st.integers(min_value=0, max_value=15)) for r in range(n_rows) for c in range(n_cols)
    }
    cells, rows, cols, grand = grid_table(grid, range(n_rows), range(n_cols), minimum)
    # Every small figure is hidden.
    for key, n in grid.items():
        if n < minimum:
            assert cells[key] is None
    for r in range(n_rows):
        if sum(grid[(r, c)] for c in range(n_cols)) < minimum:
            assert rows[r] is None
    # Rebuild the published system and prove no hidden figure is determined by it.
    values = {("cell", r, c): grid[(r, c)] for r in range(n_rows) for c in range(n_cols)}
    values |= {("row", r): sum(grid[(r, c)] for c in range(n_cols)) for r in range(n_rows)}
    values |= {("col", c): sum(grid[(r, c)] for r in range(n_rows)) for c in range(n_cols)}
    values["grand"] = sum(grid.values())
    hidden = {("cell", r, c) for (r, c), v in cells.items() if v is None}
    hidden |= {("row", r) for r, v in rows.items() if v is None}
    hidden |= {("col", c) for c, v in cols.items() if v is None}
    if grand is None:
        hidden.add("grand")
    groups = [Group(("row", r), tuple(("cell", r, c) for c in range(n_cols))) for r in range(n_rows)]
    groups += [Group(("col", c), tuple(("cell", r, c) for r in range(n_rows))) for c in range(n_cols)]
    groups += [Group("grand", tuple(("row", r) for r in range(n_rows)))]
    groups += [Group("grand", tuple(("col", c) for c in range(n_cols)))]
    assert not determined_hidden(values, groups, hidden)
    # Shown figures are the true ones.
    for key, v in cells.items():
        assert v is None or v == grid[key]


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=1, max_value=3),
    st.integers(min_value=1, max_value=7),
    st.data(),
    st.integers(min_value=2, max_value=8),
)
def test_a_table_split_by_channel_gives_away_no_hidden_figure_of_any_channel(n_parts, n_days, data, minimum):
    """Days and their period, for all channels and for each: every page suppressed from one table,
    so nothing hidden on one channel's page is the all-channel figure minus what the others show."""
    days = list(range(n_days))
    parts = {f"ch{p}": {d: data.draw(st.integers(min_value=0, max_value=12)) for d in days} for p in range(n_parts)}
    rows: dict = {None: {d: sum(p[d] for p in parts.values()) for d in days}, **parts}
    for cols in rows.values():
        cols["period"] = sum(cols[d] for d in days)
    hidden = split_suppress(rows, None, minimum, sums=[("period", days)])
    values = {(r, c): n for r, cols in rows.items() for c, n in cols.items()}
    shown_hidden = {(r, c) for r, cs in hidden.items() for c in cs}
    assert {key for key, n in values.items() if n < minimum} <= shown_hidden
    groups = [Group((r, "period"), tuple((r, d) for d in days)) for r in rows]
    groups += [Group((None, c), tuple((r, c) for r in parts)) for c in [*days, "period"]]
    assert not determined_hidden(values, groups, shown_hidden), "a hidden figure follows from the others"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(counts, counts, counts, counts), min_size=1, max_size=6), st.integers(min_value=1, max_value=10))
def test_distributions_hide_small_bases_whole_and_no_hidden_total_is_recoverable(rows, minimum):
    data = {i: dict(zip((1, 2, 3, 4), r, strict=True)) for i, r in enumerate(rows)}
    data["all"] = {v: sum(r[v - 1] for r in rows) for v in (1, 2, 3, 4)}
    shown = distributions(data, minimum, all_key="all")
    totals = {k: sum(d.values()) for k, d in data.items()}
    for key, dist in shown.items():
        if totals[key] < minimum:
            assert dist["hidden"] and dist["total"] is None and dist["satisfaction"] is None
            assert all(v is None for v in dist["counts"].values())
        if not dist["hidden"]:
            assert dist["total"] == totals[key]
            assert dist["counts"] == {str(v): data[key][v] for v in (1, 2, 3, 4)}
            happy = data[key][3] + data[key][4]
            assert dist["satisfaction"] == pytest.approx(happy / totals[key])
    hidden = {k for k, d in shown.items() if d["hidden"]}
    groups = [Group("all", tuple(range(len(rows))))]
    assert sum(1 for k in ["all", *range(len(rows))] if k in hidden and totals[k]) != 1
    assert not determined_hidden(totals, groups, hidden)


def test_a_distribution_below_the_minimum_shows_nothing_but_too_few():
    d = distribution({1: 1, 2: 0, 3: 2, 4: 1}, 5)
    assert d["hidden"] and d["satisfaction"] is None and d["total"] is None
    d = distribution({1: 1, 2: 0, 3: 2, 4: 2}, 5)
    assert not d["hidden"] and d["total"] == 5 and d["satisfaction"] == pytest.approx(0.8)


def test_no_suppression_when_everything_is_large_enough():
    d = distribution({1: 5, 2: 6, 3: 7, 4: 8}, 5)
    assert d["counts"] == {"1": 5, "2": 6, "3": 7, "4": 8} and d["total"] == 26
    assert d["satisfaction"] == pytest.approx(15 / 26)


def test_one_small_cell_takes_the_next_smallest_with_it():
    shown, total = series_table([3, 10, 12, 20], 5)
    assert shown == [None, None, 12, 20] and total == 45


def test_a_hidden_zero_covers_no_small_count():
    """Saturday and Sunday closed (0), Monday 3: the week minus the shown days would give Monday."""
    shown, total = series_table([0, 0, 3, 20, 21, 22, 23], 5)
    assert shown == [None, None, None, None, 21, 22, 23] and total == 89
    shown, total = series_table([0, 0, 20, 21, 22, 23, 24], 5)
    assert shown == [None, None, 20, 21, 22, 23, 24] and total == 110, "nothing is hidden to protect a 0"


def test_suppression_is_deterministic_with_ties():
    a = series_table([2, 9, 9, 9], 5)
    b = series_table([2, 9, 9, 9], 5)
    assert a == b == ([None, None, 9, 9], 29)


def test_hidden_figures_render_as_too_few_responses():
    assert render(None) == TOO_FEW == "too few responses"
    assert render(0.5, "{:.0%}") == "50%"


def test_satisfaction_is_the_share_of_the_two_happy_faces_and_none_below_the_minimum():
    assert satisfaction({1: 1, 2: 1, 3: 1, 4: 5}) == 0.75
    assert satisfaction({}) is None
    assert satisfaction({4: 4}, minimum=5) is None and satisfaction({4: 5}, minimum=5) == 1.0


@given(st.tuples(counts, counts, counts, counts), st.integers(min_value=1, max_value=10))
def test_a_distribution_and_the_station_list_give_the_same_satisfaction(row, minimum):
    """The dashboard's distributions and the raw-count station list use one function."""
    shown = distribution(dict(zip((1, 2, 3, 4), row, strict=True)), minimum)["satisfaction"]
    assert shown == satisfaction(dict(zip((1, 2, 3, 4), row, strict=True)), minimum)
    assert queries.satisfaction is satisfaction


def test_distributions_give_the_figures_of_share_and_satisfaction_for_every_row():
    """The written-out distribution (four faces) is share() and satisfaction() row by row, and a
    hidden row is hidden whole, for any counts (missing faces count 0)."""
    import random

    from fleet_server.results.small_counts import SMILEYS, Group, distributions, satisfaction, share, suppress

    rng = random.Random(4)
    for minimum in (1, 5, 10):
        rows = {i: {v: rng.randrange(4) for v in SMILEYS if rng.random() < 0.8} for i in range(60)}
        rows["all"] = {v: sum(r.get(v, 0) for k, r in rows.items()) for v in SMILEYS}
        out = distributions(rows, minimum, all_key="all")
        totals = {k: sum(r.get(v, 0) for v in SMILEYS) for k, r in rows.items()}
        hidden = suppress(totals, [Group("all", tuple(k for k in rows if k != "all"))], minimum)
        for key, counts in rows.items():
            d = out[key]
            if key in hidden:
                assert d == {"counts": dict.fromkeys("1234"), "total": None, "shares": dict.fromkeys("1234"),
                             "satisfaction": None, "hidden": True}
                continue
            assert d["counts"] == {str(v): counts.get(v, 0) for v in SMILEYS} and d["total"] == totals[key]
            assert d["shares"] == {str(v): share(counts.get(v, 0), totals[key], minimum) for v in SMILEYS}
            assert d["satisfaction"] == satisfaction(counts, minimum) and d["hidden"] is False

