"""/api/v1/results and /api/v1/exports: the dashboard's figures for the county's reporting systems.

Same figures as the dashboard pages, from the hourly rollups, with the
small-count rule applied: a figure based on fewer than ``PALAUTE_MIN_RESPONSES``
(default 5) responses is ``null`` in JSON and "too few responses" in CSV/XLSX,
and ``suppressed`` says so. Periods are local (Europe/Helsinki) calendar days:
``range=today|7d|30d`` or ``range=custom&from=YYYY-MM-DD&to=YYYY-MM-DD``
(both days included). See docs/dashboard.md.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from fleet_server.api.deps import AnswerExporter, ResultsReader, SessionDep, SettingsDep, ensure_station_results
from fleet_server.models import Station
from fleet_server.results import exports, groups
from fleet_server.results import figures as results

router = APIRouter(tags=["results"])

RangeQ = Annotated[str | None, Query(alias="range", description="today | 7d | 30d | this_month | last_month | "
                                   "this_quarter | last_year | custom (default 7d)")]
FromQ = Annotated[str | None, Query(alias="from", description="custom: first local day, YYYY-MM-DD")]
ToQ = Annotated[str | None, Query(description="custom: last local day, YYYY-MM-DD (included)")]
ChannelQ = Annotated[Literal["all", "kiosk", "web", "phone", "sms"], Query(
    description="one answer channel, or all (the default); a channel's figure is hidden wherever the split of "
    "the all-channel figure by channel hides it")]
StationsQ = Annotated[list[str], Query(alias="station", description="station ids; repeat for several; default: all you may see")]


class Counts(BaseModel):
    one: int | None = Field(None, alias="1", serialization_alias="1")
    two: int | None = Field(None, alias="2", serialization_alias="2")
    three: int | None = Field(None, alias="3", serialization_alias="3")
    four: int | None = Field(None, alias="4", serialization_alias="4")


class Distribution(BaseModel):
    suppressed: bool = Field(description="true: based on too few responses; every figure below is null")
    total: int | None
    counts: Counts
    satisfaction: float | None = Field(description="share of answers 3 and 4 among counted answers, 0..1")


class PeriodOut(BaseModel):
    first: date
    last: date
    days: int


class StationResult(BaseModel):
    station_id: str
    name: str
    period: PeriodOut
    counted: Distribution = Field(description="answers in opening hours without flagged repeated presses")
    all_presses: int | None
    open_online_hours: int = Field(description="hours the station was open and a kiosk online")
    responses_per_open_online_hour: float | None
    previous: Distribution = Field(description="the same number of days just before")
    satisfaction_change: float | None = Field(description="satisfaction minus the previous period's, -1..1")
    satisfaction_interval: list[float] | None = Field(None, description="95 % Wilson interval of satisfaction [low, high]")
    compared_with_others: str | None = Field(
        None, description="lower | higher | similar: satisfaction against the other stations listed (two-proportion "
        "z-test, 5 %); 'not compared' when the figures are hidden")


class DailyRow(BaseModel):
    station_id: str
    channel: str = Field("all", description="the channel the figures are of (all: every channel)")
    date: date
    counted: Distribution
    repeated_presses: int | None
    out_of_hours: int | None
    all_presses: int | None


class TrendPoint(BaseModel):
    first: date
    last: date
    counted: Distribution
    open_hours: int
    offline_open_hours: int


class HeatCell(BaseModel):
    weekday: int = Field(description="0 Monday .. 6 Sunday, local time")
    hour: int
    responses: int | None
    state: Literal["on", "off", "closed", "none"] = Field(description="off: kiosk offline most open hours; closed")


class ChannelResult(BaseModel):
    channel: str = Field(description="kiosk | web | phone | sms, or all (their sum)")
    counted: Distribution
    satisfaction_interval: list[float] | None = Field(None, description="95 % Wilson interval of satisfaction [low, high]")


class StationDetail(BaseModel):
    station_id: str
    name: str
    period: PeriodOut
    channel: str = Field("all", description="the channel the figures are of (all: every channel)")
    by_channel: list[ChannelResult] = Field(
        default_factory=list, description="the period's counted answers side by side by channel, suppressed together "
        "with the all-channel row (a second channel is hidden where only one would be)")
    counted: Distribution
    repeated: Distribution
    out_of_hours: Distribution
    all_presses: Distribution
    trend: list[TrendPoint]
    heatmap: list[HeatCell]


def _dist(d: dict) -> Distribution:
    return Distribution(
        suppressed=d["hidden"], total=d["total"], counts=Counts.model_validate(d["counts"]),
        satisfaction=None if d["satisfaction"] is None else round(d["satisfaction"], 4),
    )


def _period(range_: str | None, from_: str | None, to: str | None) -> results.Period:
    try:
        return results.parse_period(range_, from_, to, results.today_local())
    except results.BadPeriod as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None


def _stations(session, principal, wanted: list[str]) -> list[Station]:
    visible = [s for s in results.stations_visible(session) if principal.may_view_results(s.id)]
    if not wanted:
        return visible
    known = {s.id: s for s in results.stations_visible(session)}
    for sid in wanted:
        if sid not in known:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no station {sid!r}")
        ensure_station_results(principal, sid)
    return [known[sid] for sid in wanted]


def _ch(channel: str) -> str | None:
    return None if channel == "all" else channel


def _p(period: results.Period) -> PeriodOut:
    return PeriodOut(first=period.first, last=period.last, days=period.days)


@router.get("/results/overview", response_model=list[StationResult], response_model_by_alias=True,
            summary="Every station's counted answers, satisfaction and change for a period")
def results_overview(session: SessionDep, settings: SettingsDep, principal: ResultsReader,
                     range_: RangeQ = None, from_: FromQ = None, to: ToQ = None,
                     station: StationsQ = [], channel: ChannelQ = "all") -> list[StationResult]:  # noqa: B006
    period = _period(range_, from_, to)
    rows = results.overview(session, _stations(session, principal, station), period, settings.min_responses,
                            _ch(channel))
    groups.apply_to_overview(rows, groups.load_tree(session), settings.min_responses)  # the rule through the groups
    return [
        StationResult(
            station_id=r.station_id, name=r.name, period=_p(period), counted=_dist(r.dist), all_presses=r.presses,
            open_online_hours=r.open_online_hours,
            responses_per_open_online_hour=None if r.per_hour is None else round(r.per_hour, 3),
            previous=_dist(r.previous),
            satisfaction_change=None if r.satisfaction_change is None else round(r.satisfaction_change, 4),
            satisfaction_interval=None if r.interval is None else [round(x, 4) for x in r.interval],
            compared_with_others=r.versus,
        )
        for r in rows
    ]


@router.get("/results/stations/{station_id}", response_model=StationDetail, response_model_by_alias=True,
            summary="One station: counted/repeated/out-of-hours, daily or weekly trend, hour x weekday heatmap")
def results_station(session: SessionDep, settings: SettingsDep, principal: ResultsReader, station_id: str,
                    range_: RangeQ = None, from_: FromQ = None, to: ToQ = None,
                    granularity: Annotated[Literal["day", "week"], Query()] = "day",
                    channel: ChannelQ = "all") -> StationDetail:
    (st,) = _stations(session, principal, [station_id])
    period = _period(range_, from_, to)
    page = results.station_page(session, st, period, settings.min_responses, granularity, _ch(channel))
    b = page.breakdown
    return StationDetail(
        station_id=st.id, name=st.name, period=_p(period), channel=channel,
        by_channel=[ChannelResult(channel=c["channel"], counted=_dist(c["dist"]),
                                  satisfaction_interval=None if c["interval"] is None
                                  else [round(x, 4) for x in c["interval"]]) for c in page.channels],
        counted=_dist(b["counted"]), repeated=_dist(b["repeated"]),
        out_of_hours=_dist(b["out_of_hours"]), all_presses=_dist(b["all"]),
        trend=[TrendPoint(first=t["first"], last=t["last"], counted=_dist(t["dist"]), open_hours=t["hours"]["open"],
                          offline_open_hours=t["hours"]["offline"]) for t in page.trend],
        heatmap=[HeatCell(weekday=d, hour=c["hour"], responses=c["n"], state=c["state"])
                 for d, row in enumerate(page.heatmap) for c in row["cells"]],
    )


class QuestionnaireItemOut(BaseModel):
    question_id: str
    topic: str
    scale: str = Field(description="recommend: 0..10; agree: 1..5 statements")
    text: str = Field(description="the item's wording in the request's language")
    suppressed: bool = Field(description="true: answered by too few; every figure below is null")
    answers: int | None = Field(description="everyone who answered the item, \"I cannot say\" included")
    cannot_say: int | None
    counts: dict[str, int | None] = Field(description="answers per point of the scale")
    shares: dict[str, float | None] = Field(description="each point's share of those who chose a point, 0..1")
    mean: float | None = Field(description="over those who chose a point (\"I cannot say\" left out)")
    recommendation_index: float | None = Field(description="recommend only: % of 9-10 minus % of 0-6, -100..100")
    agree_share: float | None = Field(description="statements only: share of 4-5, 0..1")


class QuestionnaireOut(BaseModel):
    station_id: str
    name: str
    period: PeriodOut
    questionnaire: str
    version: int = Field(description="the wording these figures count; other versions' responses are not in them")
    responses: int | None = Field(description="forms sent in the period (null: too few)")
    other_versions: int = Field(description="responses in the period to other versions of the wording")
    items: list[QuestionnaireItemOut]


@router.get("/results/stations/{station_id}/questionnaire", response_model=QuestionnaireOut,
            summary="One station's national questionnaire item by item (small-count rule applied)")
def results_questionnaire(session: SessionDep, settings: SettingsDep, principal: ResultsReader, station_id: str,
                          range_: RangeQ = None, from_: FromQ = None, to: ToQ = None) -> QuestionnaireOut:
    from fleet_server.core import i18n
    from fleet_server.results import questionnaire

    (st,) = _stations(session, principal, [station_id])
    period = _period(range_, from_, to)
    res = questionnaire.results(session, [st.id], period.start, period.end, settings.min_responses)
    lang = i18n.lang()
    return QuestionnaireOut(
        station_id=st.id, name=st.name_in(lang), period=_p(period), questionnaire=res.questionnaire,
        version=res.version, responses=res.responses, other_versions=res.other_versions,
        items=[QuestionnaireItemOut(
            question_id=r.item.id, topic=r.item.topic, scale=r.item.scale.id, text=r.item.text_in(lang),
            suppressed=r.hidden, answers=r.answers, cannot_say=r.cannot_say,
            counts={str(p): n for p, n in r.counts.items()},
            shares={str(p): None if v is None else round(v, 4) for p, v in r.shares.items()},
            mean=None if r.mean is None else round(r.mean, 2),
            recommendation_index=None if r.index is None else round(r.index, 1),
            agree_share=None if r.agree is None else round(r.agree, 4),
        ) for r in res.items],
    )


@router.get("/results/daily", response_model=list[DailyRow], response_model_by_alias=True,
            summary="Per-station daily aggregates (JSON); see /exports/daily.csv for files")
def results_daily(session: SessionDep, settings: SettingsDep, principal: ResultsReader,
                  range_: RangeQ = None, from_: FromQ = None, to: ToQ = None,
                  station: StationsQ = [], channel: ChannelQ = "all") -> list[DailyRow]:  # noqa: B006
    period = _period(range_, from_, to)
    ids = [s.id for s in _stations(session, principal, station)]
    return [
        DailyRow(station_id=r["station_id"], channel=r["channel"], date=r["date"], counted=_dist(r["counted"]),
                 repeated_presses=r["repeated"], out_of_hours=r["out_of_hours"], all_presses=r["all_presses"])
        for r in results.daily_rows(session, ids, period, settings.min_responses, _ch(channel))
    ]


MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


DialectQ = Annotated[Literal["excel-fi", "plain"] | None, Query(
    alias="csv", description="CSV only: excel-fi (; and decimal comma, d.m.yyyy; the default for Finnish and "
    "Swedish readers) or plain (, and decimal point, ISO dates; the default for English)")]


def _download(request: Request, kind: str, period: results.Period, fmt: str, columns, rows,
              dialect: str | None = None) -> StreamingResponse:
    factory = request.app.state.session_factory
    name = f"palaute-{kind}-{period.first}-{period.last}"
    header = exports.header(columns)
    body = (exports.stream_csv(factory, header, rows, dialect or exports.default_dialect()) if fmt == "csv"
            else exports.stream_xlsx(factory, exports.sheet_title(kind), header, rows))
    return StreamingResponse(body, media_type=MEDIA[fmt],
                             headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"',
                                      "Cache-Control": "no-store"})


FILE_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {MEDIA["csv"]: {}, MEDIA["xlsx"]: {}}}}


@router.get("/exports/daily.{fmt}", summary="Per-station daily aggregates as CSV or XLSX (small-count rule applied)",
            response_class=StreamingResponse, responses=FILE_RESPONSES)
def export_daily(request: Request, session: SessionDep, settings: SettingsDep, principal: ResultsReader,
                 fmt: Literal["csv", "xlsx"], range_: RangeQ = None, from_: FromQ = None, to: ToQ = None,
                 station: StationsQ = [], dialect: DialectQ = None,  # noqa: B006
                 channel: ChannelQ = "all") -> StreamingResponse:
    period = _period(range_, from_, to)
    ids = [s.id for s in _stations(session, principal, station)]
    minimum = settings.min_responses
    return _download(request, "daily", period, fmt, exports.DAILY_COLUMNS,
                     lambda s: exports.daily_table(s, ids, period, minimum, _ch(channel)), dialect)


@router.get("/exports/totals.{fmt}",
            summary="The period's totals per group and per station as CSV or XLSX (the cascaded small-count rule)",
            response_class=StreamingResponse, responses=FILE_RESPONSES)
def export_totals(request: Request, session: SessionDep, settings: SettingsDep, principal: ResultsReader,
                  fmt: Literal["csv", "xlsx"], range_: RangeQ = None, from_: FromQ = None, to: ToQ = None,
                  station: StationsQ = [], dialect: DialectQ = None,  # noqa: B006
                  channel: ChannelQ = "all") -> StreamingResponse:
    period = _period(range_, from_, to)
    ids = [s.id for s in _stations(session, principal, station)]
    minimum = settings.min_responses
    return _download(request, "totals", period, fmt, exports.TOTALS_COLUMNS,
                     lambda s: exports.totals_table(s, ids, period, minimum, _ch(channel)), dialect)


@router.get("/exports/events.{fmt}", summary="Individual answers as CSV or XLSX (coordinators only)",
            response_class=StreamingResponse, responses=FILE_RESPONSES)
def export_events(request: Request, session: SessionDep, principal: AnswerExporter,
                  fmt: Literal["csv", "xlsx"], range_: RangeQ = None, from_: FromQ = None, to: ToQ = None,
                  station: StationsQ = [], dialect: DialectQ = None,  # noqa: B006
                  channel: ChannelQ = "all") -> StreamingResponse:
    period = _period(range_, from_, to)
    ids = [s.id for s in _stations(session, principal, station)]
    return _download(request, "events", period, fmt, exports.EVENT_COLUMNS,
                     lambda s: exports.event_rows(s, ids, period, _ch(channel)), dialect)
