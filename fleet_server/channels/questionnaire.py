"""The national customer-feedback questionnaire (THL) on a station's web page, item by item.

THL's national customer feedback for social and health services (kansallinen asiakaspalaute)
is built from a recommendation question (suositteluindeksi, 0-10) and basic statements
(perusväittämät) answered on an agreement scale. A station that switches it on
(fleet_server.channels.web_settings) asks it in full on its web page instead of the smiley;
its kiosks keep the one-touch smiley and follow-up.

Wording: THL publishes the items and their Swedish and English versions ("Kansallinen
asiakaspalaute: kieliversiot"); that document could not be fetched while this was written,
so the texts below follow THL's structure and the topics the wellbeing counties report from
it (access, how the person was met, safety, information, usefulness) in plain municipal
language. Compare them with THL's current version before comparing results with the national
collection, and raise ``VERSION`` whenever a word changes: every response stores the
questionnaire id and version it answered, and results are reported per version.

Stable ids: ``thl.recommend`` (0-10) and ``thl.access``, ``thl.treatment``, ``thl.safety``,
``thl.information``, ``thl.usefulness`` (1 strongly disagree .. 5 strongly agree; "I cannot
say" is stored as NULL). An item left empty is not stored.

The texts are the questionnaire's data, kept here with their version rather than in the
dashboard's catalogue: a translator's change must not silently change what was asked.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fleet_server.core.errors import BadQuestionnaire
from fleet_server.models import QuestionnaireAnswer, QuestionnaireResponse

QUESTIONNAIRE_ID = "thl"
VERSION = 1
CANNOT_SAY = "cannot-say"
"""The form value of "I cannot say / does not apply to me" (stored as NULL)."""

Texts = Mapping[str, str]


@dataclass(frozen=True)
class Scale:
    id: str
    points: tuple[int, ...]
    labels: Mapping[str, tuple[str, ...]]
    """Per language, one label per point (the 0-10 scale labels only its ends, the rest are '')."""
    cannot_say: bool


@dataclass(frozen=True)
class Item:
    id: str
    topic: str
    scale: Scale
    text: Texts

    def text_in(self, lang: str) -> str:
        return self.text.get(lang) or self.text["fi"]


RECOMMEND_SCALE = Scale(
    "recommend", tuple(range(11)),
    {"fi": ("En lainkaan todennäköisesti", *([""] * 9), "Erittäin todennäköisesti"),
     "sv": ("Inte alls sannolikt", *([""] * 9), "Mycket sannolikt"),
     "en": ("Not at all likely", *([""] * 9), "Extremely likely")},
    cannot_say=False)
AGREE_SCALE = Scale(
    "agree", (1, 2, 3, 4, 5),
    {"fi": ("Täysin eri mieltä", "Jokseenkin eri mieltä", "Ei samaa eikä eri mieltä", "Jokseenkin samaa mieltä",
            "Täysin samaa mieltä"),
     "sv": ("Helt av annan åsikt", "Delvis av annan åsikt", "Varken av samma eller annan åsikt",
            "Delvis av samma åsikt", "Helt av samma åsikt"),
     "en": ("Strongly disagree", "Somewhat disagree", "Neither agree nor disagree", "Somewhat agree",
            "Strongly agree")},
    cannot_say=True)
CANNOT_SAY_TEXT = {"fi": "En osaa sanoa / ei koske minua", "sv": "Kan inte säga / gäller inte mig",
                   "en": "Cannot say / does not apply to me"}
STATEMENTS_INTRO = {"fi": "Kuinka samaa mieltä olet seuraavista väittämistä?",
                    "sv": "Hur väl håller du med om följande påståenden?",
                    "en": "How much do you agree with the following statements?"}
TITLE = {"fi": "Asiakaspalaute", "sv": "Kundrespons", "en": "Customer feedback"}

ITEMS: tuple[Item, ...] = (
    Item("thl.recommend", "recommendation", RECOMMEND_SCALE, {
        "fi": "Kuinka todennäköisesti suosittelisit saamaasi palvelua läheisellesi, jos hän tarvitsisi "
              "samanlaista palvelua?",
        "sv": "Hur sannolikt är det att du skulle rekommendera tjänsten du fick till en närstående, om hen "
              "behövde en liknande tjänst?",
        "en": "How likely would you be to recommend the service you received to someone close to you, if they "
              "needed a similar service?"}),
    Item("thl.access", "access", AGREE_SCALE, {
        "fi": "Sain palvelua silloin, kun tarvitsin.",
        "sv": "Jag fick service när jag behövde den.",
        "en": "I got the service when I needed it."}),
    Item("thl.treatment", "treatment", AGREE_SCALE, {
        "fi": "Minua kohdeltiin arvostavasti.",
        "sv": "Jag blev bemött med respekt.",
        "en": "I was treated with respect."}),
    Item("thl.safety", "safety", AGREE_SCALE, {
        "fi": "Koin oloni turvalliseksi hoidon tai palvelun aikana.",
        "sv": "Jag kände mig trygg under vården eller servicen.",
        "en": "I felt safe during the care or service."}),
    Item("thl.information", "information", AGREE_SCALE, {
        "fi": "Sain tarvitsemaani tietoa ymmärrettävästi.",
        "sv": "Jag fick den information jag behövde på ett begripligt sätt.",
        "en": "I got the information I needed in a way I could understand."}),
    Item("thl.usefulness", "usefulness", AGREE_SCALE, {
        "fi": "Saamani hoito tai palvelu oli minulle hyödyllistä.",
        "sv": "Vården eller servicen jag fick var till nytta för mig.",
        "en": "The care or service I received was useful to me."}),
)
ITEM_IDS = tuple(item.id for item in ITEMS)
BY_ID = {item.id: item for item in ITEMS}


def parse_answers(form: Mapping[str, str]) -> dict[str, int | None]:
    """The items a form answered: {question id: point, or None for "I cannot say"}.

    Fields that are not items are ignored; an item's empty field means "not answered"; a value
    outside the item's scale raises BadQuestionnaire (the page was not ours)."""
    answers: dict[str, int | None] = {}
    for item in ITEMS:
        raw = (form.get(item.id) or "").strip()
        if not raw:
            continue
        if raw == CANNOT_SAY and item.scale.cannot_say:
            answers[item.id] = None
            continue
        if not raw.isdigit() or int(raw) not in item.scale.points:
            raise BadQuestionnaire(f"{item.id}: {raw[:20]!r} is not a point of its scale "
                                   f"({item.scale.points[0]}-{item.scale.points[-1]})")
        answers[item.id] = int(raw)
    return answers


def store_response(session: Session, *, station_id: str, submission_id: uuid.UUID, lang: str,
                   answers: Mapping[str, int | None], now: datetime, channel: str = "web") -> str:
    """Store one form's answers: "stored", or "duplicate" when this submission id already has a
    response (the first one holds, whatever the second says). The caller commits."""
    if session.scalar(select(QuestionnaireResponse.id).where(QuestionnaireResponse.submission_id == submission_id)):
        return "duplicate"
    response = QuestionnaireResponse(submission_id=submission_id, station_id=station_id,
                                     questionnaire=QUESTIONNAIRE_ID, version=VERSION, channel=channel, lang=lang,
                                     received_at=now)
    try:
        with session.begin_nested():
            session.add(response)
            session.flush()
            session.add_all(QuestionnaireAnswer(response_id=response.id, question_id=qid, value=value)
                            for qid, value in answers.items())
            session.flush()
    except IntegrityError:  # the same form sent twice at the same moment: the other one stored it
        return "duplicate"
    return "stored"
