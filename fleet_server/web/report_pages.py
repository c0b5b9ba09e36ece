"""The monthly report pages: a station's or a group's month as a printable page and as a PDF,
and the list of reports one may read.

Coordinators read every report; staff their own station's, or, given a group, that group's
and everything under it. The figures are fleet_server.results.monthly_report's (the
small-count rule applied); fleet_server.web.report_render lays them out.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response

from fleet_server.api.deps import PageResultsReader, SessionDep, SettingsDep, ensure_station_results
from fleet_server.auth.roles import Principal
from fleet_server.core import i18n
from fleet_server.core.errors import BadPeriod
from fleet_server.results import figures, groups
from fleet_server.results import monthly_report as reports
from fleet_server.web import report_render
from fleet_server.web.dashboard import page_context
from fleet_server.web.templating import templates

router = APIRouter(include_in_schema=False)

MonthQ = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM; default: last month")]
GranularityQ = Annotated[str, Query(pattern="^(day|week)$")]


def may_read_group(principal: Principal, tree: groups.Tree, group_id: str) -> bool:
    """Coordinators: any group; staff: a group every station of which is theirs."""
    if principal.sees_all_results:
        return True
    inside = tree.under(group_id)
    return bool(inside) and all(principal.may_view_results(s) for s in inside)


def _month(value: str | None):
    try:
        return reports.parse_month(value, figures.today_local())
    except BadPeriod as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def _station_report(session, settings, principal, station_id: str, month: str | None, granularity: str):
    ensure_station_results(principal, station_id)
    scope = reports.station_scope(session, station_id)
    if scope is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no such station"))
    return reports.build(session, scope, _month(month), settings.min_responses, granularity)


def _group_report(session, settings, principal, group_id: str, month: str | None, granularity: str):
    tree = groups.load_tree(session)
    if group_id not in tree.groups:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no such group"))
    if not may_read_group(principal, tree, group_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext("you may not see the results of this group"))
    scope = reports.group_scope(session, group_id)
    assert scope is not None
    return reports.build(session, scope, _month(month), settings.min_responses, granularity)


def _page(request: Request, principal: Principal, report: reports.MonthlyReport, base_path: str) -> Response:
    return templates.TemplateResponse(
        request, "report_page.html",
        page_context(request, principal, nav="reports", base_path=base_path,
                     this_month=figures.today_local().strftime("%Y-%m"), **report_render.context(report)),
    )


def _pdf(report: reports.MonthlyReport) -> Response:
    return Response(report_render.report_pdf(report), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{report_render.filename(report)}"'})


@router.get("/reports/stations/{station_id}", response_class=HTMLResponse)
def station_report(request: Request, session: SessionDep, settings: SettingsDep, principal: PageResultsReader,
                   station_id: str, month: MonthQ = None, granularity: GranularityQ = "day") -> Response:
    report = _station_report(session, settings, principal, station_id, month, granularity)
    return _page(request, principal, report, f"/reports/stations/{station_id}")


@router.get("/reports/stations/{station_id}/pdf")
def station_report_pdf(session: SessionDep, settings: SettingsDep, principal: PageResultsReader,
                       station_id: str, month: MonthQ = None, granularity: GranularityQ = "day") -> Response:
    return _pdf(_station_report(session, settings, principal, station_id, month, granularity))


@router.get("/reports/groups/{group_id}", response_class=HTMLResponse)
def group_report(request: Request, session: SessionDep, settings: SettingsDep, principal: PageResultsReader,
                 group_id: str, month: MonthQ = None, granularity: GranularityQ = "day") -> Response:
    report = _group_report(session, settings, principal, group_id, month, granularity)
    return _page(request, principal, report, f"/reports/groups/{group_id}")


@router.get("/reports/groups/{group_id}/pdf")
def group_report_pdf(session: SessionDep, settings: SettingsDep, principal: PageResultsReader,
                     group_id: str, month: MonthQ = None, granularity: GranularityQ = "day") -> Response:
    return _pdf(_group_report(session, settings, principal, group_id, month, granularity))


def readable_scopes(session, principal: Principal) -> tuple[list[tuple[str, str, int]], list]:
    """(groups as (id, name, depth), stations) whose reports ``principal`` may read."""
    tree = groups.load_tree(session)
    stations = [s for s in figures.stations_visible(session) if principal.may_view_results(s.id)]
    choices = [c for c in groups.group_choices(tree, [s.id for s in stations]) if may_read_group(principal, tree, c[0])]
    return choices, stations


@router.get("/reports", response_class=HTMLResponse)
def reports_index(request: Request, session: SessionDep, principal: PageResultsReader,
                  month: MonthQ = None) -> Response:
    chosen = _month(month)
    group_rows, stations = readable_scopes(session, principal)
    return templates.TemplateResponse(
        request, "report_index.html",
        page_context(request, principal, nav="reports", month=chosen, month_label=report_render.month_label(chosen),
                     this_month=figures.today_local().strftime("%Y-%m"), group_rows=group_rows, stations=stations,
                     **subscriptions_context(session, principal)),
    )


def subscriptions_context(session, principal: Principal) -> dict:
    return {}
