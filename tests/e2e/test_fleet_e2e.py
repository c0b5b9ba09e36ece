"""Done means (issue 6): provision a kiosk, run it from its bundle against the TLS broker,
see it online, push a new survey and see it applied, have it identify itself and
acknowledge, stop it and see the alert fire
and clear. Real parts throughout: the palaute-server and palaute-kiosk commands,
Mosquitto with the shipped config and generated accounts, the server's ingest,
pages and API, and an HTTP receiver for the alert webhook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from fleet_server.app import create_app
from fleet_server.core.settings import load_settings
from fleet_server.devtools.local_broker import free_port
from fleet_server.fleet.broker_accounts import new_secret
from fleet_server.models import Device, FeedbackEvent
from tests.support.auth_helpers import bearer, make_user, sign_in
from tests.support.fleet_broker import DeployBroker
from tests.support.tls import make_tls
from tests.support.waiting import wait_until

pytestmark = pytest.mark.broker

BIN = Path(sys.executable).parent
DEADLINE_S = 45.0


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self):
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    handler = type("Hook", (_Hook,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", handler.received
    server.shutdown()
    server.server_close()


def palaute_server(env: dict, *args: str) -> str:
    result = subprocess.run([str(BIN / "palaute-server"), *args], env=env, check=False, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"palaute-server {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


class Kiosk:
    """``palaute-kiosk --config <bundle>/kiosk.toml --simulate`` as a process."""

    def __init__(self, config: Path, log: Path) -> None:
        self.config, self.log_path, self.proc = config, log, None

    def start(self) -> None:
        env = {**os.environ, "KIVY_NO_ARGS": "1", "KIVY_NO_CONSOLELOG": "1", "KIVY_NO_FILELOG": "1"}
        with open(self.log_path, "a") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [str(BIN / "palaute-kiosk"), "--config", str(self.config), "--simulate", "--rate", "120", "-v"],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code, self.proc = self.proc.returncode, None
        return code


def test_provisioned_kiosk_goes_online_applies_a_survey_and_its_outage_alerts(tmp_path, webhook, db_url):
    hook_url, hook_received = webhook
    tls = make_tls(tmp_path / "tls")
    kiosk_port, server_port = free_port(), free_port()
    auth = tmp_path / "auth"
    env = {
        **os.environ,
        "PALAUTE_DATABASE_URL": db_url,  # SQLite, then PostgreSQL
        "PALAUTE_BROKER_PASSWORD_FILE": str(auth / "passwd"),
        "PALAUTE_BROKER_ACL_FILE": str(auth / "acl"),
        "PALAUTE_MQTT_URL": f"mqtt://127.0.0.1:{server_port}",
        "PALAUTE_MQTT_USERNAME": "palaute-server",
        "PALAUTE_MQTT_PASSWORD": new_secret(),
        "PALAUTE_KIOSK_BROKER_URL": f"mqtts://127.0.0.1:{kiosk_port}",
        "PALAUTE_KIOSK_CA_FILE": str(tls.ca_cert),
        "PALAUTE_SESSION_SECRET": "e2e-" + "s" * 40,
    }

    # 1. IT adds the station and provisions the kiosk (the broker is not running yet).
    palaute_server(env, "station", "add", "kalvia", "--name", "Kälviä health station")
    out = palaute_server(env, "device", "provision", "kalvia-1", "--station", "kalvia", "--out", str(tmp_path / "bundles"))
    assert "shown once" in out
    bundle = tmp_path / "bundles/kalvia-1"

    # The bundle's kiosk.toml as the Pi gets it, with /var/lib/palaute moved into the test
    # and a 1 s heartbeat so the test does not wait for the default 30 s.
    state = tmp_path / "kiosk-state"
    toml = (bundle / "kiosk.toml").read_text()
    assert '"/var/lib/palaute' in toml
    toml = toml.replace('"/var/lib/palaute', f'"{state}').replace("[broker]\n", "[broker]\nheartbeat_s = 1\n")
    (bundle / "kiosk.toml").write_text(toml)

    with DeployBroker(tmp_path / "broker", auth / "passwd", auth / "acl", tls=tls,
                      kiosk_port=kiosk_port, server_port=server_port) as broker:
        env["PALAUTE_BROKER_PID_FILE"] = str(broker.pid_file)
        settings = load_settings(environ={k: v for k, v in env.items() if k.startswith("PALAUTE_")},
                                 alert_offline_after_min=0, alert_heartbeat_timeout_s=30,
                                 # The test runs the fleet passes itself (run_pass), deterministically.
                                 alert_check_interval_s=3600,
                                 alert_webhook_url=hook_url)
        app = create_app(settings)
        kiosk = Kiosk(bundle / "kiosk.toml", tmp_path / "kiosk.log")
        try:
            with TestClient(app) as client:
                loop = app.state.fleet_loop
                factory = app.state.session_factory
                wait_until(lambda: client.get("/healthz").json().get("mqtt") == "connected", DEADLINE_S,
                           "the server's ingest connected")
                make_user(factory, "anna", "it")
                assert sign_in(client, "anna", next_url="/devices").status_code in (302, 303)
                it = bearer(client, "it")

                # 2. The kiosk starts from its bundle and shows up online on the devices page.
                kiosk.start()
                wait_until(lambda: 'data-device="kalvia-1" data-online="yes"' in client.get("/devices").text, DEADLINE_S,
                           "kalvia-1 online on /devices")
                loop.run_pass()
                with factory() as s:
                    assert s.get(Device, "kalvia-1").state == "active"  # registered by its first status

                # 3. IT pushes the national-themes survey; the kiosk applies it and says so in its status.
                put = client.put("/api/v1/fleet/stations/kalvia/config", headers=it,
                                 json={"survey_template": "national", "comment": "e2e"})
                assert put.status_code == 200, put.text
                version = put.json()["published"][0]["config_version"]
                assert version > 1
                health = wait_until(lambda: next((d for d in client.get("/api/v1/fleet/devices", headers=it).json()
                                                  if d["config_version_applied"] == version), None),
                                    DEADLINE_S, "kiosk reports the new config_version")
                assert health["config"] == {"text": f"{version} (current)", "level": "ok"}
                wait_until(lambda: _count_questions(factory, "overall") > 0, DEADLINE_S,
                           "answers given with the new survey arrive")

                # IT asks the kiosk to identify itself; its acknowledgement shows on its page.
                sent = client.post("/api/v1/fleet/devices/kalvia-1/commands", headers=it, json={"name": "identify"})
                assert sent.status_code == 202, sent.text

                def acknowledged():
                    loop.run_pass()
                    commands = client.get("/api/v1/fleet/devices/kalvia-1/commands", headers=it).json()
                    return commands[0]["state"] != "pending" and commands[0]

                command = wait_until(acknowledged, DEADLINE_S, "the kiosk acknowledges identify")
                assert (command["cmd_id"], command["state"]) == (sent.json()["cmd_id"], "done")
                assert "✔ done" in client.get("/devices/kalvia-1").text

                # 4. The kiosk stops: offline on the page, the alert fires once, on the page and the webhook.
                assert kiosk.stop() == 0
                wait_until(lambda: 'data-device="kalvia-1" data-online="no"' in client.get("/devices").text, DEADLINE_S,
                           "kalvia-1 offline on /devices")
                loop.run_pass()
                loop.run_pass()
                assert [(h["event"], h["rule"], h["device_id"]) for h in hook_received] == [
                    ("firing", "offline", "kalvia-1")]
                page = client.get("/devices").text
                assert 'data-rule="offline" data-device="kalvia-1"' in page

                # 5. It comes back: the alert clears, once.
                kiosk.start()
                wait_until(lambda: 'data-device="kalvia-1" data-online="yes"' in client.get("/devices").text, DEADLINE_S,
                           "kalvia-1 back online")
                loop.run_pass()
                loop.run_pass()
                assert [h["event"] for h in hook_received] == ["firing", "cleared"]
                assert "No open alerts" in client.get("/devices").text
        finally:
            kiosk.stop()


def _count_questions(factory, question_id: str) -> int:
    with factory() as s:
        return s.scalar(select(func.count()).where(FeedbackEvent.question_id == question_id)) or 0
