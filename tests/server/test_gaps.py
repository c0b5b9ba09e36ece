"""Missing answers: the server finds seq gaps, asks the kiosk once per interval, and
says which ones can never come back. On SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from fleet_server.core.settings import load_settings
from fleet_server.fleet.gap_words import describe
from fleet_server.fleet.gaps import SeqRange, find_gaps, open_gaps, track_gaps
from fleet_server.fleet.remote_config import reconcile_acks
from fleet_server.models import Device, DeviceCommand, FeedbackEvent, SeqGap, Station
from palaute_wire.contract import decode, topic

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)  # a fixed clock: every call below is given it


class RecordingPublisher:
    """Records what would go to the broker; has only ``publish`` (anything else fails loudly)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []

    def publish(self, topic_name: str, payload: bytes, *, retain: bool = False) -> None:
        self.sent.append((topic_name, payload, retain))


@pytest.fixture
def sessions(sessions):
    factory = sessions
    with factory() as s, s.begin():
        s.add_all([Station(id="kalvia", name="Kälviä"), Station(id="lohtaja", name="Lohtaja")])
        s.flush()
        s.add_all([Device(id=d, station_id=d.split("-")[0], state="active")
                   for d in ("kalvia-1", "kalvia-2", "kalvia-3", "lohtaja-1")])
    return factory


def add_events(session, device_id: str, seqs) -> None:
    station = device_id.split("-")[0]
    session.add_all([
        FeedbackEvent(event_id=uuid.uuid4(), station_id=station, device_id=device_id, kind="smiley", value=3,
                      question_id="visit", lang="fi", ts=T0, received_at=T0, seq=seq, clock_synced=True)
        for seq in seqs
    ])
    session.flush()


def set_status(session, device_id: str, *, last_seq: int, queue_depth: int = 0, shed_count: int = 0,
               held_from_seq: int | None = None) -> None:
    device = session.get(Device, device_id)
    device.last_seq, device.queue_depth, device.shed_count = last_seq, queue_depth, shed_count
    device.held_from_seq = held_from_seq


def test_gap_query_finds_leading_internal_and_tail_gaps_and_none_for_a_complete_sequence(sessions):
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [3, 4, 5, 8, 9, 12])
        set_status(s, "kalvia-1", last_seq=15, queue_depth=1)  # 1..14 left the kiosk; 15 still queued
        add_events(s, "kalvia-2", range(1, 11))
        set_status(s, "kalvia-2", last_seq=12, queue_depth=2)  # 11, 12 still on the kiosk: no gap
        add_events(s, "kalvia-3", [1, 2, 3, 3, 4])  # a duplicate seq is not a gap
        set_status(s, "lohtaja-1", last_seq=4, queue_depth=0)  # reported 4 sent, none stored

    with sessions() as s:
        gaps = find_gaps(s)
        assert set(gaps) == {"kalvia-1", "lohtaja-1"}
        assert gaps["kalvia-1"].ranges == [SeqRange(1, 2, "leading"), SeqRange(6, 7, "internal"),
                                           SeqRange(10, 11, "internal"), SeqRange(13, 14, "tail")]
        assert gaps["kalvia-1"].missing == 8
        assert (gaps["kalvia-1"].received_min, gaps["kalvia-1"].received_max, gaps["kalvia-1"].received) == (3, 12, 6)
        assert gaps["lohtaja-1"].ranges == [SeqRange(1, 4, "tail")]
        assert find_gaps(s, ["kalvia-2", "kalvia-3"]) == {}
        assert set(find_gaps(s, ["kalvia-1"])) == {"kalvia-1"}


