"""The default visit survey, used by a kiosk until the server sends a station config.

Why it lives in the shared package: the kiosk shows it out of the box and the
fleet server offers it as the starting point of a station's config, so both must
mean the same question ids and option ids (the dashboard groups answers by them).

Texts are plain language (selkokieli style): short sentences, common words.
The default carries ``config_version`` 1 (the lowest the contract accepts) and
``survey_version`` 0, so events answered with it are recognisable; any config
the server sends replaces it.
"""

from __future__ import annotations

from palaute_wire.contract import FollowupOption, FollowupQuestion, Lang, StationConfig, Survey

DEFAULT_CONFIG_VERSION = 1
DEFAULT_SURVEY_VERSION = 0
VISIT_QUESTION_ID = "visit"
WENT_WRONG_ID = "what-went-wrong"
WENT_WELL_ID = "what-went-well"

VISIT_QUESTION: dict[Lang, str] = {
    "fi": "Millainen käyntisi oli tänään?",
    "sv": "Hur var ditt besök i dag?",
    "en": "How was your visit today?",
}

_WENT_WRONG: dict[Lang, str] = {
    "fi": "Mikä meni huonosti?",
    "sv": "Vad gick dåligt?",
    "en": "What went wrong?",
}

_WRONG_OPTIONS: tuple[tuple[str, dict[Lang, str]], ...] = (
    ("waiting-time", {"fi": "Odotin liian kauan", "sv": "Jag väntade för länge", "en": "I waited too long"}),
    ("staff-attitude", {"fi": "Henkilökunnan käytös", "sv": "Personalens bemötande", "en": "How staff treated me"}),
    ("information", {"fi": "En saanut tarpeeksi tietoa", "sv": "Jag fick inte nog information",
                     "en": "I did not get enough information"}),
    ("premises", {"fi": "Tilat", "sv": "Lokalerna", "en": "The rooms and building"}),
    ("something-else", {"fi": "Jokin muu", "sv": "Något annat", "en": "Something else"}),
)

_WENT_WELL: dict[Lang, str] = {
    "fi": "Mikä meni hyvin?",
    "sv": "Vad gick bra?",
    "en": "What went well?",
}

_WELL_OPTIONS: tuple[tuple[str, dict[Lang, str]], ...] = (
    ("waiting-time", {"fi": "Pääsin nopeasti", "sv": "Jag kom in snabbt", "en": "I did not wait long"}),
    ("staff-attitude", {"fi": "Ystävällinen henkilökunta", "sv": "Vänlig personal", "en": "Kind staff"}),
    ("information", {"fi": "Sain hyvin tietoa", "sv": "Jag fick bra information", "en": "I got good information"}),
    ("premises", {"fi": "Tilat", "sv": "Lokalerna", "en": "The rooms and building"}),
    ("something-else", {"fi": "Jokin muu", "sv": "Något annat", "en": "Something else"}),
)


def default_survey() -> Survey:
    return Survey(
        question_id=VISIT_QUESTION_ID,
        question=VISIT_QUESTION,
        followups=(
            FollowupQuestion(
                id=WENT_WRONG_ID,
                for_values=(1, 2),
                text=_WENT_WRONG,
                options=tuple(FollowupOption(id=i, text=t) for i, t in _WRONG_OPTIONS),
            ),
            FollowupQuestion(
                id=WENT_WELL_ID,
                for_values=(3, 4),
                text=_WENT_WELL,
                options=tuple(FollowupOption(id=i, text=t) for i, t in _WELL_OPTIONS),
            ),
        ),
    )


def default_station_config(station_id: str, station_name: str = "") -> StationConfig:
    """The config a kiosk runs with before it has ever heard from the server."""
    return StationConfig(
        config_version=DEFAULT_CONFIG_VERSION,
        station_id=station_id,
        station_name=station_name,
        survey=default_survey(),
        survey_version=DEFAULT_SURVEY_VERSION,
    )


def followup_for(config: StationConfig, smiley: int) -> FollowupQuestion | None:
    """The follow-up question asked after this smiley, if the survey has one."""
    for question in config.survey.followups:
        if smiley in question.for_values:
            return question
    return None
