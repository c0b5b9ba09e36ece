"""The kiosk uplink against a real Mosquitto: delivery, outages, config, commands, credentials."""

import json
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from fleet_server.devtools.local_broker import Mosquitto
from kiosk.app import RESTART_EXIT_CODE, Kiosk
from kiosk.config import ConfigError
from kiosk.outbox import Outbox
from kiosk.simulate import Simulator
from kiosk.state import station_config_path
from kiosk.uplink import UplinkTunables
from palaute_wire import contract as c
from palaute_wire.surveys import default_station_config
from tests.support.kiosk_support import DEVICE, STATION, Subscriber, kiosk_config, kiosk_raw, publish
from tests.support.tls import make_tls
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker

TOPIC = {ch: c.topic(STATION, DEVICE, ch) for ch in c.CHANNELS}


MQTT_VERSIONS = pytest.mark.parametrize("mqtt_version", ["5", "3.1.1"])
"""For the tests of the delivery contract: it must hold in both protocols ([broker] mqtt_version)."""


@pytest.fixture
def mqtt_version():
    return "5"


@pytest.fixture
def make_kiosk(tmp_path, mock_pins, mqtt_version):
    made = []

    def make(url, name="kiosk", start=True, tunables=UplinkTunables(loop_timeout_s=0.02), **sections):
        sections["broker"] = {"mqtt_version": mqtt_version, **sections.get("broker", {})}
        config = kiosk_config(tmp_path / name, url, **sections)
        kiosk = Kiosk(config, clock_synced_override=True, uplink_tunables=tunables)
        made.append(kiosk)
        return kiosk.start() if start else kiosk

    yield make
    for kiosk in made:
        kiosk.close()


def spoke(broker, client_id, mqtt_version) -> bool:
    """Mosquitto's log says which protocol a client connected with (p2: 3.1.1, p5: 5) and c0: no clean start."""
    return f"as {client_id} (p{'5' if mqtt_version == '5' else '2'}, c0" in broker.log()


def press(kiosk, value):
    sim = Simulator(kiosk, kiosk.config.simulate, seed=1)
    return sim.press(value)


def connected(kiosk):
    """Connected and subscribed: a command published before the SUBACK of a new session is lost."""
    return wait_until(lambda: kiosk.uplink.listening, 10, "the kiosk to connect and subscribe")


@MQTT_VERSIONS
def test_events_arrive_as_valid_batches_and_leave_the_outbox_only_on_puback(broker, make_kiosk):
    with Subscriber(broker.port) as sub:
        kiosk = make_kiosk(broker.url)
        connected(kiosk)
        broker.proc.send_signal(signal.SIGSTOP)  # the broker takes the bytes but cannot ack
        try:
            sent = [press(kiosk, v) for v in (1, 3, 4)]
            wait_until(lambda: kiosk.uplink.snapshot().inflight_batches > 0, 10, "a batch in flight")
            assert kiosk.outbox.stats().queue_depth == 3, "events left the outbox before PUBACK"
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0, 10, "the PUBACK to empty the queue")
        wait_until(lambda: sub.event_ids() == {str(e.event_id) for e in sent}, 10, "all three events")
        assert spoke(broker, kiosk.uplink.client_id, kiosk.config.broker.mqtt_version)
        for payload, _ in sub.on("events"):
            _, batch = c.decode(TOPIC["events"], payload)
            assert all(e in sent for e in batch.events)


@MQTT_VERSIONS
def test_thousand_presses_while_broker_is_down_all_arrive_after_it_returns(broker, make_kiosk, capsys):
    with Subscriber(broker.port) as sub:
        kiosk = make_kiosk(broker.url)
        connected(kiosk)
        broker.stop()
        wait_until(lambda: not kiosk.uplink.connected, 10, "the kiosk to notice the outage")
        pressed = {str(press(kiosk, v).event_id) for v in [1, 2, 3, 4] * 250}
        assert len(pressed) == 1000
        assert kiosk.outbox.stats().queue_depth == 1000
        started = time.monotonic()
        broker.start()
        wait_until(lambda: sub.event_ids() >= pressed, 60, "all 1,000 events after the broker returned")
        drained = time.monotonic() - started
        assert sub.event_ids() == pressed
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0, 10, "an empty outbox")
        statuses = [json.loads(p) for p, _ in sub.on("status") if p]
        assert any(s["online"] and s.get("queue_depth") == 1000 for s in statuses), "status never showed the backlog"
    with capsys.disabled():
        print(f"\n  drained 1,000 events in {drained:.2f}s after broker restart ({sub.batches} batches)")


