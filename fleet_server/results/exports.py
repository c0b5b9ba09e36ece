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
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet_server.models import FeedbackEvent
from fleet_server.results.figures import LOCAL_TZ, Period, daily_rows
from fleet_server.results.small_counts import TOO_FEW

CHUNK = 64 * 1024
YIELD_PER = 5_000

EVENT_COLUMNS = (
    "event_id", "station_id", "device_id", "kind", "value", "option_id", "question_id", "answer_to",
    "lang", "ts_utc", "local_time", "clock_synced", "burst", "out_of_hours", "survey_version",
)
DAILY_COLUMNS = (
    "station_id", "date", "responses", "very_unhappy_1", "unhappy_2", "happy_3", "very_happy_4",
    "satisfaction", "repeated_presses", "out_of_hours", "all_presses",
)


def _cell(value: Any) -> Any:
    return TOO_FEW if value is None else value


def event_rows(session: Session, station_ids: Sequence[str], period: Period) -> Iterator[tuple]:
    e = FeedbackEvent
    q = (
        select(e.event_id, e.station_id, e.device_id, e.kind, e.value, e.option_id, e.question_id, e.answer_to,
               e.lang, e.ts, e.clock_synced, e.burst, e.out_of_hours, e.survey_version)
        .where(e.station_id.in_(list(station_ids)), e.ts >= period.start, e.ts < period.end)
        .order_by(e.station_id, e.ts, e.id)
        .execution_options(yield_per=YIELD_PER)
    )
    for r in session.execute(q):
        ts = r.ts.astimezone(UTC)
        yield (
            str(r.event_id), r.station_id, r.device_id, r.kind, r.value if r.value is not None else "",
            r.option_id or "", r.question_id, str(r.answer_to) if r.answer_to else "", r.lang,
            ts.isoformat().replace("+00:00", "Z"), ts.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M:%S"),
            r.clock_synced, r.burst, r.out_of_hours, r.survey_version,
        )


def daily_table(session: Session, station_ids: Sequence[str], period: Period, minimum: int) -> Iterator[tuple]:
    for row in daily_rows(session, station_ids, period, minimum):
        c = row["counted"]
        sat = c["satisfaction"]
        yield (
            row["station_id"], row["date"].isoformat(), _cell(c["total"]),
            *(_cell(c["counts"][v]) for v in "1234"),
            _cell(None if sat is None else round(sat, 4)),
            _cell(row["repeated"]), _cell(row["out_of_hours"]), _cell(row["all_presses"]),
        )


def stream_csv(session_factory: Callable[[], Session], header: Sequence[str],
               rows: Callable[[Session], Iterable[tuple]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")  # BOM: Excel opens UTF-8 (ä, ö) correctly
    writer.writerow(header)
    with session_factory() as session:
        for row in rows(session):
            writer.writerow(row)
            if buffer.tell() >= CHUNK:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()


def stream_xlsx(session_factory: Callable[[], Session], title: str, header: Sequence[str],
                rows: Callable[[Session], Iterable[tuple]]) -> Iterator[bytes]:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title[:31])
    sheet.append(list(header))
    with session_factory() as session:
        for row in rows(session):
            sheet.append(list(row))
    with tempfile.TemporaryFile() as tmp:
        workbook.save(tmp)
        tmp.seek(0)
        while chunk := tmp.read(CHUNK):
            yield chunk
