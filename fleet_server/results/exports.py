"""CSV and XLSX exports of events and of per-station daily aggregates, streamed.

- Daily aggregates go through the small-count rule (fleet_server.results.figures.daily_rows):
  a hidden figure is written as "too few responses", in CSV and XLSX alike.
- Events are individual answers (one row per press), so only coordinators may
  export them (see fleet_server.api.results); they carry no personal data, but a
  timestamp at a small station can point at one visit.

Both formats stream: CSV row by row from a server-side cursor (``yield_per``);
XLSX through openpyxl's write-only workbook into a temporary file that is then
sent in chunks, so memory stays flat for millions of rows. Each export opens
its own database session, because the response outlives the request's session.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.core import i18n
from fleet_server.core.i18n import N_
from fleet_server.models import FeedbackEvent, Station
from fleet_server.results.figures import LOCAL_TZ, Period, daily_rows
from fleet_server.results.small_counts import TOO_FEW

CHUNK = 64 * 1024
YIELD_PER = 5_000

EVENT_COLUMNS = (
    "event_id", "station_id", "station", "device_id", "kind", "value", "option_id", "question_id", "answer_to",
    "lang", "ts_utc", "local_time", "clock_synced", "burst", "out_of_hours", "survey_version", "channel",
)
DAILY_COLUMNS = (
    "station_id", "station", "date", "responses", "very_unhappy_1", "unhappy_2", "happy_3", "very_happy_4",
    "satisfaction", "repeated_presses", "out_of_hours", "all_presses", "channel",
)
TOTALS_COLUMNS = (
    "level", "id", "name", "part_of", "first_day", "last_day", "responses", "very_unhappy_1", "unhappy_2",
    "happy_3", "very_happy_4", "satisfaction", "satisfaction_low_95", "satisfaction_high_95",
)
"""Column ids; English files use them as the header (stable for scripts), fi and sv files the labels below."""

COLUMN_LABELS = {
    "event_id": N_("Answer id"), "station_id": N_("Station id"), "station": N_("Station"), "device_id": N_("Kiosk"),
    "kind": N_("Kind"), "value": N_("Answer"), "option_id": N_("Option"), "question_id": N_("Question"),
    "answer_to": N_("Follows answer"), "lang": N_("Language"), "ts_utc": N_("Time (UTC)"),
    "local_time": N_("Time (Finland)"), "clock_synced": N_("Clock synchronised"), "burst": N_("Repeated press"),
    "out_of_hours": N_("Out of hours"), "survey_version": N_("Survey version"), "channel": N_("Channel"), "date": N_("Date"),
    "responses": N_("Responses"), "very_unhappy_1": N_("1 very unhappy"), "unhappy_2": N_("2 unhappy"),
    "happy_3": N_("3 happy"), "very_happy_4": N_("4 very happy"), "satisfaction": N_("Satisfaction"),
    "repeated_presses": N_("Repeated presses"), "all_presses": N_("All presses"), "level": N_("Level"),
    "id": N_("Id"), "name": N_("Name"), "part_of": N_("Part of"), "first_day": N_("First day"),
    "last_day": N_("Last day"), "satisfaction_low_95": N_("Satisfaction, 95 % interval low"),
    "satisfaction_high_95": N_("Satisfaction, 95 % interval high"),
}
LEVEL_LABELS = {"county": N_("wellbeing county"), "municipality": N_("municipality"), "area": N_("service area"),
                "station": N_("station")}
SHEET_TITLES = {"daily": N_("Daily figures"), "events": N_("Individual answers"), "totals": N_("Period totals")}
"""Sheet names, whole (Excel allows 31 characters; each of these is shorter in every language)."""

DIALECTS = ("excel-fi", "plain")
"""excel-fi: ``;`` between fields, decimal comma, dates d.m.yyyy (what Finnish Excel opens as numbers
and dates); plain: ``,``, decimal point, ISO dates. Both start with a UTF-8 BOM."""


def default_dialect() -> str:
    """Finnish and Swedish readers get Finnish Excel's dialect; English readers (and scripts) the plain one."""
    return "plain" if i18n.lang() == "en" else "excel-fi"


def header(columns: Sequence[str]) -> list[str]:
    if i18n.lang() == "en":
        return list(columns)
    return [i18n.gettext(COLUMN_LABELS.get(c, c)) for c in columns]


def sheet_title(kind: str) -> str:
    return i18n.gettext(SHEET_TITLES[kind])[:31]


def _cell(value: Any) -> Any:
    return value


def _names(session: Session, station_ids: Sequence[str]) -> dict[str, str]:
    lang = i18n.lang()
    return {s.id: s.name_in(lang) for s in session.scalars(select(Station).where(Station.id.in_(list(station_ids))))}


def event_rows(session: Session, station_ids: Sequence[str], period: Period,
               channel: str | None = None) -> Iterator[tuple]:
    names = _names(session, station_ids)
    e = FeedbackEvent
    q = (
        select(e.event_id, e.station_id, e.device_id, e.kind, e.value, e.option_id, e.question_id, e.answer_to,
               e.lang, e.ts, e.clock_synced, e.burst, e.out_of_hours, e.survey_version, e.channel)
        .where(e.station_id.in_(list(station_ids)), e.ts >= period.start, e.ts < period.end)
        .order_by(e.station_id, e.ts, e.id)
        .execution_options(yield_per=YIELD_PER)
    )
    if channel is not None:
        q = q.where(e.channel == channel)
    for r in session.execute(q):
        ts = r.ts.astimezone(UTC)
        yield (
            str(r.event_id), r.station_id, names.get(r.station_id, r.station_id), r.device_id or "", r.kind,
            r.value if r.value is not None else "",
            r.option_id or "", r.question_id, str(r.answer_to) if r.answer_to else "", r.lang,
            ts.isoformat().replace("+00:00", "Z"), ts.astimezone(LOCAL_TZ).replace(tzinfo=None, microsecond=0),
            r.clock_synced, r.burst, r.out_of_hours, r.survey_version, r.channel,
        )