def test_retained_config_is_applied_and_an_invalid_one_rejected_keeping_the_last_good(broker, make_kiosk):
    good = default_station_config(STATION, "Kälviä").model_copy(update={"config_version": 5, "default_lang": "sv"})
    publish(broker.port, TOPIC["config"], c.encode(good), retain=True)
    with Subscriber(broker.port) as sub:
        kiosk = make_kiosk(broker.url, start=False)
        seen = []
        kiosk.config_listeners.append(seen.append)
        kiosk.start()
        wait_until(lambda: kiosk.station_config.config_version == 5, 10, "config 5 to be applied")
        assert seen == [good] and kiosk.default_lang == "sv"
        saved = station_config_path(kiosk.config.state.dir)
        assert c.StationConfig.model_validate_json(saved.read_bytes()) == good
        wait_until(lambda: (sub.last_status() or {}).get("config_version") == 5, 10, "status with config 5")

        bad = json.loads(c.encode(good))
        bad["config_version"] = 6
        bad["survey"]["followups"][0]["options"] = []  # fewer than 3 options
        publish(broker.port, TOPIC["config"], json.dumps(bad).encode(), retain=True)
        status = wait_until(lambda: (s := sub.last_status()) and s.get("config_error") and s, 10, "a rejection")
        assert "schema" in status["config_error"] and status["config_version"] == 5
        assert kiosk.station_config == good
        assert c.StationConfig.model_validate_json(saved.read_bytes()) == good
    kiosk.close()
    again = Kiosk(kiosk.config, clock_synced_override=True)  # a restart starts from the last good config
    try:
        assert again.station_config == good
    finally:
        again.close()


def test_resend_command_republishes_retained_events_and_is_acked_in_status(broker, make_kiosk):
    with Subscriber(broker.port) as sub:
        kiosk = make_kiosk(broker.url)
        sent = [press(kiosk, v) for v in (2, 3, 4)]
        wait_until(lambda: len(sub.event_ids()) == 3 and kiosk.outbox.stats().queue_depth == 0, 10, "delivery")
        cmd = c.Command(cmd_id="gap-1", name="resend", from_seq=2, issued_at=c.now_utc())
        publish(broker.port, TOPIC["cmd"], c.encode(cmd))
        wait_until(lambda: all(len(sub.events[str(e.event_id)]) == 2 for e in sent[1:]), 10, "the resend")
        assert len(sub.events[str(sent[0].event_id)]) == 1
        copies = sub.events[str(sent[1].event_id)]
        assert copies[0] == copies[1], "a resend must carry the same event"
        status = wait_until(lambda: (s := sub.last_status()) and s.get("last_command") and s, 10, "the ack")
        assert status["last_command"]["cmd_id"] == "gap-1" and status["last_command"]["ok"]


def test_identify_command_blinks_the_answer_leds(broker, make_kiosk, mock_pins):
    with Subscriber(broker.port) as sub:
        kiosk = make_kiosk(broker.url)
        connected(kiosk)
        led_pin = mock_pins.pin(kiosk.pinmap.leds[2])
        led_pin.clear_states()
        publish(broker.port, TOPIC["cmd"], c.encode(c.Command(cmd_id="find-me", name="identify",
                                                              issued_at=c.now_utc())))
        wait_until(lambda: {s.state for s in led_pin.states} >= {0, 1}, 10, "LED 2 to blink")
        status = wait_until(lambda: (s := sub.last_status()) and s.get("last_command") and s, 10, "the ack")
        assert status["last_command"] == {**status["last_command"], "cmd_id": "find-me", "ok": True}


def test_a_stale_identify_queued_while_offline_is_refused_not_run(broker, make_kiosk, mock_pins):
    with Subscriber(broker.port) as sub:
        kiosk = make_kiosk(broker.url)
        connected(kiosk)
        led_pin = mock_pins.pin(kiosk.pinmap.leds[2])
        led_pin.clear_states()
        old = c.now_utc() - timedelta(hours=26)
        publish(broker.port, TOPIC["cmd"], c.encode(c.Command(cmd_id="yesterday", name="identify", issued_at=old)))
        status = wait_until(lambda: (s := sub.last_status()) and s.get("last_command") and s, 10, "the ack")
        assert status["last_command"]["cmd_id"] == "yesterday" and status["last_command"]["ok"] is False
        assert status["last_command"]["detail"].startswith("expired")
        assert {s.state for s in led_pin.states} <= {0}, "the LEDs must not blink for a stale request"


