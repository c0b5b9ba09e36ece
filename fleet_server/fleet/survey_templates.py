"""Survey templates a station's config starts from, in Finnish, Swedish and English.

- ``visit``: the default four-smiley visit question with "what went wrong / what
  went well" follow-ups (palaute_wire.surveys, the same one kiosks show out of the box).
- ``national``: aligned with the themes of the Finnish national customer-feedback
  statements for social and health services (access to care, how you were met,
  safety, information, usefulness). The national collection asks each statement
  on its own scale; a one-touch kiosk cannot, so this template asks the overall
  smiley question and then *which theme* mattered most, with the five themes as
  the follow-up options. Results are then reported per theme next to the national
  figures (comparable by theme, not item for item). Option ids are stable, so the
  dashboard groups answers by them across stations and versions.
"""

from __future__ import annotations

from palaute_wire.contract import FollowupOption, FollowupQuestion, Lang, Survey
from palaute_wire.surveys import default_survey

NATIONAL_QUESTION_ID = "overall"

_NATIONAL_QUESTION: dict[Lang, str] = {
    "fi": "Kuinka tyytyväinen olit palveluun tänään?",
    "sv": "Hur nöjd var du med servicen i dag?",
    "en": "How satisfied were you with the service today?",
}

# (option id, texts): the five national themes, worded as short kiosk buttons.
_THEMES_IMPROVE: tuple[tuple[str, dict[Lang, str]], ...] = (
    ("access", {"fi": "Hoitoon pääsy", "sv": "Att få vård", "en": "Getting care"}),
    ("met", {"fi": "Miten minut kohdattiin", "sv": "Hur jag blev bemött", "en": "How I was treated"}),
    ("safety", {"fi": "Turvallisuus", "sv": "Trygghet", "en": "Feeling safe"}),
    ("information", {"fi": "Tiedon saaminen", "sv": "Att få information", "en": "Getting information"}),
    ("usefulness", {"fi": "Palvelun hyöty minulle", "sv": "Nyttan för mig", "en": "How useful it was"}),
)

_IMPROVE_QUESTION: dict[Lang, str] = {
    "fi": "Missä meidän pitäisi parantaa eniten?",
    "sv": "Var borde vi bli bättre?",
    "en": "What should we improve most?",
}
_BEST_QUESTION: dict[Lang, str] = {
    "fi": "Mikä onnistui parhaiten?",
    "sv": "Vad var bäst?",
    "en": "What went best?",
}


def national_survey() -> Survey:
    options = tuple(FollowupOption(id=i, text=t) for i, t in _THEMES_IMPROVE)
    return Survey(
        question_id=NATIONAL_QUESTION_ID,
        question=_NATIONAL_QUESTION,
        followups=(
            FollowupQuestion(id="improve-theme", for_values=(1, 2), text=_IMPROVE_QUESTION, options=options),
            FollowupQuestion(id="best-theme", for_values=(3, 4), text=_BEST_QUESTION, options=options),
        ),
    )


TEMPLATES = {
    "visit": ("Visit (default): four smileys, what went wrong / well", default_survey),
    "national": ("National themes: access, how you were met, safety, information, usefulness", national_survey),
}


def template(name: str) -> Survey:
    try:
        return TEMPLATES[name][1]()
    except KeyError:
        raise ValueError(f"no survey template {name!r} (known: {', '.join(TEMPLATES)})") from None
