"""Station configs: layered, versioned, validated by the contract, published retained; commands."""

from __future__ import annotations

import pytest

from fleet_server.core.db import make_engine, make_session_factory, migrate
from fleet_server.core.settings import load_settings
from fleet_server.fleet.publisher import Publisher
from fleet_server.fleet.remote_config import (
    ConfigInvalid,
    build_station_config,
    current_versions,
    publish_station,
    reconcile_acks,
    save_settings,
    send_command,
)
from fleet_server.fleet.survey_templates import TEMPLATES, national_survey, template
from fleet_server.models import Device, DeviceCommand, Station
from palaute_wire.contract import LANGUAGES, StationConfig, decode, topic
from tests.support.mqtt_probe import Probe


@pytest.fixture
def sessions(sessions):
    factory = sessions
    with factory() as s, s.begin():
        s.add_all([Station(id="kalvia", name="Kälviä"), Station(id="lohtaja", name="Lohtaja")])
        s.flush()
        s.add_all([Device(id="kalvia-1", station_id="kalvia", state="active"),
                   Device(id="kalvia-2", station_id="kalvia", state="active"),
                   Device(id="kalvia-old", station_id="kalvia", state="retired")])
    return factory


def test_templates_are_valid_in_all_three_languages():
    for name in TEMPLATES:
        survey = template(name)
        assert set(survey.question) == set(LANGUAGES)
        for followup in survey.followups:
            assert set(followup.text) == set(LANGUAGES)
            assert all(set(o.text) == set(LANGUAGES) for o in followup.options)
    themes = [o.id for o in national_survey().followups[0].options]
    assert themes == ["access", "met", "safety", "information", "usefulness"]


def test_layers_versions_and_survey_versions(sessions):
    with sessions() as s, s.begin():
        assert build_station_config(s, "kalvia").config_version == 1  # built-in = a fresh kiosk's
        fleet = save_settings(s, None, {"idle_timeout_s": 45, "default_lang": "sv"}, by="it-anna")
        own = save_settings(s, "kalvia", {"survey": national_survey().model_dump(mode="json"),
                                          "default_lang": "fi"})
        kalvia, lohtaja = build_station_config(s, "kalvia"), build_station_config(s, "lohtaja")
    assert (kalvia.default_lang, kalvia.idle_timeout_s, kalvia.survey.question_id) == ("fi", 45, "overall")
    assert (lohtaja.default_lang, lohtaja.survey.question_id) == ("sv", "visit")
    assert kalvia.config_version == own.id + 1 and lohtaja.config_version == fleet.id + 1
    assert kalvia.survey_version == own.id and lohtaja.survey_version == 0
    with sessions() as s, s.begin():
        save_settings(s, None, {"idle_timeout_s": 30})  # a fleet change moves every station on
        after = current_versions(s)
        assert after["kalvia"] > kalvia.config_version and after["lohtaja"] > lohtaja.config_version
        assert build_station_config(s, "kalvia").config_version == after["kalvia"]
        # Removing an override falls back to the layer below.
        save_settings(s, "kalvia", {"default_lang": None})
        assert build_station_config(s, "kalvia").default_lang == "sv"


@pytest.mark.parametrize(
    "changes, problem",
    [
        ({"opening_hours": {"days": {"mon": ["16:00", "08:00"]}}}, "opens 16:00 but closes 08:00"),
        ({"default_lang": "de"}, "default_lang"),
        ({"idle_timeout_s": 0}, "idle_timeout_s"),
        ({"survey": {"question": {"fi": "?"}, "followups": [{"id": "x", "for_values": [1], "text": {},
                                                              "options": []}]}}, "options"),
        ({"colour": "red"}, "not a station setting"),
        ({"notes": [{"id": "n1", "text": {"xx": "?"}}]}, "notes"),
    ],
)
def test_invalid_configs_are_refused_with_the_reason_and_not_saved(sessions, changes, problem):
    with sessions() as s, s.begin():
        before = build_station_config(s, "kalvia").config_version
        with pytest.raises(ConfigInvalid, match=problem):
            save_settings(s, "kalvia", changes)
        with pytest.raises(ConfigInvalid, match=problem):
            save_settings(s, None, changes)
        assert build_station_config(s, "kalvia").config_version == before