@MQTT_VERSIONS
def test_a_command_sent_while_the_kiosk_is_away_waits_in_its_session(broker, make_kiosk, mqtt_version):
    """The persistent session: subscribed once, then away; the broker queues the command meanwhile
    (MQTT 5: clean start off with a session expiry; 3.1.1: clean_session off)."""
    with Subscriber(broker.port) as sub:
        kiosk = make_kiosk(broker.url)
        connected(kiosk)
        wait_until(lambda: sub.last_status(), 10, "the first status")  # the subscriptions come before it
        kiosk.close()
        publish(broker.port, TOPIC["cmd"], c.encode(c.Command(cmd_id="while-away", name="resend", from_seq=1,
                                                                  issued_at=c.now_utc())))
        again = make_kiosk(broker.url, name="kiosk")  # the same outbox and client id: the same session
        status = wait_until(lambda: (s := sub.last_status()) and s.get("last_command") and s, 10,
                            "the command queued in the session")
        assert status["last_command"]["cmd_id"] == "while-away" and again.uplink.connected
        assert spoke(broker, kiosk.uplink.client_id, mqtt_version)


@MQTT_VERSIONS
def test_bad_password_is_refused_without_a_hot_reconnect_loop(tmp_path, make_kiosk):
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "kalvia-1", "right"], check=True)
    passwd.chmod(0o600)
    auth = f"password_file {passwd}"
    with Mosquitto(tmp_path / "auth-broker", allow_anonymous=False, extra_config=auth) as b:
        (tmp_path / "wrong").write_text("wrong\n")
        kiosk = make_kiosk(b.url, name="bad", broker={
            "username": "kalvia-1", "password_file": str(tmp_path / "wrong"),
            "reconnect_min_s": 0.05, "reconnect_max_s": 30,
        })
        snap = wait_until(lambda: (s := kiosk.uplink.snapshot()).refused and s, 10, "the refusal")
        assert snap.refused in ("Not authorized", "Bad user name or password")
        assert snap.next_retry_in_s is not None and snap.next_retry_in_s > 30 * 0.7, snap
        time.sleep(1.0)  # a hot loop with reconnect_min_s=0.05 would retry ~20 times here
        assert kiosk.uplink.snapshot().connect_attempts == 1
        assert not kiosk.uplink.connected
        kiosk.close()

        good = make_kiosk(b.url, name="good", device={"device_id": "kalvia-2"},
                          broker={"username": "kalvia-1", "password": "right"})
        connected(good)


def test_unacknowledged_batch_is_forgotten_after_the_ack_timeout_and_sent_again(broker, make_kiosk):
    with Subscriber(broker.port) as sub:
        kiosk = make_kiosk(broker.url, tunables=UplinkTunables(loop_timeout_s=0.02, ack_timeout_s=0.3))
        connected(kiosk)
        broker.proc.send_signal(signal.SIGSTOP)
        try:
            event = press(kiosk, 2)
            wait_until(lambda: kiosk.uplink.snapshot().inflight_batches == 1, 10, "the batch in flight")
            wait_until(lambda: kiosk.uplink.snapshot().ack_timeouts >= 1, 10, "the ack timeout")
            wait_until(lambda: kiosk.uplink.snapshot().inflight_batches == 1, 10, "the batch sent again")
            assert kiosk.outbox.stats().queue_depth == 1
        finally:
            broker.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: len(sub.events[str(event.event_id)]) >= 2, 10, "both copies")
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0, 10, "the ack")
        copies = sub.events[str(event.event_id)]
        assert all(copy == copies[0] for copy in copies)


