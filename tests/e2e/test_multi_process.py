"""Three server processes, one killed with -9 under load, then scaled down to one: every answer
stored exactly once, one e-mail per alert, gap rows unique.

Real parts: three ``palaute-server serve`` processes on the test's throwaway PostgreSQL
database, one private Mosquitto, an aiosmtpd mail sink, and simulated kiosks (paho
clients publishing answer batches and statuses as the kiosk firmware does). The
figures (takeover time after kill -9, answers, e-mails) are printed, not asserted.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import select, text

from fleet_server.core.db import make_engine, make_session_factory
from fleet_server.devtools.local_broker import free_port
from fleet_server.models import Alert, FeedbackEvent
from palaute_wire import contract as c
from tests.support.server_factories import batch, event, status
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

KIOSKS = [f"kalvia-{n}" for n in range(1, 7)]
CLOCKLESS = "kalvia-9"  # online with an unsynchronised clock: one "clock" alert
GAPPY = "kalvia-8"  # never sends seq 10..12: one gap row
SEND_INTERVAL_S = 0.02  # per kiosk: 6 kiosks, about 300 answers a second together


class Server:
    """One ``palaute-server serve`` process and its /healthz."""

    def __init__(self, processes, env: dict, log) -> None:
        self.port = free_port()
        self.proc = processes.start([sys.executable, "-m", "fleet_server.cli", "serve"],
                                    env={**env, "PALAUTE_HTTP_PORT": str(self.port)}, log=log)

    def health(self) -> dict:
        if self.proc.poll() is not None:
            return {}
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return {}

    @property
    def active(self) -> bool:
        return self.health().get("mqtt") == "connected"


class Kiosk:
    """A simulated kiosk: its own MQTT connection, answers with a gap-free seq, PUBACKs awaited."""

    def __init__(self, port: int, device: str) -> None:
        self.device = device
        self.seq = 0
        self.sent: list = []  # event ids the broker acknowledged
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=MQTTProtocolVersion.MQTTv5)
        self.connected_at = datetime.now(UTC)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send_status(self, **fields) -> None:
        now = datetime.now(UTC)
        self.client.publish(c.topic("kalvia", self.device, "status"), c.encode(
            status(device=self.device, sent_at=now, connected_at=self.connected_at, **fields)),
            qos=1, retain=True).wait_for_publish(10)

    def send_answers(self, n: int, skip: range = range(0)) -> None:
        pending = []
        for _ in range(n):
            self.seq += 1
            if self.seq in skip:
                continue
            answer = event(device=self.device, seq=self.seq, ts=datetime.now(UTC) - timedelta(seconds=1))
            pending.append((answer.event_id, self.client.publish(
                c.topic("kalvia", self.device, "events"), c.encode(batch([answer], device=self.device)), qos=1)))
            time.sleep(SEND_INTERVAL_S)
        for event_id, info in pending:
            info.wait_for_publish(30)
            assert info.is_published()
            self.sent.append(event_id)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _send_from_all(kiosks: list[Kiosk], n: int) -> list[threading.Thread]:
    threads = [threading.Thread(target=k.send_answers, args=(n,)) for k in kiosks]
    for t in threads:
        t.start()
    return threads


def test_three_servers_one_killed_then_scaled_to_one_store_every_answer_once_and_mail_once(
        broker, postgres_url, processes, tmp_path, smtp):
    mail_server, box = smtp
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAUTE_")}
    env.update({
        "PALAUTE_DATABASE_URL": postgres_url, "PALAUTE_MQTT_URL": broker.url, "PALAUTE_MODE": "development",
        "PALAUTE_LOG_LEVEL": "info", "PALAUTE_LEADER_POLL_S": "0.5", "PALAUTE_ALERT_CHECK_INTERVAL_S": "1",
        "PALAUTE_GAP_CHECK_INTERVAL_S": "1", "PALAUTE_GAP_GRACE_S": "1",
        "PALAUTE_SMTP_HOST": "127.0.0.1", "PALAUTE_SMTP_PORT": str(mail_server.port),
        "PALAUTE_ALERT_EMAIL_TO": "it@county.example",
        "PALAUTE_ALERT_EMAIL_LANGUAGE": "en",  # the subjects below name the rules by id
    })
    engine = make_engine(postgres_url)
    sessions = make_session_factory(engine)

    def stored() -> list:
        with sessions() as s:
            return list(s.scalars(select(FeedbackEvent.event_id)))

    kiosks: list[Kiosk] = []
    others: list[Kiosk] = []
    try:
        # Three processes started at once on an empty database: they migrate in turn.
        servers = [Server(processes, env, tmp_path / f"server-{n}.log") for n in range(3)]
        wait_until(lambda: next((s for s in servers if s.active), None), 60, "an active ingest")
        time.sleep(2)  # the other two keep asking for the locks meanwhile
        roles = [(s.health().get("mqtt"), s.health().get("fleet_loop")) for s in servers]
        assert sorted(r[0] for r in roles) == ["connected", "standby", "standby"], roles
        assert sorted(r[1] for r in roles) == ["leader", "standby", "standby"], roles

        kiosks = [Kiosk(broker.port, d) for d in KIOSKS]
        for k in kiosks:
            k.send_status(clock_synced=True)
        clockless, gappy = Kiosk(broker.port, CLOCKLESS), Kiosk(broker.port, GAPPY)
        others = [clockless, gappy]
        clockless.send_status(clock_synced=False)
        gappy.send_answers(20, skip=range(10, 13))
        gappy.send_status(clock_synced=True)
        wait_until(lambda: len(box.messages) >= 1, 30, "the clock alert's e-mail")
        wait_until(lambda: any(m["Subject"].endswith(f"events_missing at kalvia/{GAPPY}") for m in box.messages),
                   30, "the missing answers' e-mail")

        # Under load: the process holding the ingest session (and, started first, the fleet loop) is killed.
        senders = _send_from_all(kiosks, 150)
        wait_until(lambda: len(stored()) >= 300, 30, "the answers flowing")
        victim = next(s for s in servers if s.active)
        victim.proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.proc.wait(10)
        survivors = [s for s in servers if s is not victim]
        heir = wait_until(lambda: next((s for s in survivors if s.active), None), 30, "a standby taking over")
        takeover_s = time.monotonic() - killed_at
        for t in senders:
            t.join(60)
        sent = [e for k in kiosks + [gappy] for e in k.sent]
        wait_until(lambda: len(stored()) >= len(sent), 30 - (time.monotonic() - killed_at),
                   "every answer within 30 s of the kill")
        recovered_s = time.monotonic() - killed_at
        ids = stored()
        assert len(ids) == len(set(ids)) == len(sent) and set(ids) == set(sent)

        # Scale down to one: the active survivor is stopped (SIGTERM) while the kiosks keep sending.
        senders = _send_from_all(kiosks, 50)
        time.sleep(0.5)
        processes.stop(heir.proc)
        last = next(s for s in survivors if s is not heir)
        wait_until(lambda: last.active, 30, "the last process taking over")
        for t in senders:
            t.join(60)
        sent = [e for k in kiosks + [gappy] for e in k.sent]
        wait_until(lambda: len(stored()) >= len(sent), 30, "every answer after scaling down to one")
        ids = stored()
        assert len(ids) == len(set(ids)) == len(sent) and set(ids) == set(sent)
        wait_until(lambda: last.health().get("fleet_loop") == "leader", 30, "the last process leading")
        assert last.health()["ingest"]["backlog"] == 0

        # The clock is fixed: one clearing, by whoever leads now.
        clockless.send_status(clock_synced=True)
        wait_until(lambda: any("RESOLVED" in m["Subject"] for m in box.messages), 30, "the clearing's e-mail")
        time.sleep(3)  # several more fleet passes: nothing may go out again
        subjects = [m["Subject"] for m in box.messages]
        with sessions() as s:
            alerts = s.scalars(select(Alert)).all()
            duplicate_gaps = s.execute(text(
                "SELECT device_id, first_seq, count(*) FROM seq_gaps WHERE resolved_at IS NULL "
                "GROUP BY device_id, first_seq HAVING count(*) > 1")).all()
            open_gaps = s.execute(text(
                "SELECT device_id, first_seq, last_seq FROM seq_gaps WHERE resolved_at IS NULL")).all()
        assert len(subjects) == len(set(subjects)), subjects  # one e-mail per firing and per clearing
        assert sorted(subjects) == sorted(
            [f"[Palaute WARNING] {a.rule} at kalvia/{a.device_id}" for a in alerts]
            + [f"[Palaute RESOLVED] {a.rule} at kalvia/{a.device_id}" for a in alerts if a.cleared_at])
        assert {a.rule for a in alerts} == {"clock", "events_missing"}
        assert duplicate_gaps == [] and [(g[0], g[1], g[2]) for g in open_gaps] == [(GAPPY, 10, 12)]
        print(f"\nmulti-process: takeover after kill -9 {takeover_s:.1f} s; all {len(sent)} answers stored once, "
              f"the last {recovered_s:.1f} s after the kill; {len(subjects)} e-mails for {len(alerts)} alerts "
              f"({len([a for a in alerts if a.cleared_at])} cleared)")
    finally:
        for k in kiosks + others:
            k.close()
        engine.dispose()