@pytest.mark.broker
def test_config_is_published_retained_to_live_devices_and_commands_are_tracked(sessions, broker, tmp_path):
    settings = load_settings(environ={}, mqtt_url=broker.url, database_url="sqlite://")
    with sessions() as s, s.begin():
        save_settings(s, "kalvia", {"survey": national_survey().model_dump(mode="json")})
    with Publisher(settings) as publisher, sessions() as s, s.begin():
        published = publish_station(s, publisher, "kalvia")
        command = send_command(s, publisher, "kalvia-1", "identify", by="it-anna")
    assert published.devices == ("kalvia-1", "kalvia-2")
    # A kiosk connecting later still gets its config: it is retained.
    with Probe(broker.port) as kiosk:
        assert kiosk.connect()
        kiosk.subscribe(topic("kalvia", "kalvia-1", "config"))
        message = kiosk.expect(topic("kalvia", "kalvia-1", "config"))
        _, config = decode(message.topic, message.payload)
        assert isinstance(config, StationConfig)
        assert config.config_version == published.config_version and config.survey.question_id == "overall"
    # The kiosk acknowledges in its status; the server copies the ack onto the command.
    with sessions() as s, s.begin():
        s.get(Device, "kalvia-1").last_status = {
            "last_command": {"cmd_id": command.cmd_id, "name": "identify", "ok": True, "detail": "blinking",
                             "at": "2026-11-27T10:00:00Z"}}
    with sessions() as s, s.begin():
        assert reconcile_acks(s) == 1
    with sessions() as s:
        row = s.get(DeviceCommand, command.cmd_id)
        assert (row.ok, row.detail, row.issued_by) == (True, "blinking", "it-anna")


@pytest.mark.broker
def test_an_online_kiosk_on_an_old_config_is_sent_the_current_one_once(sessions, broker):
    from fleet_server.fleet.remote_config import repair_drift

    settings = load_settings(environ={}, mqtt_url=broker.url, database_url="sqlite://")
    with sessions() as s, s.begin():
        save_settings(s, "kalvia", {"default_lang": "en"})
        s.get(Device, "kalvia-1").config_version = 1  # e.g. provisioned after the last publish
        s.get(Device, "kalvia-2").config_version = 1
        s.get(Device, "kalvia-2").last_status = {"config_error": "schema: ..."}  # refused: left alone
        current = current_versions(s)["kalvia"]
    attempts: dict = {}
    with Publisher(settings) as publisher, sessions() as s:
        assert repair_drift(s, publisher, attempts, 0.0, lambda d: True) == ["kalvia-1"]
        assert repair_drift(s, publisher, attempts, 60.0, lambda d: True) == []  # throttled
        assert repair_drift(s, publisher, attempts, 0.0, lambda d: False) == []  # offline: later
    with Probe(broker.port) as kiosk:
        assert kiosk.connect()
        kiosk.subscribe(topic("kalvia", "kalvia-1", "config"))
        message = kiosk.expect(topic("kalvia", "kalvia-1", "config"))
    assert decode(message.topic, message.payload)[1].config_version == current


@pytest.mark.broker
def test_the_fleet_loop_publishes_configs_and_clears_a_retired_kiosks_retained_config(sessions, broker):
    from fleet_server.fleet.loop import FleetLoop

    settings = load_settings(environ={}, mqtt_url=broker.url, database_url="sqlite://")
    with Probe(broker.port) as old:  # what the retired kiosk's topic held before
        assert old.connect()
        old.publish(topic("kalvia", "kalvia-old", "config"), b"stale", retain=True)
    with Publisher(settings) as publisher:
        FleetLoop(settings, sessions, publisher).run_pass()
    with Probe(broker.port) as probe:
        assert probe.connect()
        probe.subscribe(topic("kalvia", "kalvia-old", "config"))
        probe.subscribe(topic("kalvia", "kalvia-1", "config"))  # published by the loop, retained
        probe.expect(topic("kalvia", "kalvia-1", "config"))
        assert [m.topic for m in probe.seen] == [topic("kalvia", "kalvia-1", "config")]


def test_fleet_defaults_are_validated_even_before_any_station_exists(sqlite_url):
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    try:
        with make_session_factory(engine)() as s:
            with pytest.raises(ConfigInvalid, match="default_lang"):
                save_settings(s, None, {"default_lang": "de"})
            assert save_settings(s, None, {"default_lang": "sv"}).id == 1
    finally:
        engine.dispose()