def daily_table(session: Session, station_ids: Sequence[str], period: Period, minimum: int,
                channel: str | None = None) -> Iterator[tuple]:
    names = _names(session, station_ids)
    for row in daily_rows(session, station_ids, period, minimum, channel):
        c = row["counted"]
        sat = c["satisfaction"]
        yield (
            row["station_id"], names.get(row["station_id"], row["station_id"]), row["date"], _cell(c["total"]),
            *(_cell(c["counts"][v]) for v in "1234"),
            _cell(None if sat is None else round(sat, 4)),
            _cell(row["repeated"]), _cell(row["out_of_hours"]), _cell(row["all_presses"]), row["channel"],
        )


def totals_table(session: Session, station_ids: Sequence[str], period: Period, minimum: int,
                 channel: str | None = None) -> Iterator[tuple]:
    """The period's totals per group (county, municipality) and per station, under the cascaded rule:
    one row each, so a month's report adds up without summing days (where small days were hidden).
    ``channel``: of that channel's answers only (a station's figure hidden where its split by channel
    hides it; the groups cascade over those station figures)."""
    from fleet_server.results import groups as grouping
    from fleet_server.results.figures import overview, stations_visible

    stations = stations_visible(session, station_ids)
    tree = grouping.load_tree(session)
    rows = overview(session, stations, period, minimum, channel)
    hidden_groups: list[str] = []
    if channel is not None:  # a group's channel figure, hidden where the split of its all-channel figure hides it
        from fleet_server.results.figures import channel_totals
        from fleet_server.results.small_counts import split_hides

        split = channel_totals(session, [st.id for st in stations], period.start, period.end)
        for gid in tree.groups:
            inside = [sid for sid in tree.under(gid) if sid in split]
            per_channel: dict[str, int] = {}
            for sid in inside:
                for ch, cols in split[sid].items():
                    per_channel[ch] = per_channel.get(ch, 0) + sum(cols.get(f"c{v}", 0) for v in (1, 2, 3, 4))
            if split_hides(per_channel, channel, minimum):
                hidden_groups.append(gid)
    group_rows = grouping.apply_to_overview(rows, tree, minimum, hidden_groups=hidden_groups)
    lang = i18n.lang()

    def parent_name(group_id: str | None) -> str:
        return tree.groups[group_id].name_in(lang) if group_id in tree.groups else ""

    def figures(dist: dict, interval) -> tuple:
        sat = dist["satisfaction"]
        return (dist["total"], *(dist["counts"][v] for v in "1234"), None if sat is None else round(sat, 4),
                None if interval is None else round(interval[0], 4), None if interval is None else round(interval[1], 4))

    for g in group_rows:
        yield (i18n.gettext(LEVEL_LABELS.get(g.kind, g.kind)), g.group_id, g.name,
               parent_name(tree.groups[g.group_id].parent_id), period.first, period.last, *figures(g.dist, g.interval))
    for r in rows:
        yield (i18n.gettext(LEVEL_LABELS["station"]), r.station_id, r.name, parent_name(tree.station_group.get(r.station_id)),
               period.first, period.last, *figures(r.dist, r.interval))


def _text(value: Any, dialect: str) -> Any:
    """One CSV field: hidden figures in words, dates and decimals the way the dialect's reader expects."""
    if value is None:
        return i18n.gettext(TOO_FEW)
    if isinstance(value, bool):
        return value
    if isinstance(value, datetime):
        if dialect == "excel-fi":
            return f"{value.day}.{value.month}.{value.year} {value:%H:%M:%S}"
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return f"{value.day}.{value.month}.{value.year}" if dialect == "excel-fi" else value.isoformat()
    if isinstance(value, float) and dialect == "excel-fi":
        return repr(value).replace(".", ",")
    return value


def stream_csv(session_factory: Callable[[], Session], header: Sequence[str],
               rows: Callable[[Session], Iterable[tuple]], dialect: str = "plain") -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n", delimiter=";" if dialect == "excel-fi" else ",")
    buffer.write("\ufeff")  # BOM: Excel opens UTF-8 (ä, ö) correctly
    writer.writerow(header)
    with session_factory() as session:
        for row in rows(session):
            writer.writerow([_text(v, dialect) for v in row])
            if buffer.tell() >= CHUNK:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()


def stream_xlsx(session_factory: Callable[[], Session], title: str, header: Sequence[str],
                rows: Callable[[Session], Iterable[tuple]]) -> Iterator[bytes]:
    """A workbook with real dates and numbers (hidden figures as words); ``title`` names the sheet."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title[:31])
    sheet.append(list(header))
    date_format = "yyyy-mm-dd" if i18n.lang() == "en" else "d.m.yyyy"
    too_few = i18n.gettext(TOO_FEW)

    def cell(value: Any) -> Any:
        if value is None:
            return too_few
        if isinstance(value, datetime):
            c = WriteOnlyCell(sheet, value)
            c.number_format = date_format + " hh:mm:ss"
            return c
        if isinstance(value, date):
            c = WriteOnlyCell(sheet, datetime.combine(value, datetime.min.time()))
            c.number_format = date_format
            return c
        return value

    with session_factory() as session:
        for row in rows(session):
            sheet.append([cell(v) for v in row])
    with tempfile.TemporaryFile() as tmp:
        workbook.save(tmp)
        tmp.seek(0)
        while chunk := tmp.read(CHUNK):
            yield chunk