def test_loop_sends_exactly_one_throttled_resend_after_the_grace_period(sessions):
    settings = load_settings(environ={}, database_url="sqlite://", gap_grace_s=120, gap_resend_interval_s=900)
    publisher = RecordingPublisher()
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [1, 2, 5, 6, 9, 10])
        set_status(s, "kalvia-1", last_seq=10, shed_count=3)

    def step(at_s: float, online: bool = True):
        with sessions() as s, s.begin():
            reconcile_acks(s)
            return track_gaps(s, settings, publisher, T0 + timedelta(seconds=at_s), lambda d: online)

    first = step(0)
    assert [(g.first_seq, g.last_seq) for g in first.opened] == [(3, 4), (7, 8)]
    assert step(60).resends == [] and publisher.sent == []  # within the grace period: maybe in flight
    assert step(130, online=False).resends == []  # offline kiosks are asked later

    asked = step(130).resends
    assert [(c.name, c.from_seq, c.issued_by) for c in asked] == [("resend", 3, "fleet-loop")]
    ((cmd_topic, payload, retain),) = publisher.sent
    assert cmd_topic == topic("kalvia", "kalvia-1", "cmd") and not retain
    assert decode(cmd_topic, payload)[1].from_seq == 3
    assert step(200).resends == [] and step(900).resends == []  # asked, waiting for the ack: once per interval
    assert len(publisher.sent) == 1

    # The kiosk acknowledges and still holds them, yet they do not arrive (the resend went astray,
    # e.g. queued for a server process that died): not written off, asked again after the interval.
    with sessions() as s, s.begin():
        device = s.get(Device, "kalvia-1")
        device.last_status = {"last_command": {"cmd_id": asked[0].cmd_id, "at": "2026-11-27T08:00:00Z", "ok": True,
                                               "detail": "4 events queued again from seq 3"}}
        device.held_from_seq = 1
    assert step(1000).unrecoverable == []
    again = step(130 + 900)
    assert again.unrecoverable == [] and [c.from_seq for c in again.resends] == [3]

    # Only the kiosk's own status can say they are gone: it holds nothing below seq 9 now.
    with sessions() as s, s.begin():
        s.get(Device, "kalvia-1").held_from_seq = 9
    gone = step(1100).unrecoverable
    assert [(g.first_seq, g.last_seq) for g in gone] == [(3, 4), (7, 8)]
    assert "shed 3 answers" in gone[0].reason and "holds answers from seq 9" in gone[0].reason
    assert step(5000).resends == []  # unrecoverable gaps are not asked for again ...
    with sessions() as s:
        rows = open_gaps(s)["kalvia-1"]  # ... but still shown
        text, level = describe(rows, T0 + timedelta(seconds=5000))
    assert level == "bad"
    assert text.startswith("4 answers missing, seq 3–4, 7–8; unrecoverable: 4 (the kiosk holds answers from seq 9")
    assert len(publisher.sent) == 2


def test_a_gap_that_fills_is_resolved_and_a_new_one_waits_for_the_interval(sessions):
    settings = load_settings(environ={}, database_url="sqlite://", gap_grace_s=120, gap_resend_interval_s=900)
    publisher = RecordingPublisher()
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [1, 3])

    def step(at_s: float):
        with sessions() as s, s.begin():
            return track_gaps(s, settings, publisher, T0 + timedelta(seconds=at_s))

    step(0)
    assert [c.from_seq for c in step(121).resends] == [2]
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [2, 4, 6])  # 2 resent; 5 goes missing
    result = step(130)
    assert [(g.first_seq, g.last_seq) for g in result.resolved] == [(2, 2)]
    assert [(g.first_seq, g.last_seq) for g in result.opened] == [(5, 5)]
    assert step(300).resends == []  # past its grace, but one resend per interval per kiosk
    assert [c.from_seq for c in step(121 + 901).resends] == [5]
    with sessions() as s:
        assert s.query(DeviceCommand).filter_by(name="resend").count() == 2
        assert s.query(SeqGap).filter(SeqGap.resolved_at.is_not(None)).count() == 1


@pytest.fixture
def client(sessions, db_url):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from fleet_server.app import install_fleet_routes
    from fleet_server.auth.setup import install_auth
    from fleet_server.fleet.loop import start_fleet_ops, stop_fleet_ops

    settings = load_settings(environ={}, database_url=db_url, session_secret="s" * 40, gap_grace_s=0)
    app = FastAPI()
    app.state.settings = settings
    app.state.session_factory = sessions
    install_auth(app, settings)
    install_fleet_routes(app)
    start_fleet_ops(app, loop=False)  # the publisher connects lazily: nothing is sent here
    with TestClient(app) as c:
        yield c
    stop_fleet_ops(app)


