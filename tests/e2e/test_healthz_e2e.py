"""/healthz tells a load balancer when this server cannot take answers in: a PostgreSQL that
refuses writes (as with a full disk) and a stalled ingest are 503, with the backlog in the body."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import create_engine, func, select

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.models import FeedbackEvent
from palaute_wire import contract as c
from tests.support.server_factories import batch, event
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

DISK_FULL = """
CREATE FUNCTION palaute_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$;
CREATE TRIGGER disk_full_events BEFORE INSERT ON feedback_events
    FOR EACH ROW EXECUTE FUNCTION palaute_test_disk_full();
CREATE TRIGGER disk_full_probe BEFORE INSERT OR UPDATE ON health_probes
    FOR EACH ROW EXECUTE FUNCTION palaute_test_disk_full();
"""
DISK_FREED = """
DROP TRIGGER disk_full_events ON feedback_events;
DROP TRIGGER disk_full_probe ON health_probes;
DROP FUNCTION palaute_test_disk_full();
"""


def test_healthz_is_503_while_the_database_refuses_writes_and_the_ingest_is_stuck(broker, postgres_url):
    settings = load_settings(environ={}, database_url=postgres_url, mqtt_url=broker.url, mqtt_client_id="hz-ingest",
                             mode="development", healthz_stall_s=0.5, mqtt_reconnect_max_s=1)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    kiosk = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="kalvia-1", protocol=MQTTProtocolVersion.MQTTv5)
    try:
        with TestClient(create_app(settings)) as client:
            assert client.app.state.ingestor.wait_subscribed(10)
            healthy = client.get("/healthz")
            assert healthy.status_code == 200 and healthy.json()["database_writable"] == "ok"

            with admin.connect() as conn:
                conn.exec_driver_sql(DISK_FULL)
            kiosk.connect("127.0.0.1", broker.port)
            kiosk.loop_start()
            events = [event(seq=n) for n in range(1, 11)]
            for chunk in (events[:5], events[5:]):
                kiosk.publish(c.topic("kalvia", "kalvia-1", "events"), c.encode(batch(chunk)), qos=1).wait_for_publish(10)

            sick = wait_until(lambda: (r := client.get("/healthz")).json().get("ingest", {}).get("state") == "stalled"
                              and r, 30.0, "healthz to say the ingest is stalled")
            body = sick.json()
            assert sick.status_code == 503 and body["status"] == "failing"
            assert body["database"] == "ok" and body["database_writable"].startswith("error: DiskFull")
            assert "database not writable" in body["problems"]
            assert any(p.startswith("ingest stalled: 2 messages waiting") for p in body["problems"])
            assert body["ingest"]["backlog"] == 2 and body["ingest"]["db_errors"] >= 1, body
            assert "DiskFull" in body["ingest"]["last_db_error"]

            with admin.connect() as conn:
                conn.exec_driver_sql(DISK_FREED)
            well = wait_until(lambda: (r := client.get("/healthz")).status_code == 200 and r, 30.0,
                              "healthz to recover")
            assert well.json()["status"] == "ok" and well.json()["ingest"]["backlog"] == 0
            with client.app.state.session_factory() as s:
                assert s.scalar(select(func.count()).select_from(FeedbackEvent)) == 10
    finally:
        kiosk.loop_stop()
        admin.dispose()
