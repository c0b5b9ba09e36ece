"""The results dashboard: overview, station page, comparison (server-rendered, Jinja2).

Figures come from fleet_server.results.figures (rollups + the small-count rule); the
pages only lay them out. Every route depends on a page principal from
fleet_server.api.deps, so anonymous visitors are sent to /login.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from fleet_server.api.deps import PageResultsReader, PageUser, SessionDep, SettingsDep, ensure_station_results
from fleet_server.auth.roles import Principal
from fleet_server.auth.setup import iter_routes
from fleet_server.core import i18n
from fleet_server.core.i18n import N_
from fleet_server.models import Station
from fleet_server.results import exports, groups
from fleet_server.results import figures as results
from fleet_server.results.small_counts import TOO_FEW
from fleet_server.web.templating import templates

router = APIRouter(include_in_schema=False)

OVERVIEW_PAGE_ROWS = 100
"""Stations per page of the overview's table: a county fits on one page; at country scale
(500 stations) the groups table and the group filter are the way in, and the station table
pages (sorted over all stations, so page 2 of "lowest satisfaction" is the next 100)."""

CHANNEL_NAMES = {"kiosk": N_("kiosk"), "web": N_("web survey"), "phone": N_("phone"), "sms": N_("text message")}
"""The answer channels (palaute_wire.contract.ANSWER_CHANNELS) as the overview names them."""

RangeQ = Annotated[str | None, Query(alias="range", description="today | 7d | 30d | custom")]
FromQ = Annotated[str | None, Query(alias="from", description="custom range: first local day, YYYY-MM-DD")]
ToQ = Annotated[str | None, Query(description="custom range: last local day, YYYY-MM-DD")]
ChannelQ = Annotated[str | None, Query(max_length=8, description="all (default) | kiosk | web | phone | sms")]


def _period(range_: str | None, from_: str | None, to: str | None) -> results.Period:
    try:
        return results.parse_period(range_, from_, to, results.today_local())
    except results.BadPeriod as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def _channel(value: str | None) -> str | None:
    try:
        return results.parse_channel(value)
    except results.BadPeriod as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def chart_texts() -> dict[str, object]:
    """The words the charts draw (dashboard.js), in the reader's language."""
    _ = i18n.gettext
    return {
        "responses_bars": _("Responses (bars)"), "satisfaction_line": _("Satisfaction % (line, squares)"),
        "responses": _("responses"), "satisfaction_pct": _("satisfaction %"), "too_few": _(TOO_FEW),
        "offline": _("offline"), "closed": _("closed"), "share_axis": _("% of responses"),
        "answers": [_("1 very unhappy"), _("2 unhappy"), _("3 happy"), _("4 very happy")],
    }


def page_context(request: Request, principal, **extra) -> dict:
    paths = getattr(request.app.state, "route_paths", None)
    if paths is None:
        paths = request.app.state.route_paths = {path for path, _ in iter_routes(request.app)}
    return {"principal": principal, "has_devices_page": "/devices" in paths, "CHANNEL_LABELS": results.CHANNEL_LABELS,
            **extra}


