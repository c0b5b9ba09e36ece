"""Answers that arrive as a CSV file (a phone survey's export): the import API's rules, row by row.

The file: UTF-8 (a BOM is fine), comma- or semicolon-separated (Finnish Excel writes ``;``),
a header row with the import API's field names -- ``answer_id, station_id, channel, kind, value,
question_id, lang, ts`` and optionally ``answer_to, survey_version``; empty cells are left out
(``question_id`` defaults to ``visit``, ``kind`` to ``smiley``). A smiley's ``value`` is 1..4, a
follow-up's the option id. Rows are stored in chunks of 500, each chunk one transaction; a bad row
is reported by its line number and reason (and dead-lettered) and never stops the good ones.
Importing the same file again stores nothing new (``answer_id`` makes it harmless).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from fleet_server.channels.answers import ANSWER_FIELDS, IMPORT_CHANNELS, AnswerResult, store_answers
from fleet_server.core.errors import BadCsv

CSV_TOPIC = "import/csv"
CHUNK_ROWS = 500


@dataclass
class RowError:
    line: int
    answer_id: str | None
    reason: str
    detail: str


@dataclass
class ImportReport:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    errors: list[RowError] = field(default_factory=list)


def _rows(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    sample = text[:4096]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = reader.fieldnames or []
    unknown = [h for h in header if h not in ANSWER_FIELDS]
    if unknown or "answer_id" not in header:
        raise BadCsv(f"the header row must name the answer fields ({', '.join(ANSWER_FIELDS)}); "
                     f"{'unknown: ' + ', '.join(unknown) if unknown else 'answer_id is missing'}")
    for row in reader:
        data: dict[str, Any] = {k: v.strip() for k, v in row.items() if k is not None and v not in (None, "")}
        if None in row:
            data["_extra"] = row[None]  # more cells than headers: refused by the contract as an unknown field
        value = data.get("value")
        if isinstance(value, str) and value.isdigit() and data.get("kind", "smiley") == "smiley":
            data["value"] = int(value)
        if "survey_version" in data and str(data["survey_version"]).isdigit():
            data["survey_version"] = int(data["survey_version"])
        yield reader.line_num, data


def import_csv(session_factory: sessionmaker[Session], path: Path,
               progress: Callable[[int], None] = lambda n: None) -> ImportReport:
    """Store the answers of ``path``; ``progress(n)`` after each chunk of n rows."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadCsv(f"{path}: not UTF-8 ({exc}); save it as CSV UTF-8") from None
    report = ImportReport()
    chunk: list[tuple[int, dict[str, Any]]] = []

    def flush() -> None:
        with session_factory() as session:
            results = store_answers(session, [d for _, d in chunk], channels=IMPORT_CHANNELS, topic=CSV_TOPIC)
            session.commit()
        for (line, _), result in zip(chunk, results, strict=True):
            _count(report, line, result)
        progress(len(chunk))
        chunk.clear()

    for line, data in _rows(text):
        report.rows += 1
        chunk.append((line, data))
        if len(chunk) >= CHUNK_ROWS:
            flush()
    if chunk:
        flush()
    return report


def _count(report: ImportReport, line: int, result: AnswerResult) -> None:
    if result.outcome == "stored":
        report.stored += 1
    elif result.outcome == "duplicate":
        report.duplicates += 1
    else:
        report.errors.append(RowError(line, result.answer_id, result.reason or "schema",
                                      (result.detail or "").replace("_extra", "(a cell without a header)")))


def count_rows(path: Path) -> int:
    """Data rows in the file (for the progress bar)."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)