def test_unresolved_gaps_show_on_the_pages_and_in_the_api_to_those_who_may_see_the_device(client, sessions):
    from tests.support.auth_helpers import bearer, make_user, sign_in

    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [1, 2, 5, 9])
        set_status(s, "kalvia-1", last_seq=9, shed_count=2)
        track_gaps(s, client.app.state.settings, RecordingPublisher(), T0, online=lambda d: False)
        # One of them could not be recovered (as the loop marks it after an acknowledged resend).
        (row,) = [g for g in open_gaps(s)["kalvia-1"] if g.first_seq == 6]
        row.unrecoverable_at, row.reason = T0, "kiosk answered: nothing held from seq 6; past its retention window"

    it = bearer(client, "it")
    gaps = client.get("/api/v1/fleet/devices/kalvia-1/gaps", headers=it).json()
    assert (gaps["missing"], gaps["level"]) == (5, "bad")
    assert [(g["first_seq"], g["last_seq"], g["state"]) for g in gaps["gaps"]] == [
        (3, 4, "waiting"), (6, 8, "unrecoverable")]
    assert gaps["text"].startswith("5 answers missing, seq 3–4, 6–8; not asked for yet")
    assert "unrecoverable: 3 (kiosk answered: nothing held from seq 6" in gaps["text"]
    device = client.get("/api/v1/fleet/devices/kalvia-1", headers=it).json()
    assert device["missing"] == {"text": gaps["text"], "level": "bad"} and len(device["gaps"]) == 2
    rows = {r["device_id"]: r for r in client.get("/api/v1/fleet/devices", headers=it).json()}
    assert rows["kalvia-2"]["missing"] == {"text": "none missing", "level": "ok"}

    assert client.get("/api/v1/fleet/devices/kalvia-1/gaps", headers=bearer(client, "staff", "lohtaja")).status_code == 403
    assert client.get("/api/v1/fleet/devices/kalvia-1/gaps", headers=bearer(client, "staff", "kalvia")).status_code == 200
    assert client.get("/api/v1/fleet/devices/kalvia-1/gaps", headers=bearer(client, "coordinator")).status_code == 200
    assert client.get("/api/v1/fleet/devices/kalvia-1/gaps").status_code == 401

    make_user(sessions, "kaisa", "staff", "kalvia")
    sign_in(client, "kaisa")
    page = client.get("/devices/kalvia-1").text
    assert '<dd class="missing"><span class="lvl lvl-bad">✖&nbsp;5 answers missing, seq 3–4, 6–8' in page
    assert 'data-first="6" data-last="8" data-state="unrecoverable"' in page
    listing = client.get("/devices").text
    assert '<td class="missing"><span class="lvl lvl-bad">✖&nbsp;5 answers missing' in listing
    assert '<td class="missing"><span class="lvl lvl-ok">✔&nbsp;none missing' in listing


def test_events_missing_alert_fires_after_the_grace_period_and_clears_when_the_gap_fills(sessions):
    from fleet_server.fleet.alerts import evaluate, reconcile

    settings = load_settings(environ={}, database_url="sqlite://", gap_grace_s=120)
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [1, 4])
        track_gaps(s, settings, RecordingPublisher(), T0, online=lambda d: False)

    def missing_alerts(at_s: float):
        with sessions() as s, s.begin():
            now = T0 + timedelta(seconds=at_s)
            changes = reconcile(s, [c for c in evaluate(s, settings, now) if c.rule == "events_missing"], now)
            return [(a.key, a.message) for a in changes.fired], [a.key for a in changes.cleared]

    assert missing_alerts(60) == ([], [])  # maybe still in flight
    fired, _ = missing_alerts(121)
    assert fired == [("events_missing:kalvia/kalvia-1",
                      "kiosk kalvia-1: 2 answers missing, seq 2–3; not asked for yet")]
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [2, 3])
        track_gaps(s, settings, RecordingPublisher(), T0 + timedelta(seconds=130), online=lambda d: False)
    assert missing_alerts(131) == ([], ["events_missing:kalvia/kalvia-1"])


def test_answers_lost_after_an_unrecoverable_gap_are_asked_for_not_written_off(sessions):
    settings = load_settings(environ={}, database_url="sqlite://", gap_grace_s=120, gap_resend_interval_s=900)
    publisher = RecordingPublisher()
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", range(1, 11))
        set_status(s, "kalvia-1", last_seq=15)  # 11..15 never arrived

    def step(at_s: float):
        with sessions() as s, s.begin():
            return track_gaps(s, settings, publisher, T0 + timedelta(seconds=at_s))

    step(0)
    assert len(step(121).resends) == 1
    with sessions() as s, s.begin():
        set_status(s, "kalvia-1", last_seq=15, held_from_seq=16)  # nothing held below 16
    assert [(g.first_seq, g.last_seq) for g in step(130).unrecoverable] == [(11, 15)]
    with sessions() as s, s.begin():
        set_status(s, "kalvia-1", last_seq=20, held_from_seq=16)  # the tail grows: 16..20 lost too, later
    assert [(g.first_seq, g.last_seq) for g in step(1000).opened] == [(16, 20)]
    assert [c.from_seq for c in step(1200).resends] == [16]  # asked from 16, not written off with 11..15
    with sessions() as s:
        assert [(g.first_seq, g.last_seq, g.unrecoverable_at is not None) for g in open_gaps(s)["kalvia-1"]] == [
            (11, 15, True), (16, 20, False)]