@pytest.mark.parametrize("retention_days", [0, 7])
def test_a_crash_while_acks_are_being_marked_loses_nothing_and_sends_them_again(
    broker, make_kiosk, tmp_path, retention_days,
):
    """The acks a loop turn read are marked in one transaction: killed before its COMMIT, the kiosk
    has every event still queued, and the next start sends them again (the server drops copies)."""
    raw = kiosk_raw(tmp_path / "kiosk", broker.url, outbox={"retention_days": retention_days})
    script = textwrap.dedent(
        """
        import json, os, signal, sys, time
        from kiosk.app import Kiosk
        from kiosk.config import parse_config
        from kiosk.uplink import UplinkTunables
        kiosk = Kiosk(parse_config(json.loads(sys.argv[1])), clock_synced_override=True,
                      uplink_tunables=UplinkTunables(batch_events=20))
        for i in range(300):
            kiosk.press_smiley(1 + i % 4)
        marking = []
        def trace(sql):
            if sql.startswith(("UPDATE events SET acked_at", "DELETE FROM events WHERE seq BETWEEN")):
                marking.append(sql)
            elif sql == "COMMIT" and marking:
                print(f"killed before committing {len(marking)} ack statements", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        kiosk.outbox._db.set_trace_callback(trace)
        kiosk.start(buttons=False)
        time.sleep(30)
        """
    )
    with Subscriber(broker.port) as sub:
        proc = subprocess.run([sys.executable, "-c", script, json.dumps(raw)], capture_output=True, text=True,
                              timeout=60, check=False, cwd=Path(__file__).resolve().parents[2])
        assert proc.returncode == -signal.SIGKILL and "killed before committing" in proc.stdout, proc.stderr
        with Outbox(raw["outbox"]["path"]) as box:
            rows = box.pending(1000)
            assert [r.seq for r in rows] == list(range(1, 301)), "an event left the outbox without its commit"
            stored = {json.loads(r.payload)["event_id"] for r in rows}
        assert sub.event_ids() and sub.event_ids() <= stored  # batches went out and were acked, then the kill
        kiosk = make_kiosk(broker.url, outbox={"retention_days": retention_days})
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0, 20, "the queue sent again and acked")
        wait_until(lambda: sub.event_ids() == stored, 10, "every event at the subscriber")
        assert any(len(copies) > 1 for copies in sub.events.values()), "nothing was sent twice: no crash mid-way?"
        for copies in sub.events.values():
            assert all(copy == copies[0] for copy in copies)


def test_restart_command_is_acked_then_stops_the_kiosk_for_systemd_to_restart(broker, make_kiosk):
    with Subscriber(broker.port) as sub:
        kiosk = make_kiosk(broker.url)
        connected(kiosk)
        publish(broker.port, TOPIC["cmd"], c.encode(c.Command(cmd_id="r1", name="restart",
                                                                  issued_at=c.now_utc())))
        assert wait_until(lambda: kiosk.stopping, 10, "the stop request")
        assert kiosk.exit_code == RESTART_EXIT_CODE
        status = wait_until(lambda: (s := sub.last_status()) and s.get("last_command") and s, 10, "the ack")
        assert status["last_command"]["cmd_id"] == "r1" and status["online"]


def test_mqtts_connects_with_the_configured_ca(tmp_path, make_kiosk):
    files = make_tls(tmp_path / "tls")
    with Mosquitto(tmp_path / "tls-broker", extra_config=files.mosquitto_lines()) as b:
        kiosk = make_kiosk(f"mqtts://127.0.0.1:{b.port}", broker={"ca_file": str(files.ca_cert)})
        connected(kiosk)
        press(kiosk, 4)
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0, 10, "the PUBACK over TLS")


def test_a_fleet_that_lost_its_broker_together_reconnects_within_ten_seconds_spread_out():
    """The default cap is 10 s (was 60: kiosks sat idle up to a minute after the broker came
    back), and 200 kiosks with the same failure count do not all retry at one instant."""
    import random

    from kiosk.config import BrokerSection
    from kiosk.uplink import reconnect_delay

    broker = BrokerSection(url="mqtt://127.0.0.1:1883")
    t = UplinkTunables()
    rng = random.Random(13)
    for failures in (1, 3, 6, 20, 500):
        delays = [reconnect_delay(failures, broker.reconnect_min_s, broker.reconnect_max_s, t.jitter, rng)
                  for _ in range(200)]
        assert max(delays) <= 10.0, (failures, max(delays))
        assert min(delays) > 0
    at_cap = sorted(reconnect_delay(20, broker.reconnect_min_s, broker.reconnect_max_s, t.jitter, rng)
                    for _ in range(200))
    assert at_cap[-1] - at_cap[0] > 3.0, "reconnects must spread over seconds, not one instant"
    same_second = max(sum(1 for d in at_cap if s <= d < s + 1) for s in range(10))
    assert same_second < 200 * 0.35


