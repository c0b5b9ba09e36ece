"""The national questionnaire's results item by item, under the small-count rule.

For each item of one questionnaire version, over the responses of a period: how many chose
each point of its scale, how many said "I cannot say", and

- the recommendation question (0-10): the mean and the recommendation index as THL and NPS
  report it: the share of 9-10 minus the share of 0-6, in points from -100 to 100;
- the statements (1-5): the mean and the share who agree (4 or 5).

"I cannot say" is counted but left out of the means and shares, as THL's reports do.

Small-count rule (fleet_server.results.small_counts): an item's distribution is based on its
answers (the points and "I cannot say" together), so it is shown or hidden whole; its mean,
index and share are based on the answers that chose a point, hidden below ``minimum`` too.
The number of responses (forms) is hidden below ``minimum`` as every count is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from fleet_server.channels.questionnaire import ITEMS, QUESTIONNAIRE_ID, VERSION, Item
from fleet_server.models import QuestionnaireAnswer, QuestionnaireResponse
from fleet_server.results.small_counts import share

PROMOTERS = (9, 10)
DETRACTORS = tuple(range(7))
AGREE = (4, 5)


@dataclass(frozen=True)
class ItemResult:
    item: Item
    counts: dict[int, int | None]
    cannot_say: int | None
    answers: int | None
    """Everyone who answered the item (points and "I cannot say"); None: too few to show."""
    rated: int | None
    """Those who chose a point: the base of the mean, index and share."""
    mean: float | None
    index: float | None
    """Recommendation only: % of 9-10 minus % of 0-6 (-100..100)."""
    agree: float | None
    """Statements only: share of 4-5."""
    shares: dict[int, float | None]

    @property
    def hidden(self) -> bool:
        return self.answers is None


@dataclass(frozen=True)
class QuestionnaireResults:
    questionnaire: str
    version: int
    responses: int | None
    items: list[ItemResult]
    other_versions: int
    """Responses in the period to other versions of the wording (not in these figures)."""


def _raw(session: Session, station_ids: Sequence[str], start: datetime, end: datetime,
         version: int) -> dict[str, dict[int | None, int]]:
    rows = session.execute(
        select(QuestionnaireAnswer.question_id, QuestionnaireAnswer.value, func.count())
        .join(QuestionnaireResponse, QuestionnaireResponse.id == QuestionnaireAnswer.response_id)
        .where(QuestionnaireResponse.station_id.in_(list(station_ids)), QuestionnaireResponse.received_at >= start,
               QuestionnaireResponse.received_at < end, QuestionnaireResponse.questionnaire == QUESTIONNAIRE_ID,
               QuestionnaireResponse.version == version)
        .group_by(QuestionnaireAnswer.question_id, QuestionnaireAnswer.value))
    out: dict[str, dict[int | None, int]] = {}
    for qid, value, n in rows:
        out.setdefault(qid, {})[value] = int(n)
    return out


def _responses(session: Session, station_ids: Sequence[str], start: datetime, end: datetime) -> dict[int, int]:
    rows = session.execute(
        select(QuestionnaireResponse.version, func.count())
        .where(QuestionnaireResponse.station_id.in_(list(station_ids)), QuestionnaireResponse.received_at >= start,
               QuestionnaireResponse.received_at < end, QuestionnaireResponse.questionnaire == QUESTIONNAIRE_ID)
        .group_by(QuestionnaireResponse.version))
    return {int(v): int(n) for v, n in rows}


def item_result(item: Item, raw: dict[int | None, int], minimum: int) -> ItemResult:
    counts = {p: int(raw.get(p, 0)) for p in item.scale.points}
    cannot = int(raw.get(None, 0))
    rated = sum(counts.values())
    answers = rated + cannot
    if answers < minimum or answers == 0:
        return ItemResult(item, {p: None for p in counts}, None, None, None, None, None, None,
                          {p: None for p in counts})
    shown_rated = rated if rated >= minimum else None
    mean = sum(p * n for p, n in counts.items()) / rated if shown_rated else None
    index = agree = None
    if shown_rated and item.scale.id == "recommend":
        index = 100 * (sum(counts[p] for p in PROMOTERS) - sum(counts[p] for p in DETRACTORS)) / rated
    if shown_rated and item.scale.id == "agree":
        agree = share(sum(counts[p] for p in AGREE), rated, minimum)
    return ItemResult(item, dict(counts), cannot, answers, shown_rated, mean, index, agree,
                      {p: share(n, rated, minimum) for p, n in counts.items()})


def results(session: Session, station_ids: Sequence[str], start: datetime, end: datetime, minimum: int,
            version: int = VERSION) -> QuestionnaireResults:
    raw = _raw(session, station_ids, start, end, version)
    per_version = _responses(session, station_ids, start, end)
    n = per_version.get(version, 0)
    return QuestionnaireResults(
        QUESTIONNAIRE_ID, version, n if n >= minimum else None,
        [item_result(item, raw.get(item.id, {}), minimum) for item in ITEMS],
        sum(v for k, v in per_version.items() if k != version))


EXPORT_COLUMNS = ("station_id", "station", "first_day", "last_day", "questionnaire", "version", "question_id",
                  "topic", "answers", "cannot_say", *(f"point_{p}" for p in range(11)), "mean", "recommendation_index",
                  "agree_share")


def export_rows(session: Session, stations: Sequence[tuple[str, str]], first: date, last: date, start: datetime,
                end: datetime, minimum: int) -> Iterator[tuple]:
    """One row per station and item: the figures above, hidden ones as None ("too few responses")."""
    for station_id, name in stations:
        res = results(session, [station_id], start, end, minimum)
        for r in res.items:
            points = [r.counts.get(p) if p in r.counts else "" for p in range(11)]
            yield (station_id, name, first, last, res.questionnaire, res.version, r.item.id, r.item.topic, r.answers,
                   r.cannot_say, *points, None if r.mean is None else round(r.mean, 2),
                   "" if r.item.scale.id != "recommend" else (None if r.index is None else round(r.index, 1)),
                   "" if r.item.scale.id != "agree" else (None if r.agree is None else round(r.agree, 4)))
