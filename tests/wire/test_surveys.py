"""The default survey is valid, trilingual, and batches spliced from stored JSON decode."""

import json

import pytest

from kiosk.feedback import Recorder
from kiosk.outbox import Outbox
from palaute_wire import contract as c
from palaute_wire.surveys import default_station_config, followup_for


def test_default_station_config_round_trips_and_speaks_three_languages():
    config = default_station_config("kalvia", "Kälviä")
    assert c.decode(c.topic("kalvia", "k-1", "config"), c.encode(config))[1] == config
    assert config.survey.question["en"] == "How was your visit today?"
    texts = [config.survey.question] + [q.text for q in config.survey.followups]
    texts += [o.text for q in config.survey.followups for o in q.options]
    for text in texts:
        assert set(text) == {"fi", "sv", "en"} and all(text.values())


def test_unhappy_and_happy_answers_get_their_own_followup():
    config = default_station_config("kalvia")
    wrong, well = followup_for(config, 1), followup_for(config, 4)
    assert followup_for(config, 2) is wrong and followup_for(config, 3) is well
    assert wrong.text["en"] == "What went wrong?" and well.text["en"] == "What went well?"
    assert [o.id for o in wrong.options] == [
        "waiting-time", "staff-attitude", "information", "premises", "something-else"
    ]


def test_batch_payload_from_stored_event_json_is_a_valid_batch(tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        rec = Recorder(box, station_id="kalvia", device_id="kalvia-1")
        first = rec.record("smiley", 2, question_id="visit", lang="sv")
        rec.record("followup", "waiting-time", question_id="what-went-wrong", lang="sv", answer_to=first.event_id)
        payload = c.batch_payload("kalvia", "kalvia-1", [p.payload for p in box.pending(10)])
    _, batch = c.decode("palaute/v1/kalvia/kalvia-1/events", payload)
    assert batch.events[0] == first and batch.events[1].answer_to == first.event_id
    assert json.loads(payload)["sent_at"].endswith("Z")


def test_batch_payload_enforces_contract_limits():
    with pytest.raises(ValueError, match="1..500 events"):
        c.batch_payload("kalvia", "kalvia-1", [])
    with pytest.raises(ValueError, match="limit"):
        c.batch_payload("kalvia", "kalvia-1", [b'"' + b"x" * c.MAX_PAYLOAD_BYTES + b'"'])
    with pytest.raises(ValueError, match="slug"):
        c.batch_payload("Kalvia", "kalvia-1", [b"{}"])


def test_status_can_say_why_a_config_was_rejected():
    status = c.StatusHeartbeat(station_id="kalvia", device_id="kalvia-1", online=True, sent_at=c.now_utc(),
                               config_error="schema: survey: Field required")
    assert c.decode(c.topic("kalvia", "kalvia-1", "status"), c.encode(status))[1] == status