def test_a_kiosk_with_several_brokers_fails_over_when_the_one_in_use_goes_away(tmp_path, make_kiosk):
    """Two private Mosquittos (as a regional and the central broker): the kiosk starts on the
    first, which then stops; it carries on with the second and its answers arrive there."""
    from fleet_server.devtools.local_broker import Mosquitto, free_port

    dead = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens here: tried first, skipped
    with (Mosquitto(tmp_path / "one") as one, Mosquitto(tmp_path / "two") as two,
          Subscriber(one.port) as sub_one, Subscriber(two.port) as sub_two):
        kiosk = make_kiosk(dead, broker={"fallback_urls": [one.url, two.url]})
        connected(kiosk)
        assert kiosk.uplink.broker_url == one.url
        first = press(kiosk, 4)
        wait_until(lambda: sub_one.event_ids() == {str(first.event_id)}, 10, "the answer at the first broker")
        one.stop()
        later = [press(kiosk, v) for v in (1, 2)]
        wait_until(lambda: sub_two.event_ids() >= {str(e.event_id) for e in later}, 20,
                   "the later answers at the second broker")
        wait_until(lambda: kiosk.outbox.stats().queue_depth == 0, 20, "the second broker's PUBACKs")  # the subscriber may see them first
        assert kiosk.uplink.broker_url == two.url


def test_fallback_brokers_must_use_the_same_scheme(tmp_path):
    with pytest.raises(ConfigError, match="fallback_urls must all be mqtts://"):
        kiosk_config(tmp_path, "mqtts://central.example:8883", broker={"fallback_urls": ["mqtt://region.example"]})


def test_a_kiosk_says_it_accepts_survey_links_and_applies_a_renewed_one_under_the_same_version(broker, make_kiosk):
    from datetime import UTC, datetime

    with Subscriber(broker.port) as sub:
        kiosk = make_kiosk(broker.url)
        status = wait_until(lambda: sub.last_status(), 10, "a status")
        assert status["accepts"] == ["survey_link"] and "survey_link_expires" not in status
        link = c.SurveyLink(url="https://palaute.example.fi/s/kalvia?t=first", expires=datetime(2027, 2, 1, tzinfo=UTC))
        config = default_station_config(STATION, "Kälviä").model_copy(update={"config_version": 7, "survey_link": link})
        publish(broker.port, TOPIC["config"], c.encode(config), retain=True)
        wait_until(lambda: (sub.last_status() or {}).get("survey_link_expires") == "2027-02-01T00:00:00Z", 10,
                   "the link's expiry in status")
        renewed = config.model_copy(update={"survey_link": c.SurveyLink(
            url="https://palaute.example.fi/s/kalvia?t=second", expires=datetime(2027, 3, 1, tzinfo=UTC))})
        publish(broker.port, TOPIC["config"], c.encode(renewed), retain=True)
        wait_until(lambda: (sub.last_status() or {}).get("survey_link_expires") == "2027-03-01T00:00:00Z", 10,
                   "the renewed link's expiry")
        assert kiosk.station_config.survey_link == renewed.survey_link and kiosk.station_config.config_version == 7
    kiosk.close()


def test_connection_listeners_hear_the_broker_connection_come_and_go(broker, make_kiosk):
    kiosk = make_kiosk(broker.url, start=False)
    seen: list[tuple[bool, bool]] = []
    # What the listener sees is already the new state (the updater's health report says "online" at once).
    kiosk.connection_listeners.append(lambda up: seen.append((up, kiosk.uplink.snapshot().connected)))
    kiosk.start()
    wait_until(lambda: seen == [(True, True)], 10, "the listener to hear the connection")
    broker.stop()
    wait_until(lambda: seen == [(True, True), (False, False)], 10, "the listener to hear it go")
    broker.start()
    kiosk.close()


def test_the_health_report_sends_the_status_at_once_when_the_updater_changed_its_state(broker, make_kiosk):
    from kiosk import release_switch as rs
    from kiosk.updater import HealthReporter, health_path, state_path

    kiosk = make_kiosk(broker.url, start=False)
    reporter = HealthReporter(kiosk)
    soon: list[bool] = []
    kiosk.uplink.send_status_soon = lambda: soon.append(True)
    reporter()
    assert soon == [] and rs.read_json(health_path(kiosk.config))["online"] is False
    rs.write_json(state_path(kiosk.config), {"phase": "committed", "version": "0.2.0"})  # the updater committed
    reporter()
    reporter()
    assert soon == [True]
    kiosk.close()