def test_incremental_passes_read_only_new_seqs_and_still_follow_older_gaps(sessions):
    settings = load_settings(environ={}, database_url="sqlite://", gap_grace_s=120)
    marks: dict[str, int] = {}
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [1, 2, 3, 5, 6, 7, 8, 9, 10])

    def step(at_s: float):
        with sessions() as s, s.begin():
            return track_gaps(s, settings, RecordingPublisher(), T0 + timedelta(seconds=at_s), online=lambda d: False,
                              watermarks=marks)

    assert [(g.first_seq, g.last_seq) for g in step(0).opened] == [(4, 4)]
    assert marks == {"kalvia-1": 10}
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [11, 12, 13, 14, 16, 17])
    assert [(g.first_seq, g.last_seq) for g in step(10).opened] == [(15, 15)]
    assert marks == {"kalvia-1": 17}
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [4])  # an old gap fills, below the watermark
    result = step(20)
    assert [(g.first_seq, g.last_seq) for g in result.resolved] == [(4, 4)] and result.opened == []
    with sessions() as s:
        assert [(g.first_seq, g.last_seq) for g in open_gaps(s)["kalvia-1"]] == [(15, 15)]
        assert find_gaps(s, since={"kalvia-1": 16}) == {}  # what lies below is not read
        assert find_gaps(s, since={"kalvia-1": 14})["kalvia-1"].ranges == [SeqRange(15, 15, "internal")]
        assert find_gaps(s, since={"kalvia-1": 15})["kalvia-1"].ranges == [SeqRange(15, 15, "internal")]


def test_an_unrecoverable_gap_alerts_for_a_day_and_stays_on_the_page(sessions):
    from fleet_server.fleet.alerts import evaluate

    settings = load_settings(environ={}, database_url="sqlite://", gap_grace_s=120)
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [1, 3])
        track_gaps(s, settings, RecordingPublisher(), T0, online=lambda d: False)
        (row,) = open_gaps(s)["kalvia-1"]
        row.unrecoverable_at, row.reason = T0 + timedelta(seconds=600), "past its retention window"

    def rules(at: timedelta):
        with sessions() as s:
            return [c.key for c in evaluate(s, settings, T0 + at) if c.rule == "events_missing"]

    assert rules(timedelta(hours=23)) == ["events_missing:kalvia/kalvia-1"]
    assert rules(timedelta(hours=25)) == []
    with sessions() as s:
        assert describe(open_gaps(s)["kalvia-1"], T0 + timedelta(hours=25))[1] == "bad"


def test_two_gap_passes_at_once_never_track_a_gap_twice(sessions):
    """Pass A holds its kiosks (its transaction is open) while pass B runs: B skips them
    (PostgreSQL) or waits for A (SQLite); either way every gap has one open row."""
    import threading

    settings = load_settings(environ={}, database_url="sqlite://", gap_grace_s=120)
    with sessions() as s, s.begin():
        for device in ("kalvia-1", "kalvia-2", "kalvia-3", "lohtaja-1"):
            add_events(s, device, [1, 2, 5, 6, 9])
            set_status(s, device, last_seq=12)
    results = {}

    def pass_b():
        with sessions() as s, s.begin():
            results["b"] = track_gaps(s, settings, RecordingPublisher(), T0)

    with sessions() as a, a.begin():
        results["a"] = track_gaps(a, settings, RecordingPublisher(), T0)
        b = threading.Thread(target=pass_b)
        b.start()
        b.join(1.0)  # B is skipping (done) or waiting for A's lock
    b.join(30)
    assert not b.is_alive()
    assert len(results["a"].opened) == 12 and results["b"].opened == []
    with sessions() as s:
        rows = s.scalars(select(SeqGap).where(SeqGap.resolved_at.is_(None))).all()
    keys = [(r.device_id, r.first_seq) for r in rows]
    assert len(keys) == len(set(keys)) == 12


