"""The kiosk's QR code link in the contract: config ``survey_link``, status ``accepts`` and ``survey_link_expires``."""

import json
from datetime import UTC, datetime

import pytest

from palaute_wire import contract as c
from palaute_wire.surveys import default_station_config

LINK = c.SurveyLink(url="https://palaute.example.fi/s/kalvia?t=abc.def", expires=datetime(2027, 2, 1, tzinfo=UTC))


def test_a_config_with_a_survey_link_round_trips_and_one_without_it_has_no_such_field():
    config = default_station_config("kalvia").model_copy(update={"survey_link": LINK})
    topic = c.topic("kalvia", "kalvia-1", "config")
    assert c.decode(topic, c.encode(config))[1] == config
    assert "survey_link" not in json.loads(c.encode(default_station_config("kalvia")))


def test_an_old_kiosk_refuses_a_config_with_the_link_so_the_server_must_ask_first():
    """What an old kiosk does with a field it does not know (why the server waits for ``accepts``)."""
    payload = json.loads(c.encode(default_station_config("kalvia")))
    payload["survey_link"] = {"url": LINK.url, "expires": "2027-02-01T00:00:00Z"}
    assert c.decode(c.topic("kalvia", "kalvia-1", "config"), json.dumps(payload).encode())[1].survey_link == LINK
    del payload["survey_link"]
    payload["no_such_field"] = 1
    with pytest.raises(c.ContractError):
        c.decode(c.topic("kalvia", "kalvia-1", "config"), json.dumps(payload).encode())


@pytest.mark.parametrize("url", ["javascript:alert(1)", "ftp://x.example/s", "https://a b.example/s", "http://"])
def test_a_survey_link_is_an_http_url(url):
    with pytest.raises(ValueError):
        c.SurveyLink(url=url, expires=LINK.expires)


def test_a_status_lists_what_it_accepts_an_old_one_nothing_and_unknown_names_pass():
    topic = c.topic("kalvia", "kalvia-1", "status")
    old = {"v": 1, "station_id": "kalvia", "device_id": "kalvia-1", "online": True, "sent_at": "2026-12-01T08:00:00Z"}
    status = c.decode(topic, json.dumps(old).encode())[1]
    assert isinstance(status, c.StatusHeartbeat)
    assert (status.accepts, status.survey_link_expires) == (None, None)
    new = {**old, "accepts": ["survey_link", "from_a_newer_kiosk"], "survey_link_expires": "2027-02-01T00:00:00Z"}
    status = c.decode(topic, json.dumps(new).encode())[1]
    assert isinstance(status, c.StatusHeartbeat)
    assert status.accepts == ("survey_link", "from_a_newer_kiosk")
    assert status.survey_link_expires == LINK.expires
    with pytest.raises(c.ContractError):
        c.decode(topic, json.dumps({**old, "accepts": ["Not A Name"]}).encode())
