"""The monthly report pages: a station's or a group's month as a printable page and as a PDF,
the list of reports one may read, and who gets them by e-mail (fleet_server.fleet.report_mail).

Coordinators read every report and manage every subscription; staff (station managers) their
own station's, or, given a group, that group's and everything under it. The figures are fleet_server.results.monthly_report's (the
small-count rule applied); fleet_server.web.report_render lays them out.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from fleet_server.api.deps import CsrfChecked, PageResultsReader, SessionDep, SettingsDep, ensure_station_results
from fleet_server.auth.roles import Principal
from fleet_server.core import i18n
from fleet_server.core.errors import BadPeriod, SubscriptionInvalid
from fleet_server.core.i18n import N_
from fleet_server.fleet import report_mail
from fleet_server.models import ReportSubscription
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
    return principal.may_view_group(tree.under(group_id))


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
                  month: MonthQ = None, done: str = "") -> Response:
    message = i18n.gettext(DONE[done]) if done in DONE else None
    return _index(request, session, principal, _month(month), sub_message=message)


def _may_manage(session, principal: Principal, sub: ReportSubscription, tree: groups.Tree | None = None) -> bool:
    if principal.sees_all_results:
        return True
    if sub.station_id is not None:
        return principal.may_view_results(sub.station_id)
    return sub.group_id is not None and may_read_group(principal, tree or groups.load_tree(session), sub.group_id)


def subscriptions_context(session, principal: Principal, **extra) -> dict:
    """The subscriptions ``principal`` may see and change, with their last sending, and the form's choices."""
    tree = groups.load_tree(session)
    subs = [s for s in report_mail.list_subscriptions(session) if _may_manage(session, principal, s, tree)]
    group_rows, stations = readable_scopes(session, principal)
    names = {f"station:{s.id}": s.name_in(i18n.lang()) for s in stations}
    names |= {f"group:{gid}": g.name_in(i18n.lang()) for gid, g in tree.groups.items()}
    names |= {f"station:{s.id}": s.name_in(i18n.lang()) for s in figures.stations_visible(session)}
    return {"subscriptions": subs, "deliveries": report_mail.last_deliveries(session, [s.id for s in subs]),
            "scope_names": names, "scope_choices": [(f"group:{g}", n, d) for g, n, d in group_rows]
            + [(f"station:{s.id}", s.name_in(i18n.lang()), 0) for s in stations],
            "sub_error": None, "sub_form": {}, "sub_message": None, "month_name": report_render.month_label, **extra}


def _index(request: Request, session, principal: Principal, month=None, code: int = 200, **extra) -> Response:
    chosen = month or reports.last_full_month(figures.today_local())
    group_rows, stations = readable_scopes(session, principal)
    return templates.TemplateResponse(
        request, "report_index.html",
        page_context(request, principal, nav="reports", month=chosen, month_label=report_render.month_label(chosen),
                     this_month=figures.today_local().strftime("%Y-%m"), group_rows=group_rows, stations=stations,
                     **subscriptions_context(session, principal, **extra)),
        status_code=code,
    )


@router.post("/reports/subscriptions", response_class=HTMLResponse)
def add_subscription(request: Request, session: SessionDep, principal: CsrfChecked,
                     email: Annotated[str, Form()] = "", language: Annotated[str, Form()] = "",
                     scope: Annotated[str, Form()] = "") -> Response:
    if not principal.may_view_any_results:
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext("your role may not subscribe to reports"))
    kind, _sep, scope_id = scope.partition(":")
    form = {"email": email, "language": language, "scope": scope}
    allowed = {value for value, _name, _depth in subscriptions_context(session, principal)["scope_choices"]}
    if scope not in allowed:
        return _index(request, session, principal, code=400, sub_form=form,
                      sub_error=i18n.gettext("choose a station or group whose reports you may read"))
    try:
        report_mail.add_subscription(session, email, language, station_id=scope_id if kind == "station" else None,
                                     group_id=scope_id if kind == "group" else None, created_by=principal.name)
    except SubscriptionInvalid as exc:
        return _index(request, session, principal, code=400, sub_form=form, sub_error=str(exc))
    session.commit()
    return RedirectResponse("/reports?" + urlencode({"done": "subscribed"}), status_code=303)


@router.post("/reports/subscriptions/{subscription_id}/delete", response_class=HTMLResponse)
def remove_subscription(session: SessionDep, principal: CsrfChecked, subscription_id: int) -> Response:
    sub = session.get(ReportSubscription, subscription_id)
    if sub is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, i18n.gettext("no such subscription"))
    if not _may_manage(session, principal, sub):
        raise HTTPException(status.HTTP_403_FORBIDDEN, i18n.gettext("you may not change this subscription"))
    report_mail.remove_subscription(session, subscription_id)
    session.commit()
    return RedirectResponse("/reports?" + urlencode({"done": "removed"}), status_code=303)


DONE = {"subscribed": N_("Subscription saved: the report goes out on the 1st of each month."),
        "removed": N_("Subscription removed.")}