def test_many_passes_over_a_gap_that_fills_bit_by_bit_keep_one_row_per_missing_range(sessions):
    settings = load_settings(environ={}, database_url="sqlite://", gap_grace_s=120)
    marks: dict[str, int] = {}
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [1, 30])
    for i, arriving in enumerate([[5], [10, 11], [20], [], [2, 3, 4], []]):
        with sessions() as s, s.begin():
            add_events(s, "kalvia-1", arriving)
        with sessions() as s, s.begin():
            track_gaps(s, settings, RecordingPublisher(), T0 + timedelta(seconds=i), watermarks=marks)
    with sessions() as s:
        rows = [(g.first_seq, g.last_seq) for g in open_gaps(s)["kalvia-1"]]
    assert rows == [(6, 9), (12, 19), (21, 29)]


def test_the_migration_collapses_copied_open_gap_rows_before_making_them_unique(db_url):
    from sqlalchemy import text

    from fleet_server.core.db import make_engine, migrate

    migrate(db_url, "0500_seq_gaps")
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO stations (id, name, created_at) VALUES ('kalvia', 'K', :t)"), {"t": T0})
            conn.execute(text("INSERT INTO devices (id, station_id, state, online, created_at) "
                              "VALUES ('kalvia-1', 'kalvia', 'active', false, :t)"), {"t": T0})
            for _ in range(3):  # what concurrent passes used to leave behind
                conn.execute(text("INSERT INTO seq_gaps (device_id, first_seq, last_seq, kind, detected_at, reason) "
                                  "VALUES ('kalvia-1', 3, 4, 'internal', :t, '')"), {"t": T0})
        migrate(db_url)
        with engine.connect() as conn:
            open_rows = conn.execute(text("SELECT id FROM seq_gaps WHERE resolved_at IS NULL")).scalars().all()
            assert len(open_rows) == 1
    finally:
        engine.dispose()


ENGLISH_GAP_WORDS = ("answer", "missing", "seq", "resend", "asked", "acknowledged", "unrecoverable", "kiosk",
                     "retention", "holds", "none")


@pytest.mark.parametrize(("lang", "words"), [
    ("fi", ["palvelimelta puuttuu 1\u00a0236 vastausta", "Niistä 2 on menetetty", "1\u00a0236 vastausta puuttuu",
            "uudelleenlähetystä pyydetty 2 min sitten", "menetetty: 2 (laitteella ei enää ole niitä"]),
    ("sv", ["servern saknar 1\u00a0236 svar", "Av dem har 2 gått förlorade", "1\u00a0236 svar saknas",
            "begärt på nytt för 2 min sedan", "förlorade: 2 (apparaten har dem inte längre"]),
])
def test_missing_answers_read_in_finnish_and_swedish_in_the_alert_mail_and_on_the_device_page(
        sessions, smtp, lang, words):
    from fleet_server.core import i18n
    from fleet_server.fleet.alerts import channels_from, run_once
    from fleet_server.fleet.device_health import fleet_health

    controller, box = smtp
    settings = load_settings(environ={}, database_url="sqlite://", gap_grace_s=120, smtp_host="127.0.0.1",
                             smtp_port=controller.port, alert_email_to="it@county.example", alert_email_language=lang)
    with sessions() as s, s.begin():
        add_events(s, "kalvia-1", [1, 2, 5, 1240])  # missing 3-4 and 6-1239: 1,236 answers
        track_gaps(s, settings, RecordingPublisher(), T0, online=lambda d: False)
        lost, asked = sorted(open_gaps(s)["kalvia-1"], key=lambda g: g.first_seq)
        lost.unrecoverable_at, lost.reason = T0, "the kiosk holds answers from seq 5 on; past its retention window"
        asked.resend_at = T0 + timedelta(seconds=60)
    now = T0 + timedelta(seconds=180)
    run_once(sessions, settings, channels_from(settings), now=now)
    (mail,) = box.messages
    with sessions() as s, i18n.using(lang):
        (health,) = [h for h in fleet_health(s, settings, now=now) if h.device_id == "kalvia-1"]
    said = [mail.get_content().splitlines()[0], health.missing.text, *(g["reason_text"] for g in health.gaps)]
    english = [w for w in ENGLISH_GAP_WORDS for text in said if w in text.lower()]
    assert english == [], said
    assert all(any(w in text for text in said) for w in words), said