@router.get("/", response_class=HTMLResponse)
def overview(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PageUser,
    range_: RangeQ = None,
    from_: FromQ = None,
    to: ToQ = None,
    sort: str = "name",
    dir: str = "asc",
    group: Annotated[str, Query(max_length=64, description="only the stations of this group")] = "",
    page: Annotated[int, Query(ge=1, le=100_000, description="page of the station table")] = 1,
    channel: ChannelQ = None,
) -> Response:
    if not principal.may_view_any_results:
        return templates.TemplateResponse(request, "home.html", page_context(request, principal, nav="home"))
    period = _period(range_, from_, to)
    tree = groups.load_tree(session)  # every station's id, group and names
    visible = [sid for sid in tree.station_group if principal.may_view_results(sid)]
    choices = groups.group_choices(tree, visible)
    if group and group not in {g for g, _name, _depth in choices}:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no such group"))
    if group:
        inside = set(tree.under(group))
        visible = [sid for sid in visible if sid in inside]
    stations = tree.named(visible)  # names from the tree's one query of the stations
    chosen_channel = _channel(channel)
    rows = results.overview(session, stations, period, settings.min_responses, chosen_channel,
                            every_station=len(stations) == len(tree.station_group))
    group_rows = groups.apply_to_overview(rows, tree, settings.min_responses, group or None)
    rows = results.sort_rows(rows, sort, dir == "desc")
    pages = max(1, -(-len(rows) // OVERVIEW_PAGE_ROWS))
    page = min(page, pages)
    first = (page - 1) * OVERVIEW_PAGE_ROWS
    extra_query = (f"&group={quote(group)}" if group else "") + (f"&channel={chosen_channel}" if chosen_channel else "")
    return templates.TemplateResponse(
        request,
        "overview.html",
        page_context(
            request, principal, nav="overview", period=period, rows=rows[first:first + OVERVIEW_PAGE_ROWS],
            sort=sort, dir=dir, minimum=settings.min_responses, base_path="/", group_rows=group_rows,
            group_choices=choices, group=group, extra_query=extra_query, channel=chosen_channel,
            report_path=_report_path(principal, tree, group, stations),
            channel_names={c: i18n.gettext(label) for c, label in CHANNEL_NAMES.items()},
            pager={"page": page, "pages": pages, "first": first + 1, "last": min(len(rows), first + OVERVIEW_PAGE_ROWS),
                   "of": len(rows), "query": f"{period.query()}{extra_query}&sort={quote(sort)}&dir={quote(dir)}"},
        ),
    )


def _report_path(principal: Principal, tree: groups.Tree, group: str, stations: list) -> str | None:
    """The monthly report the overview links to, only if ``principal`` may open it: the chosen
    group's; else, for staff of one station, their station's (a 403 page is no link)."""
    if group and principal.may_view_group(tree.under(group)):
        return f"/reports/groups/{quote(group)}"
    if not principal.sees_all_results and len(principal.own_stations) == 1 and stations:
        return f"/reports/stations/{quote(principal.own_stations[0])}"
    return None


@router.get("/stations/{station_id}", response_class=HTMLResponse)
def station(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PageResultsReader,
    station_id: str,
    range_: RangeQ = None,
    from_: FromQ = None,
    to: ToQ = None,
    granularity: Annotated[str, Query(pattern="^(day|week)$")] = "day",
    channel: ChannelQ = None,
) -> Response:
    ensure_station_results(principal, station_id)
    chosen_channel = _channel(channel)
    st = session.get(Station, station_id)
    if st is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no station {id}").format(id=repr(station_id)))
    period = _period(range_, from_ or None, to or None)
    if range_ is None and from_ is None:
        period = results.parse_period("30d", None, None, results.today_local())
    page = results.station_page(session, st, period, settings.min_responses, granularity, chosen_channel)
    chart = {
        "labels": [b["label"] for b in page.trend],
        "responses": [b["dist"]["total"] for b in page.trend],
        "satisfaction": [
            None if b["dist"]["satisfaction"] is None else round(b["dist"]["satisfaction"] * 100, 1) for b in page.trend
        ],
        "offline": [b["hours"]["open"] > 0 and b["hours"]["offline"] * 2 >= b["hours"]["open"] for b in page.trend],
        "closed": [b["hours"]["open"] == 0 for b in page.trend],
        "text": chart_texts(),
    }
    return templates.TemplateResponse(
        request,
        "station.html",
        page_context(
            request, principal, nav="overview", page=page, period=period, minimum=settings.min_responses,
            chart=chart, base_path=f"/stations/{station_id}", granularity=granularity,
            channel_query=f"&channel={chosen_channel}" if chosen_channel else "",
        ),
    )


@router.get("/compare", response_class=HTMLResponse)
def compare(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PageResultsReader,
    station: Annotated[list[str], Query(description="station ids to compare")] = [],  # noqa: B006
    range_: RangeQ = None,
    from_: FromQ = None,
    to: ToQ = None,
    granularity: Annotated[str, Query(pattern="^(day|week)$")] = "day",
    channel: ChannelQ = None,
) -> Response:
    chosen_channel = _channel(channel)
    period = _period(range_, from_, to)
    all_stations = [s for s in results.stations_visible(session) if principal.may_view_results(s.id)]
    chosen_ids = [s for s in station if principal.may_view_results(s)] or [s.id for s in all_stations[:3]]
    chosen = [s for s in all_stations if s.id in chosen_ids]
    data = results.comparison(session, chosen, period, settings.min_responses, granularity, chosen_channel)
    chart = {
        "labels": data["labels"],
        "series": [
            {
                "id": s.id,
                "name": s.name_in(i18n.lang()),
                "satisfaction": [
                    None if data["series"][s.id][i]["satisfaction"] is None
                    else round(data["series"][s.id][i]["satisfaction"] * 100, 1)
                    for i in range(data["buckets"])
                ],
            }
            for s in chosen
        ],
        "shares": [
            {"id": r.station_id, "name": r.name, "shares": [
                None if r.dist["shares"][v] is None else round(r.dist["shares"][v] * 100, 1) for v in "1234"]}
            for r in data["rows"]
        ],
        "text": chart_texts(),
    }
    return templates.TemplateResponse(
        request,
        "compare.html",
        page_context(
            request, principal, nav="compare", period=period, stations=all_stations, chosen=chosen_ids,
            rows=data["rows"], chart=chart, minimum=settings.min_responses,
            base_path="/compare", granularity=granularity, channel=chosen_channel,
            extra_query="".join(f"&station={s}" for s in chosen_ids) + (f"&channel={chosen_channel}" if chosen_channel else ""),
        ),
    )


@router.get("/exports", response_class=HTMLResponse)
def exports_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: PageResultsReader,
    range_: RangeQ = None,
    from_: FromQ = None,
    to: ToQ = None,
) -> Response:
    period = _period(range_, from_, to)
    stations = [s for s in results.stations_visible(session) if principal.may_view_results(s.id)]
    return templates.TemplateResponse(
        request,
        "exports.html",
        page_context(request, principal, nav="exports", period=period, stations=stations,
                     minimum=settings.min_responses, base_path="/exports", dialect=exports.default_dialect()),
    )
