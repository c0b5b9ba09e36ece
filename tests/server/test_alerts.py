"""Fleet alert rules, de-duplication and delivery to a real SMTP server and HTTP receiver."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from sqlalchemy import func, select

from fleet_server.core.settings import load_settings
from fleet_server.fleet.alerts import channels_from, evaluate, is_open, run_once
from fleet_server.fleet.remote_config import save_settings
from fleet_server.models import Alert, AlertDelivery, Device, Station
from palaute_wire.contract import OpeningHours

# Wednesday 2026-11-25, 10:00 in Helsinki (UTC+2).
WED_10 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
WED_20 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
WEEKDAYS = {"opening_hours": {"timezone": "Europe/Helsinki",
                              "days": {d: ["08:00", "16:00"] for d in ("mon", "tue", "wed", "thu", "fri")}}}


@pytest.fixture
def sessions(sessions):
    factory = sessions
    with factory() as s, s.begin():
        s.add(Station(id="kalvia", name="Kälviä"))
        s.flush()
        save_settings(s, "kalvia", WEEKDAYS)
    return factory


def settings(**over):
    return load_settings(environ={}, **over)


def put_device(sessions, now, **fields):
    """A kiosk installed two days ago, healthy and online at ``now`` unless told otherwise."""
    base = {
        "id": "kalvia-1", "station_id": "kalvia", "state": "active", "online": True,
        "created_at": now - timedelta(days=2), "last_seen_at": now, "status_received_at": now,
        "last_event_at": now - timedelta(hours=1), "queue_depth": 0, "oldest_queued_age_s": None,
        "clock_synced": True, "disk_free_mb": 5000.0, "cpu_temp_c": 50.0,
    }
    base.update(fields)
    with sessions() as s, s.begin():
        device = s.get(Device, base["id"])
        if device is None:
            s.add(Device(**base))
        else:
            for key, value in base.items():
                setattr(device, key, value)


def rules(sessions, now, **over):
    with sessions() as s:
        return sorted((c.rule, c.device_id) for c in evaluate(s, settings(**over), now))


def test_opening_hours_are_read_in_the_stations_time_zone():
    hours = OpeningHours.model_validate(WEEKDAYS["opening_hours"])
    assert is_open(hours, WED_10)
    assert not is_open(hours, WED_20)
    assert not is_open(hours, datetime(2026, 11, 25, 5, 59, tzinfo=UTC))  # 07:59 local
    assert is_open(None, WED_20)  # no hours configured: always open


def test_offline_alerts_only_while_the_station_is_open(sessions):
    put_device(sessions, WED_10, online=False, last_seen_at=WED_10 - timedelta(minutes=30))
    assert rules(sessions, WED_10) == [("offline", "kalvia-1")]
    assert rules(sessions, WED_10, alert_offline_after_min=60) == []
    put_device(sessions, WED_20, online=False, last_seen_at=WED_20 - timedelta(minutes=30))
    assert rules(sessions, WED_20) == []


def test_missing_heartbeats_count_as_offline_without_a_last_will(sessions):
    stale = WED_10 - timedelta(minutes=15)
    put_device(sessions, WED_10, online=True, last_seen_at=stale, status_received_at=stale)
    assert rules(sessions, WED_10) == [("offline", "kalvia-1")]


def test_health_rules_fire_on_their_thresholds(sessions):
    put_device(sessions, WED_10, queue_depth=80, oldest_queued_age_s=3600, clock_synced=False,
               disk_free_mb=100.0, cpu_temp_c=82.0)
    assert rules(sessions, WED_10) == [
        ("backlog", "kalvia-1"), ("clock", "kalvia-1"), ("disk", "kalvia-1"), ("temperature", "kalvia-1")
    ]
    put_device(sessions, WED_10, queue_depth=80, oldest_queued_age_s=60)  # a burst draining: fine
    assert rules(sessions, WED_10) == []


def test_a_kiosk_that_cannot_store_answers_raises_a_critical_storage_alert(sessions):
    full = "disk_full: 3 answers kept in memory until the disk has room, 0 lost; database or disk is full"
    put_device(sessions, WED_10, last_status={"online": True, "storage_error": full})
    with sessions() as s:
        (alert,) = evaluate(s, settings(), WED_10)
    assert (alert.rule, alert.device_id, alert.severity) == ("storage", "kalvia-1", "critical")
    assert "disk_full" in alert.message
    put_device(sessions, WED_10, last_status={"online": True})  # space came back: the kiosk stops saying it
    assert rules(sessions, WED_10) == []


def test_no_feedback_for_a_day_at_an_open_station(sessions):
    put_device(sessions, WED_10, last_event_at=WED_10 - timedelta(hours=30))
    assert rules(sessions, WED_10) == [("no_feedback", None)]
    # Closed the whole window (a weekend): quiet is not broken.
    sunday_noon = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    put_device(sessions, sunday_noon, last_event_at=sunday_noon - timedelta(hours=30))
    assert rules(sessions, sunday_noon) == []


# ----------------------------------------------------------------- delivery




class _Receiver(BaseHTTPRequestHandler):
    bodies: ClassVar[list] = []
    fail_next = 0
    calls = 0
    delay_s = 0.0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.calls += 1
        if cls.delay_s:
            time.sleep(cls.delay_s)
        if cls.fail_next:
            cls.fail_next -= 1
            self.send_response(500)
        else:
            cls.bodies.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    handler = type("Receiver", (_Receiver,), {"bodies": [], "fail_next": 0, "calls": 0, "delay_s": 0.0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", handler
    server.shutdown()
    server.server_close()


def test_an_alert_is_sent_once_by_email_and_webhook_and_its_clearing_once(sessions, smtp, webhook):
    controller, box = smtp
    url, receiver = webhook
    s = settings(smtp_host="127.0.0.1", smtp_port=controller.port, alert_email_to="it@county.example",
                 alert_webhook_url=url, alert_email_language="en")
    channels = channels_from(s)
    put_device(sessions, WED_10, online=False, last_seen_at=WED_10 - timedelta(minutes=30))
    run_once(sessions, s, channels, now=WED_10)
    run_once(sessions, s, channels, now=WED_10 + timedelta(minutes=1))  # same condition: nothing new
    assert [m["Subject"] for m in box.messages] == ["[Palaute CRITICAL] offline at kalvia/kalvia-1"]
    assert "offline for 30 min" in box.messages[0].get_content()
    assert [(b["event"], b["rule"], b["device_id"]) for b in receiver.bodies] == [("firing", "offline", "kalvia-1")]

    back = WED_10 + timedelta(minutes=5)
    put_device(sessions, back)  # its status says online again
    run_once(sessions, s, channels, now=back)
    run_once(sessions, s, channels, now=back + timedelta(minutes=1))
    assert [m["Subject"] for m in box.messages][1:] == ["[Palaute RESOLVED] offline at kalvia/kalvia-1"]
    assert [b["event"] for b in receiver.bodies] == ["firing", "cleared"]
    with sessions() as session:
        (alert,) = session.scalars(select(Alert)).all()
        assert alert.cleared_at == back and alert.notified_at and alert.cleared_notified_at


def test_a_failed_delivery_is_retried_and_then_sent_once(sessions, webhook):
    url, receiver = webhook
    receiver.fail_next = 1
    s = settings(alert_webhook_url=url)
    channels = channels_from(s)
    put_device(sessions, WED_10, clock_synced=False)
    run_once(sessions, s, channels, now=WED_10)
    assert receiver.bodies == []
    run_once(sessions, s, channels, now=WED_10 + timedelta(minutes=1))
    run_once(sessions, s, channels, now=WED_10 + timedelta(minutes=2))
    assert [(b["event"], b["rule"]) for b in receiver.bodies] == [("firing", "clock")]


def test_a_webhook_that_is_down_neither_resends_the_email_nor_is_tried_every_pass(sessions, smtp, webhook):
    controller, box = smtp
    url, receiver = webhook
    receiver.fail_next = 3
    s = settings(smtp_host="127.0.0.1", smtp_port=controller.port, alert_email_to="it@county.example",
                 alert_webhook_url=url, alert_retry_min_s=60, alert_retry_max_s=600)
    channels = channels_from(s)
    for minute in range(10):  # ten passes, one a minute, the kiosk's clock still not synchronised
        put_device(sessions, WED_10 + timedelta(minutes=minute), clock_synced=False)
        run_once(sessions, s, channels, now=WED_10 + timedelta(minutes=minute))
    assert len(box.messages) == 1  # the e-mail went out once, at the first pass
    # The webhook failed at 0, was retried at 1 (+1 min) and 3 (+2 min), sent at 7 (+4 min).
    assert receiver.calls == 4
    assert [(b["event"], b["rule"]) for b in receiver.bodies] == [("firing", "clock")]
    with sessions() as session:
        rows = {r.channel: (r.attempts, r.delivered_at) for r in session.scalars(select(AlertDelivery))}
    assert rows == {"email": (1, WED_10), "webhook": (4, WED_10 + timedelta(minutes=7))}


@pytest.mark.postgres
def test_concurrent_delivery_passes_send_each_firing_once_per_channel(postgres_url, smtp, webhook):
    from fleet_server.core.db import make_engine, make_session_factory, migrate
    from fleet_server.fleet.alerts import deliver, enqueue

    controller, box = smtp
    url, receiver = webhook
    receiver.delay_s = 0.2  # a slow receiver: passes overlap while one is sending
    s = settings(smtp_host="127.0.0.1", smtp_port=controller.port, alert_email_to="it@county.example",
                 alert_webhook_url=url)
    channels = channels_from(s)
    migrate(postgres_url)
    engine = make_engine(postgres_url)
    factory = make_session_factory(engine)
    try:
        with factory() as session, session.begin():
            session.add(Station(id="kalvia", name="Kälviä"))
            session.flush()
            session.add_all([Alert(key=f"clock:kalvia/k{i}", rule="clock", station_id="kalvia",
                                   message=f"alert {i}", started_at=WED_10) for i in range(6)])
        passes = []
        for _ in range(4):  # four server processes' passes at once, each enqueueing too
            def one_pass():
                with factory() as session, session.begin():
                    enqueue(session, channels, WED_10)
                deliver(factory, s, channels, WED_10)
            passes.append(threading.Thread(target=one_pass))
        for t in passes:
            t.start()
        for t in passes:
            t.join(60)
        assert sorted(b["message"] for b in receiver.bodies) == [f"alert {i}" for i in range(6)]
        assert sorted(m.get_content().splitlines()[0] for m in box.messages) == [f"alert {i}" for i in range(6)]
        with factory() as session:
            assert session.scalar(select(func.count()).select_from(AlertDelivery)) == 12
    finally:
        engine.dispose()


@pytest.mark.parametrize(("lang", "subject", "words"), [
    ("fi", "[Palaute VAKAVA] ei yhteyttä: kalvia/kalvia-1",
     ["Laite kalvia-1 (kalvia) on ollut ilman yhteyttä 30 min, vaikka asema on auki.", "alkoi: "]),
    ("sv", "[Palaute ALLVARLIGT] utan förbindelse: kalvia/kalvia-1",
     ["Apparaten kalvia-1 (kalvia) har varit utan förbindelse i 30 min fast stationen är öppen.", "började: "]),
])
def test_alert_emails_are_written_in_the_configured_language(sessions, smtp, lang, subject, words):
    controller, box = smtp
    s = settings(smtp_host="127.0.0.1", smtp_port=controller.port, alert_email_to="it@county.example",
                 alert_email_language=lang)
    put_device(sessions, WED_10, online=False, last_seen_at=WED_10 - timedelta(minutes=30))
    run_once(sessions, s, channels_from(s), now=WED_10)
    (msg,) = box.messages
    assert msg["Subject"] == subject and msg["Content-Language"] == lang
    body = msg.get_content()
    assert all(w in body for w in words), body
    with sessions() as session:  # stored with its values, so any language can say it later
        (alert,) = session.scalars(select(Alert)).all()
    assert alert.params == {"device": "kalvia-1", "station": "kalvia", "duration": "30 min"}
    assert alert.message.startswith("kiosk kalvia-1 at kalvia has been offline for 30 min")


def test_the_default_alert_language_is_finnish():
    assert settings().alert_email_language == "fi"


def test_every_alert_text_is_in_the_catalogue_in_finnish_and_swedish():
    from fleet_server.core import i18n
    from fleet_server.fleet.alerts import RULE_NAMES, STATES, TEXTS

    for lang in ("fi", "sv"):
        with i18n.using(lang):
            for text in [*TEXTS.values(), *RULE_NAMES.values(), *STATES.values()]:
                for n in (1, 2):
                    assert i18n.counted(text, n) != text or text == "test", (lang, text, n)


@pytest.mark.parametrize(("lang", "one", "three"), [
    ("fi", "Laite k1: palvelimelta puuttuu 1 vastaus (numero 7). Palvelin on pyytänyt laitetta lähettämään sen",
     "Laite k1: palvelimelta puuttuu 3 vastausta (numerot 7–9). Palvelin on pyytänyt laitetta lähettämään ne"),
    ("sv", "Apparaten k1: servern saknar 1 svar (nummer 7). Servern har bett apparaten skicka det på nytt.",
     "Apparaten k1: servern saknar 3 svar (nummer 7–9). Servern har bett apparaten skicka dem på nytt."),
    ("en", "kiosk k1: 1 answer missing from the server (seq 7); the server has asked the kiosk to send it again",
     "kiosk k1: 3 answers missing from the server (seq 7–9); the server has asked the kiosk to send them again"),
])
def test_a_stored_alert_with_a_count_says_one_answer_in_the_singular(lang, one, three):
    from fleet_server.core import i18n
    from fleet_server.fleet.alerts import TEXTS, alert_text, condition

    text = TEXTS["events_missing_asked"]
    single = condition("events_missing", "s", "k1", text, device="k1", count=1, ranges="7")
    triple = condition("events_missing", "s", "k1", text, device="k1", count=3, ranges="7–9")
    assert single.text == triple.text == text  # stored by its plural id, as rows from before plurals were
    assert single.message.startswith("kiosk k1: 1 answer missing") and "send it again" in single.message
    with i18n.using(lang):
        assert alert_text({"text_id": single.text, "params": dict(single.params)}).startswith(one)
        assert alert_text({"text_id": triple.text, "params": dict(triple.params)}).startswith(three)


def test_device_health_and_open_alerts_read_in_the_readers_language(sessions):
    from fleet_server.core import i18n
    from fleet_server.fleet.device_health import fleet_health

    put_device(sessions, WED_10, online=False, last_seen_at=WED_10 - timedelta(minutes=30), clock_synced=False,
               disk_free_mb=1234.0)
    run_once(sessions, settings(), [], now=WED_10)
    with sessions() as s:
        with i18n.using("sv"):
            (health,) = fleet_health(s, settings(), now=WED_10)
        with i18n.using("en"):
            (english,) = fleet_health(s, settings(), now=WED_10)
    assert health.status.text == "utan förbindelse, bröts för 30 min sedan (apparaten meddelade avbrott)"
    assert health.clock.text == "INTE synkroniserad" and health.disk.text == "1\u00a0234 MB ledigt"
    assert health.alerts == ["Apparaten kalvia-1 (kalvia) har varit utan förbindelse i 30 min fast stationen är öppen."]
    assert english.status.text == "offline since 30 min ago (Last Will)" and english.disk.text == "1,234 MB free"
